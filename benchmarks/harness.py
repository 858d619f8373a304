"""Interleaved benchmark rounds: throughput ratios measured side by side in one run.

The machine may be shared and noisy, so absolute rates drift. Batches are
timed in CPU time of the timing thread by default, which leaves out the time
other processes hold the cores. Each round times
one batch of every case of a group, in a shuffled order, and divides each
case's rate by the group's baseline rate *of the same round*; the reported
figure is the median of those per-round ratios.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Case", "Group", "run_groups", "use_clock"]

#: CPU time of the timing thread: time the machine gives to other processes
#: (or to the test issuer's thread) is not counted against a batch.
CLOCK: Callable[[], float] = time.thread_time


def use_clock(name: str) -> None:
    """Time batches by ``"thread"`` CPU time (the default) or ``"wall"`` time."""
    global CLOCK
    CLOCK = time.thread_time if name == "thread" else time.perf_counter


@dataclass
class Case:
    """One contender: ``op(item)`` is one operation; items are cycled through."""

    name: str
    op: Callable[[Any], object]
    items: Sequence[Any]
    batch: int = 0
    rates: list[float] = field(default_factory=list)
    _pos: int = 0

    def take(self, n: int) -> list[Any]:
        """The next ``n`` items, continuing where the previous batch stopped."""
        out: list[Any] = []
        items, pos = self.items, self._pos
        while len(out) < n:
            chunk = items[pos : pos + n - len(out)]
            out.extend(chunk)
            pos = (pos + len(chunk)) % len(items)
        self._pos = pos
        return out

    def time_batch(self, n: int) -> float:
        items = self.take(n)
        op = self.op
        clock = CLOCK
        start = clock()
        for item in items:
            op(item)
        return clock() - start


@dataclass
class Group:
    """Cases compared with each other; ``cases[0]`` is the baseline."""

    name: str
    cases: list[Case]

    def ratios(self, case: Case) -> list[float]:
        return [r / b for r, b in zip(case.rates, self.cases[0].rates)]

    def summary(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for case in self.cases:
            ratios = self.ratios(case)
            out[case.name] = {
                "ratio": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "us_per_op": 1e6 / statistics.median(case.rates),
                "ops_per_s": statistics.median(case.rates),
                "batch": case.batch,
            }
        return out


def _calibrate(case: Case, seconds: float) -> None:
    case.time_batch(min(20, len(case.items)))  # warm up (and fail early if the case is broken)
    n = 20
    while True:
        elapsed = case.time_batch(n)
        if elapsed >= seconds / 4 or n >= 1_000_000:
            break
        n *= 4
    case.batch = max(10, int(n * seconds / max(elapsed, 1e-9)))


def run_groups(
    groups: Sequence[Group],
    *,
    rounds: int,
    seconds: float,
    seed: int = 8,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Calibrate every case to about ``seconds`` per batch, then run ``rounds`` interleaved rounds."""
    for group in groups:
        for case in group.cases:
            _calibrate(case, seconds)
    rng = random.Random(seed)
    for index in range(rounds):
        for group in groups:
            order = list(group.cases)
            rng.shuffle(order)
            for case in order:
                case.rates.append(case.batch / case.time_batch(case.batch))
        if progress is not None:
            progress(f"round {index + 1}/{rounds}")
