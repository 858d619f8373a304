"""A real OpenTelemetry SDK for the telemetry tests: in-memory exporters, read back.

Imported only by test modules that have already skipped themselves when the
SDK is not installed (``pytest.importorskip("opentelemetry.sdk")``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from flask_ccguard.core.telemetry import SCOPE

__all__ = ["Recorded", "installed_sdk", "request_span", "reset_globals"]


def reset_globals() -> None:
    # The API lets a process set its providers once; OpenTelemetry's own test
    # helpers reset these private globals the same way between tests.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    from opentelemetry.metrics import _internal as metrics_internal

    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None


class Recorded:
    def __init__(self, spans: InMemorySpanExporter, reader: InMemoryMetricReader) -> None:
        self.exporter = spans
        self.reader = reader

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, value) of each point of metric ``name`` (sum, or histogram count)."""
        found = []
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                if sm.scope.name != SCOPE:
                    continue
                for metric in sm.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            value = getattr(point, "value", None)
                            found.append(
                                (
                                    dict(point.attributes or {}),
                                    getattr(point, "count", None) if value is None else value,
                                )
                            )
        return found

    def metric_units(self) -> dict[str, str]:
        data = self.reader.get_metrics_data()
        return {
            m.name: m.unit or ""
            for rm in (data.resource_metrics if data else ())
            for sm in rm.scope_metrics
            for m in sm.metrics
            if sm.scope.name == SCOPE
        }

    def all_attribute_text(self) -> str:
        """Every attribute value, span name, event and status text recorded, as one string."""
        parts: list[str] = []
        for span in self.spans():
            parts += [span.name, str(span.status.description or "")]
            parts += [f"{k}={v!s}" for k, v in (span.attributes or {}).items()]
            for event in span.events:
                parts += [event.name] + [f"{k}={v!s}" for k, v in (event.attributes or {}).items()]
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        parts += [f"{k}={v!s}" for k, v in (point.attributes or {}).items()]
        return "\n".join(parts)


@contextmanager
def installed_sdk(*, processor: SpanProcessor | None = None, exemplar_filter: Any = None) -> Iterator[Recorded]:
    """Tracer and meter providers set globally for the block, recording in memory;
    ``processor`` (a span processor) and ``exemplar_filter`` are the application's own."""
    reset_globals()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    if processor is not None:
        tracer_provider.add_span_processor(processor)
    reader = InMemoryMetricReader()
    options = {} if exemplar_filter is None else {"exemplar_filter": exemplar_filter}
    meter_provider = MeterProvider(metric_readers=[reader], **options)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    try:
        yield Recorded(exporter, reader)
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()
        reset_globals()


def request_span() -> Any:
    """A recording span standing for the request (the validation span is only made under one)."""
    return trace.get_tracer("tests").start_as_current_span("request")
