"""OpenTelemetry spans and metrics, through ``opentelemetry-api`` only, when an SDK is set up.

Optional (``pip install "flask-ccguard[otel]"``): nothing here imports
OpenTelemetry unless the application already has (an SDK cannot be configured
without importing it), and :meth:`Telemetry.detect` decides once, when a
validator is built, whether a tracer or meter provider other than the API's
no-op ones is installed. An inactive :class:`Telemetry` costs nothing on the hot
path: the validator's ``validate`` is only wrapped when telemetry is active, and
fetches (rare) check one boolean. So: **configure the SDK before creating the
app or the validator**.

Attributes carry outcomes, reasons, RFC 6750 error codes, algorithms, the
configured issuer and the origin of fetched URLs; never a token, a claim value,
a key or a query string (the introspection request's body holds the token: only
its URL's origin and path are named).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from .._version import __version__

if TYPE_CHECKING:
    from .claims import VerifiedToken
    from .request import HTTPRequest

__all__ = ["INSTRUMENTS", "NO_TELEMETRY", "SCOPE", "Telemetry"]

#: The instrumentation scope: the tracer's and the meter's name.
SCOPE = "flask_ccguard"

#: Metric name → (kind, unit, description); the table in docs/observability.rst.
INSTRUMENTS: dict[str, tuple[str, str, str]] = {
    "ccguard.validation.duration": ("histogram", "s", "Duration of token validations"),
    "ccguard.validation.refusals": ("counter", "{refusal}", "Tokens refused, by reason"),
    "ccguard.key_set.fetches": ("counter", "{fetch}", "Key-set fetches (failures included)"),
    "ccguard.key_set.fetch_failures": ("counter", "{fetch}", "Key-set fetches that failed"),
    "ccguard.key_set.stale_served": ("counter", "{validation}", "Validations served by keys due for refresh"),
    "ccguard.key_set.cooldown_refusals": ("counter", "{refusal}", "Unknown kid refused without a refetch"),
    "ccguard.introspection.calls": ("counter", "{call}", "Calls to an introspection endpoint (RFC 7662)"),
    "ccguard.introspection.cache_hits": ("counter", "{hit}", "Opaque tokens answered from the cache"),
    "ccguard.dpop.replays_refused": ("counter", "{proof}", "DPoP proofs refused as replays (RFC 9449 §11.1)"),
}

# Provider classes of the API that record nothing (unset global, or explicit no-op).
_NO_OP_PROVIDERS = frozenset({"ProxyTracerProvider", "NoOpTracerProvider", "_ProxyMeterProvider", "NoOpMeterProvider"})


def _real(provider: object) -> bool:
    return type(provider).__name__ not in _NO_OP_PROVIDERS


def _origin_attributes(method: str, url: str) -> dict[str, Any]:
    """HTTP client span attributes (semantic conventions): the origin and path, no query."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {
        "http.request.method": method,
        "url.scheme": parts.scheme,
        "server.address": parts.hostname or "",
        "server.port": port,
        "url.path": parts.path or "/",
    }


class Telemetry:
    """A validator's tracer and meter, or nothing (:data:`NO_TELEMETRY`).

    :param tracer: an OpenTelemetry tracer, or None.
    :param meter: an OpenTelemetry meter, or None.
    """

    def __init__(self, tracer: Any = None, meter: Any = None) -> None:
        #: True when spans or metrics are recorded; checked before any work.
        self.active = tracer is not None or meter is not None
        self._tracer = tracer
        self._instruments: dict[str, Any] = {}
        if meter is not None:
            for name, (kind, unit, description) in INSTRUMENTS.items():
                make = meter.create_histogram if kind == "histogram" else meter.create_counter
                self._instruments[name] = make(name, unit=unit, description=description)

    @classmethod
    def detect(cls) -> Telemetry:
        """The telemetry a validator built now should use.

        Active only when the application has imported OpenTelemetry and set a
        tracer or meter provider that records (an SDK): providers set later are
        not seen by validators built before.
        """
        trace_api = sys.modules.get("opentelemetry.trace")
        metrics_api = sys.modules.get("opentelemetry.metrics")
        if trace_api is None and metrics_api is None:
            return NO_TELEMETRY
        tracer = meter = None
        if trace_api is not None and _real(trace_api.get_tracer_provider()):
            tracer = trace_api.get_tracer(SCOPE, __version__)
        if metrics_api is not None and _real(metrics_api.get_meter_provider()):
            meter = metrics_api.get_meter(SCOPE, __version__)
        return cls(tracer, meter) if tracer is not None or meter is not None else NO_TELEMETRY

    # -- recording -------------------------------------------------------------------

    def count(self, name: str, attributes: dict[str, Any] | None = None) -> None:
        """Add 1 to the counter ``name`` (one of :data:`INSTRUMENTS`)."""
        instrument = self._instruments.get(name)
        if instrument is not None:
            instrument.add(1, attributes)

    def record_dpop_replay(self) -> None:
        """Count one DPoP proof refused because its ``jti`` was seen (RFC 9449 §11.1)."""
        self.count("ccguard.dpop.replays_refused")

    def wrap_validate(
        self, validate: Callable[[str | bytes, HTTPRequest | None], VerifiedToken]
    ) -> Callable[..., VerifiedToken]:
        """``validate`` inside a ``ccguard.validate`` span (a child of the current
        span, such as the Flask request's), timed into ``ccguard.validation.duration``."""
        tracer = self._tracer
        duration = self._instruments.get("ccguard.validation.duration")
        refusals = self._instruments.get("ccguard.validation.refusals")

        api = sys.modules.get("opentelemetry.trace")
        attach = detach = None
        if tracer is not None and api is not None:
            current_span, in_context = api.get_current_span, api.set_span_in_context
            context_api = sys.modules["opentelemetry.context"]
            attach, detach = context_api.attach, context_api.detach
        # (algorithm, issuer) -> (metric attributes, span attributes), built once each.
        accepted: dict[tuple[str, str], tuple[dict[str, str], dict[str, str]]] = {}

        def traced(token: str | bytes, request: HTTPRequest | None = None) -> VerifiedToken:
            # Only as a child of a recording span (the request's): a validation is
            # never the start of a trace, and an unsampled request costs no span.
            if attach is None or detach is None or not current_span().is_recording():
                return measured(token, request, None)
            span = tracer.start_span("ccguard.validate")
            # Current (attached directly: cheaper than start_as_current_span), so
            # that the fetches made while validating nest under it.
            context_token = attach(in_context(span))
            try:
                return measured(token, request, span)
            finally:
                detach(context_token)
                span.end()

        def measured(token: str | bytes, request: HTTPRequest | None, span: Any) -> VerifiedToken:
            start = time.perf_counter()
            try:
                verified = validate(token, request)
            except Exception as exc:
                outcome = "unavailable" if getattr(exc, "status", None) == 503 else "rejected"
                attrs = {
                    "ccguard.outcome": outcome,
                    "ccguard.reason": str(getattr(exc, "reason", None) or "internal"),
                    "ccguard.error_code": str(getattr(exc, "error", None) or "invalid_token"),
                }
                if duration is not None:
                    duration.record(time.perf_counter() - start, {"ccguard.outcome": outcome})
                if refusals is not None:
                    refusals.add(1, attrs)
                if span is not None:
                    span.set_attributes(attrs)
                    if outcome == "unavailable":
                        # A refusal is the expected answer to a bad token; only a
                        # validator that cannot answer is an error. No exception
                        # text: it is not written for telemetry.
                        span.set_status(_status_error(), attrs["ccguard.reason"])
                raise
            elapsed = time.perf_counter() - start
            # The header as held, not .header (a copy per access); introspected tokens have none.
            key = (str(verified._header.get("alg", "none")), verified.issuer)
            done = accepted.get(key)
            if done is None:
                metric = {"ccguard.outcome": "accepted", "ccguard.algorithm": key[0][:32]}
                done = (metric, {**metric, "ccguard.issuer": key[1]})
                if len(accepted) < 256:  # allowed algorithms times issuers: a few
                    accepted[key] = done
            if duration is not None:
                duration.record(elapsed, done[0])
            if span is not None:
                span.set_attributes(done[1])
            return verified

        return traced

    @contextmanager
    def fetch(self, kind: str, method: str, url: str) -> Iterator[dict[str, Any]]:
        """A client span ``ccguard.fetch.<kind>`` around one outbound request.

        Yields a dict the caller fills with ``http.response.status_code`` and
        ``ccguard.cache_hit`` once it has the answer.
        """
        found: dict[str, Any] = {}
        if self._tracer is None:
            yield found
            return
        trace_api = sys.modules["opentelemetry.trace"]
        with self._tracer.start_as_current_span(
            f"ccguard.fetch.{kind}",
            kind=trace_api.SpanKind.CLIENT,
            attributes=_origin_attributes(method, url),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield found
            except Exception as exc:
                status = getattr(exc, "status", None)
                span.set_attribute("error.type", str(status) if status else type(exc).__name__)
                span.set_status(_status_error())
                raise
            finally:
                span.set_attributes(found)


def _status_error() -> Any:
    return sys.modules["opentelemetry.trace"].StatusCode.ERROR


#: The telemetry of a process without an OpenTelemetry SDK: records nothing.
NO_TELEMETRY = Telemetry()
