"""Benchmark: the cost of OpenTelemetry on the Flask rows of bench_validate.py (docs: Observability).

``python benchmarks/bench_telemetry.py sdk`` builds the Flask benchmark app
twice in one process, before and after an OpenTelemetry SDK is configured
(a tracer provider with a batch span processor whose exporter drops the
spans, and a meter provider with an in-memory reader), and prints the median
per-round ratio of each Flask row with telemetry to the same row without.
``instrumented`` does the same with ``opentelemetry-instrumentation-flask``
on both apps (so both have the request span, and the second has ours under
it). The first-seen row cycles through 2,048 tokens, more than the token
cache holds, so each of its requests verifies a signature; the repeated row
is answered from the token cache. ``python benchmarks/bench_telemetry.py plain`` prints the Flask rows' times
with no SDK (run it against two checkouts to compare them).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_validate import flask_group
from harness import Case, Group, run_groups

from flask_ccguard.testing import TestIssuer

POOL = 2048  # distinct tokens: more than the default token cache (1,024), so first-seen misses
ROWS = ("@require_roles, repeated token", "@require_roles, first-seen RS256")


def _rows(group: Group | None) -> dict[str, Case]:
    if group is None:
        raise SystemExit("the Flask benchmark is unavailable")
    return {case.name: case for case in group.cases if case.name in ROWS}


def _configure_sdk() -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else "sdk"
    rounds = int(argv[1]) if len(argv) > 1 else 30
    issuer = TestIssuer()
    try:
        if mode == "instrumented":
            # Both apps get the Flask request span; only the second has our telemetry.
            from opentelemetry.instrumentation.flask import FlaskInstrumentor

            FlaskInstrumentor().instrument()
        without = _rows(flask_group(issuer, POOL))
        if mode == "plain":
            run_groups([Group("plain", list(without.values()))], rounds=rounds, seconds=0.02)
            print(json.dumps({n: 1e6 / statistics.median(c.rates) for n, c in without.items()}))
            return 0
        _configure_sdk()
        with_sdk = _rows(flask_group(issuer, POOL))
        groups = [Group(name, [without[name], with_sdk[name]]) for name in ROWS]
        run_groups(groups, rounds=rounds, seconds=0.02)
        for group in groups:
            off, on = group.cases
            ratio = statistics.median(group.ratios(on))
            print(
                f"{group.name}: {1e6 / statistics.median(off.rates):.1f} us without telemetry, "
                f"{1e6 / statistics.median(on.rates):.1f} us with an SDK; "
                f"throughput ratio {ratio:.3f} (overhead {100 * (1 / ratio - 1):+.1f} %)"
            )
    finally:
        issuer.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
