"""The ``ccguard.validate`` span and the validation metrics: the wrappers a
:class:`~.telemetry.Telemetry` with an SDK puts around a validator.

A token answered from the token cache (almost every request: a client reuses
its token until it expires) makes no OpenTelemetry call: the validator counts
it, and ``ccguard.validation.cache_hits`` reads that count when metrics are
collected (:meth:`.telemetry.Telemetry.count_cache_hits`). In the Python SDK
one span costs more than ten such validations. Every other validation (a
signature verified, a token introspected, keys fetched, any refusal) gets a
``ccguard.validate`` span, when it runs under a recording span, and a
``ccguard.validation.duration`` point.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .claims import VerifiedToken
    from .request import HTTPRequest

__all__ = ["REPLAY_REASON", "instrument", "status_error", "telemetry_failed"]

log = logging.getLogger("flask_ccguard")
_warned: list[bool] = []

Validate = Callable[..., "VerifiedToken"]

#: The refusal reason (:class:`~flask_ccguard.core.dpop.DPoPVerifier`) of a replayed proof.
REPLAY_REASON = "replayed"


def instrument(
    tracer: Any,
    instruments: dict[str, Any],
    validate: Validate,
    verify: Validate,
    configured: Callable[[str], str] = str,
) -> tuple[Validate, Validate]:
    """Wrap a validator's ``validate`` and the ``verify`` it calls on a token-cache miss.

    A miss gets a ``ccguard.validate`` span (only as the child of a recording
    span, such as the Flask request's; made current so that the fetches it
    causes nest under it) and a ``ccguard.validation.duration`` point. A
    refusal is counted by reason, whichever path refused it. An accepted
    cache hit passes through both wrappers without an OpenTelemetry call.

    :param tracer: the tracer, or None (metrics only).
    :param instruments: the synchronous instruments by name (:data:`.telemetry.INSTRUMENTS`).
    :param configured: the configured issuer (or template) that a token's issuer
        matched, which ``ccguard.issuer`` names.
    """
    duration = instruments.get("ccguard.validation.duration")
    refusals = instruments.get("ccguard.validation.refusals")
    replays = instruments.get("ccguard.dpop.replays_refused")
    api = sys.modules.get("opentelemetry.trace")
    current_span = attach = detach = in_context = None
    if tracer is not None and api is not None:
        current_span, in_context = api.get_current_span, api.set_span_in_context
        context_api = sys.modules["opentelemetry.context"]
        attach, detach = context_api.attach, context_api.detach
    # What verify() left for validate() in this thread: None, or the span (or
    # False: a miss outside a recording span).
    here = threading.local()
    # (algorithm, issuer) -> (metric attributes, span attributes), built once each.
    accepted: dict[tuple[str, str], tuple[dict[str, str], dict[str, str]]] = {}

    def traced_verify(*args: Any) -> VerifiedToken:
        span: Any = False
        context_token = None
        if current_span is not None:
            try:
                if current_span().is_recording():
                    span = tracer.start_span("ccguard.validate")
                    # Attached directly (cheaper than start_as_current_span).
                    context_token = attach(in_context(span))  # type: ignore[misc]
            except Exception:
                telemetry_failed()
        here.miss = span
        if context_token is None:
            return verify(*args)
        try:
            return verify(*args)
        finally:
            detach(context_token)  # type: ignore[misc]

    def traced(token: str | bytes, request: HTTPRequest | None = None) -> VerifiedToken:
        here.miss = None
        start = time.perf_counter()
        try:
            verified = validate(token, request)
        except Exception as exc:
            try:
                _refused(exc, time.perf_counter() - start, here.miss)
            except Exception:
                telemetry_failed()
            raise
        span = here.miss
        if span is None:
            return verified  # a cache hit: counted by the validator
        try:
            _accepted(verified, time.perf_counter() - start, span)
        except Exception:
            telemetry_failed()
        return verified

    def _accepted(verified: VerifiedToken, elapsed: float, span: Any) -> None:
        # The header as held, not .header (a copy per access). Introspected tokens
        # have none, and no algorithm: not "none", the unsecured JWS one.
        key = (str(verified._header.get("alg", "")), verified.issuer)
        done = accepted.get(key)
        if done is None:
            metric = {"ccguard.outcome": "accepted"}
            if key[0]:
                metric["ccguard.algorithm"] = key[0][:32]
            done = (metric, {**metric, "ccguard.issuer": configured(key[1])})
            if len(accepted) < 256:  # allowed algorithms times issuers: a few
                accepted[key] = done
        if duration is not None:
            _metric(duration.record, elapsed, done[0])
        if span is not False:
            span.set_attributes(done[1])
            span.end()

    def _refused(exc: Exception, elapsed: float, span: Any) -> None:
        outcome = "unavailable" if getattr(exc, "status", None) == 503 else "rejected"
        reason = str(getattr(exc, "reason", None) or "internal")
        attrs = {"ccguard.outcome": outcome, "ccguard.reason": reason}
        error = getattr(exc, "error", None)
        if error:  # a 503 (Unavailable) has no RFC 6750 error: it is no challenge
            attrs["ccguard.error_code"] = str(error)
        if duration is not None:
            _metric(duration.record, elapsed, {"ccguard.outcome": outcome})
        if refusals is not None:
            _metric(refusals.add, 1, attrs)
        if replays is not None and reason == REPLAY_REASON:
            _metric(replays.add, 1)
        if span is None and current_span is not None and current_span().is_recording():
            # Refused on the cache-hit path (a proof or a certificate): the span
            # is made now, starting when the validation did.
            span = tracer.start_span("ccguard.validate", start_time=time.time_ns() - int(elapsed * 1e9))
        if span is not None and span is not False:
            span.set_attributes(attrs)
            if outcome == "unavailable":
                # A refusal is the expected answer to a bad token; only a
                # validator that cannot answer is an error. No exception
                # text: it is not written for telemetry.
                span.set_status(status_error(), reason)
            span.end()

    return traced, traced_verify


def _metric(record: Callable[..., Any], *args: Any) -> None:
    # Guarded on its own: an exemplar filter raising on a measurement must not
    # leave the span started for this validation unended (never exported).
    try:
        record(*args)
    except Exception:
        telemetry_failed()


def telemetry_failed() -> None:
    """Called when the OpenTelemetry SDK raised (a span processor, sampler,
    exemplar filter or view of the application's): the telemetry of this one
    validation or fetch is skipped, and the answer stays what it would be
    without an SDK. Logged once per process, with the exception's type only."""
    if not _warned:
        _warned.append(True)
        raised = sys.exc_info()[0]
        log.warning(
            "flask_ccguard: the OpenTelemetry SDK raised %s; telemetry is skipped where it does"
            " (answers are not changed)",
            raised.__name__ if raised is not None else "an error",
        )
    log.debug("flask_ccguard: OpenTelemetry failure detail", exc_info=True)


def status_error() -> Any:
    """The API's ``StatusCode.ERROR`` (OpenTelemetry is imported when this is called)."""
    return sys.modules["opentelemetry.trace"].StatusCode.ERROR
