"""The load and fault harness (benchmarks/load.py), a few seconds per scenario.

Real gunicorn workers, a real redis-server as the shared cache and a real
TestIssuer on loopback. Asserts correctness, never speed: no valid token
refused while keys were cached, no 5xx but 503, every bad token refused,
issuer requests bounded (one key-set fetch per cooldown per process; with
the shared cache, one refresh per max-age across workers).
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

from benchmarks import load

WORKERS = 3


def _require(ok: bool, what: str) -> None:
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI (.ci/run and tox.ini install it)")
    pytest.skip(f"{what} is not installed; the reliability harness needs it")


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    _require(shutil.which("redis-server") is not None, "redis-server (apt-get install redis-server)")
    _require(importlib.util.find_spec("gunicorn") is not None, "gunicorn (pip install gunicorn)")
    _require(importlib.util.find_spec("redis") is not None, "the redis client (pip install redis)")


def _run(scenario: str, cache: str, duration: float, **extra: float) -> load.Result:
    settings = load.Settings(
        duration=duration,
        workers=WORKERS,
        threads=4,
        clients=8,
        cache=cache,
        cooldown=1,
        max_age=3,
        max_requests=50_000,
        **extra,  # type: ignore[arg-type]
    )
    result = load.run(scenario, settings)
    report = result.report()
    assert report["violations"] == [], load.format_report(report)
    kinds = {kind for kind, _ in result.scenario.mix}
    assert kinds <= set(report["by_kind"]), "every kind of token was sent"
    assert set(result.event_times) == {action for _, action in result.scenario.events}
    return result


# (scenario, cache, seconds, counter of the workers' stats() that shows the fault bit)
CASES = [
    ("steady", "redis", 3, "unknown_kid_refetches"),
    ("issuer_down", "redis", 4, "key_fetch_failures"),
    ("issuer_slow", "redis", 6, "key_fetch_failures"),
    ("rotation", "redis", 4, "unknown_kid_refetches"),
    ("issuer_error", "redis", 4, "key_fetch_failures"),
    ("kid_flood", "redis", 3, "cooldown_refusals"),
    ("kid_flood", "memory", 3, "cooldown_refusals"),
    ("refresh", "redis", 5, "key_set_cache_hits"),
]


@pytest.mark.parametrize(("scenario", "cache", "seconds", "counter"), CASES)
def test_scenario_keeps_valid_tokens_working_and_the_issuer_unhammered(scenario, cache, seconds, counter):
    result = _run(scenario, cache, seconds)
    stats = result.summed_stats()
    assert stats["validations_accepted"] > 0
    assert stats.get(counter, 0) > 0, f"the scenario did not exercise {counter}: {stats}"
    if scenario == "rotation":
        # Within one cooldown every worker has fetched the new key.
        late = [status for t, kind, status, _ in result.records if kind == "valid_new" and t > seconds - 1]
        assert late, "tokens of the new key were sent in the last second"
        assert set(late) == {200}


# Issue 18: state shared across workers and hosts (opaque tokens, Redis).
SHARED_CASES = [
    pytest.param("introspection", 4, id="i18_05_introspection_across_workers"),
    pytest.param("redis_outage", 6, id="i18_05_redis_outage"),
    pytest.param("second_host", 4, id="i18_05_second_host"),
    pytest.param("dpop_replay", 4, id="i18_05_dpop_replays_to_other_workers_and_hosts"),
]


@pytest.mark.parametrize(("scenario", "seconds"), SHARED_CASES)
def test_shared_state_scenario(scenario: str, seconds: float) -> None:
    # ttl 2 s: every token's answer is refreshed during the run, so the bound
    # "at most one issuer call per token per ttl across workers" is exercised.
    result = _run(scenario, "redis", seconds, introspection_ttl=2)
    report = result.report()
    assert report["redis_commands_per_request"] > 0
    if scenario == "dpop_replay":
        # No replay accepted (the violations), and replays were sent.
        assert set(report["by_kind"]["dpop_replay"]) == {"401"}
        assert set(report["by_kind"]["dpop"]) == {"200"}
        return
    assert report["by_kind"]["opaque"] == {"200": report["by_kind"]["opaque"].get("200", 0)}
    assert report["issuer_requests"]["during_run"]["introspect"] > 0
    assert report["redis_commands_per_request"] > 0
    if scenario == "second_host":
        assert len(result.worker_stats) == 2 * WORKERS
    if scenario == "redis_outage":
        assert report["redis_commands_after_restart"] > 0
