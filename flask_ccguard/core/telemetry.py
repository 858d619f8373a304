"""OpenTelemetry spans and metrics, through ``opentelemetry-api`` only, when an SDK is set up.

Optional (``pip install "flask-ccguard[otel]"``): nothing here imports
OpenTelemetry unless the application already has (an SDK cannot be configured
without importing it), and :meth:`Telemetry.detect` decides once, when a
validator is built, whether a tracer or meter provider other than the API's
no-op ones is installed. An inactive :class:`Telemetry` costs nothing on the hot
path: the validator's ``validate`` is only wrapped when telemetry is active, and
fetches (rare) check one boolean. So: **configure the SDK before creating the
app or the validator**.

With an SDK, a token answered from the token cache makes no OpenTelemetry
call either (:mod:`.traced_validation` wraps the validator).

Attributes carry outcomes, reasons, RFC 6750 error codes, algorithms, the
configured issuer and the origin of fetched URLs; never a token, a claim value,
a key or a query string (the introspection request's body holds the token: only
its URL's origin and path are named).
"""

from __future__ import annotations

import itertools
import sys
import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Callable
from urllib.parse import urlsplit

from .._version import __version__
from .traced_validation import Validate, instrument, status_error, telemetry_failed

__all__ = ["DURATION_BUCKETS", "INSTRUMENTS", "NO_TELEMETRY", "SCOPE", "Telemetry"]

#: The instrumentation scope: the tracer's and the meter's name.
SCOPE = "flask_ccguard"

#: Metric name → (kind, unit, description); the table in docs/observability.rst.
INSTRUMENTS: dict[str, tuple[str, str, str]] = {
    "ccguard.validation.duration": (
        "histogram",
        "s",
        "Duration of token validations not answered from the token cache",
    ),
    "ccguard.validation.cache_hits": (
        "observable_counter",
        "{validation}",
        "Tokens accepted from the token cache (no duration recorded)",
    ),
    "ccguard.validation.refusals": ("counter", "{refusal}", "Tokens refused, by reason"),
    "ccguard.key_set.fetches": ("counter", "{fetch}", "Key-set fetches (failures included)"),
    "ccguard.key_set.fetch_failures": ("counter", "{fetch}", "Key-set fetches that failed"),
    "ccguard.key_set.stale_served": ("counter", "{validation}", "Validations served by keys due for refresh"),
    "ccguard.key_set.cooldown_refusals": ("counter", "{refusal}", "Unknown kid refused without a refetch"),
    "ccguard.introspection.calls": ("counter", "{call}", "Calls to an introspection endpoint (RFC 7662)"),
    "ccguard.introspection.cache_hits": ("counter", "{hit}", "Opaque tokens answered from the cache"),
    "ccguard.dpop.replays_refused": ("counter", "{proof}", "DPoP proofs refused as replays (RFC 9449 §11.1)"),
}

#: Bucket boundaries (seconds) advised for ``ccguard.validation.duration``: a signature
#: check takes tens of microseconds, an introspection call or a key fetch milliseconds
#: to seconds (the SDK's default boundaries start at 5 s and would put all in one bucket).
DURATION_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

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


class _CacheHitCounts:
    """The token-cache hit counts of the validators sharing one meter, summed for
    its one observable counter (an SDK keeps the first callback registered under a
    name). A validator that is collected leaves its last count behind, so the sum
    never goes down.

    A validator is freed by the cyclic collector, which runs its finalizer in
    whatever thread allocates at that moment, possibly one holding ``_lock``
    (the metric reader summing): the finalizer only appends to ``_dead``, and
    the next sum retires it under the lock.
    """

    def __init__(self, meter: Any) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, Callable[[], int]] = {}
        self._dead: list[int] = []  # appended by finalizers, without the lock
        self._retired = 0
        self._keys = itertools.count()
        _kind, unit, description = INSTRUMENTS["ccguard.validation.cache_hits"]
        meter.create_observable_counter(
            "ccguard.validation.cache_hits", callbacks=[self._observe], unit=unit, description=description
        )

    def add(self, owner: object, read: Callable[[], int]) -> None:
        """Count ``read()`` until ``owner`` is collected (``read`` must not hold ``owner``)."""
        key = next(self._keys)
        with self._lock:
            # Here too, not only when metrics are collected (a reader may never
            # collect): each validator made and dropped would keep its counter.
            self._retire()
            self._live[key] = read
        weakref.finalize(owner, self._dead.append, key)

    def _retire(self) -> None:
        # Under _lock: keep the last counts of the collected owners, drop their reads.
        while self._dead:
            read = self._live.pop(self._dead.pop(), None)
            if read is not None:
                self._retired += read()

    def total(self) -> int:
        with self._lock:
            self._retire()
            return self._retired + sum(read() for read in self._live.values())

    def _observe(self, _options: Any) -> Iterable[Any]:
        return [sys.modules["opentelemetry.metrics"].Observation(self.total())]


# One per meter (an SDK hands out the same meter for the same scope).
_HIT_COUNTS: weakref.WeakKeyDictionary[Any, _CacheHitCounts] = weakref.WeakKeyDictionary()
_HIT_COUNTS_LOCK = threading.Lock()


class Telemetry:
    """A validator's tracer and meter, or nothing (:data:`NO_TELEMETRY`).

    :param tracer: an OpenTelemetry tracer, or None.
    :param meter: an OpenTelemetry meter, or None.
    """

    def __init__(self, tracer: Any = None, meter: Any = None) -> None:
        #: True when spans or metrics are recorded; checked before any work.
        self.active = tracer is not None or meter is not None
        self._tracer = tracer
        self._meter = meter
        self._instruments: dict[str, Any] = {}
        if meter is not None:
            for name, (kind, unit, description) in INSTRUMENTS.items():
                if kind == "histogram":
                    self._instruments[name] = meter.create_histogram(
                        name, unit=unit, description=description, explicit_bucket_boundaries_advisory=DURATION_BUCKETS
                    )
                elif kind == "counter":
                    self._instruments[name] = meter.create_counter(name, unit=unit, description=description)

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
            try:
                instrument.add(1, attributes)
            except Exception:  # the SDK's hooks never decide a fetch or an answer
                telemetry_failed()

    def count_cache_hits(self, owner: object, read: Callable[[], int]) -> None:
        """Report ``read()`` (a count that only grows) as ``ccguard.validation.cache_hits``
        for as long as ``owner`` lives; afterwards its last value stays in the sum."""
        meter = self._meter
        if meter is None:
            return
        with _HIT_COUNTS_LOCK:
            counts = _HIT_COUNTS.get(meter)
            if counts is None:
                counts = _HIT_COUNTS[meter] = _CacheHitCounts(meter)
        counts.add(owner, read)

    def instrument(
        self, validate: Validate, verify: Validate, configured: Callable[[str], str] = str
    ) -> tuple[Validate, Validate]:
        """Wrap a validator's ``validate`` and the ``verify`` it calls on a token-cache
        miss (:func:`.traced_validation.instrument`); ``configured`` maps a token's
        issuer to the configured one (a tenant's to its template) for ``ccguard.issuer``."""
        return instrument(self._tracer, self._instruments, validate, verify, configured)

    @contextmanager
    def fetch(self, kind: str, method: str, url: str) -> Iterator[dict[str, Any]]:
        """A client span ``ccguard.fetch.<kind>`` around one outbound request.

        Yields a dict the caller fills with ``http.response.status_code`` and
        ``ccguard.cache_hit`` once it has the answer.
        """
        found: dict[str, Any] = {}
        span: Any = None
        context_token = None
        if self._tracer is not None:
            try:
                trace_api = sys.modules["opentelemetry.trace"]
                span = self._tracer.start_span(
                    f"ccguard.fetch.{kind}", kind=trace_api.SpanKind.CLIENT, attributes=_origin_attributes(method, url)
                )
                context_token = sys.modules["opentelemetry.context"].attach(trace_api.set_span_in_context(span))
            except Exception:  # the SDK's hooks never decide a fetch
                telemetry_failed()
        if context_token is None:
            yield found
            return
        failure: Exception | None = None
        try:
            yield found
        except Exception as exc:
            failure = exc
            raise
        finally:
            sys.modules["opentelemetry.context"].detach(context_token)
            try:
                if failure is not None:
                    status = getattr(failure, "status", None)
                    if isinstance(status, int):  # an answer came, and was unusable
                        found["http.response.status_code"] = status
                    found.setdefault("error.type", type(failure).__name__)
                status = found.get("http.response.status_code")
                if isinstance(status, int) and status >= 400:
                    # HTTP client conventions: an error status is the error's type.
                    found["error.type"] = str(status)
                if "error.type" in found:
                    span.set_status(status_error())
                span.set_attributes(found)
                span.end()
            except Exception:
                telemetry_failed()


#: The telemetry of a process without an OpenTelemetry SDK: records nothing.
NO_TELEMETRY = Telemetry()
