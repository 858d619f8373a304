"""The ByteStore protocol, one table run against every backend (issue 15 item 6).

Redis is a real throw-away ``redis-server`` (skipped outside CI when absent).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from flask_ccguard.core.store import (
    MAX_STORE_SECONDS,
    ByteStore,
    FailOpen,
    FileStore,
    MemoryStore,
    RedisStore,
    open_store,
    redact,
)

Factory = Callable[[str], Any]  # namespace -> store


@pytest.fixture(params=["memory", "file", "redis"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """A factory of stores of one backend, by namespace (one shared backing per test)."""
    if request.param == "memory":
        memory: dict[str, MemoryStore] = {}  # one per namespace, as each use has its own
        yield lambda ns: memory.setdefault(ns, MemoryStore(100, 1 << 20))
    elif request.param == "file":
        yield lambda ns: open_store(f"file://{tmp_path / 'store'}", ns, max_entries=1, max_bytes=1)
    else:
        url = request.getfixturevalue("redis_url")
        stores: list[RedisStore] = []

        def factory(ns: str) -> RedisStore:
            store = open_store(url, ns, max_entries=1, max_bytes=1)
            assert isinstance(store, RedisStore)
            stores.append(store)
            return store

        yield factory
        if stores:
            stores[0].client.flushdb()


@pytest.mark.parametrize("key", ["k", b"k"], ids=["i15_06_str_key", "i15_06_bytes_key"])
def test_i15_06_get_set_delete(make: Factory, key: Any) -> None:
    store: ByteStore = make("t")
    assert store.get(key) is None
    store.set(key, b"\x00value\xff", 60)
    assert store.get("k") == store.get(b"k") == b"\x00value\xff"  # one key in either form
    store.set(key, b"new", 60)
    assert store.get(key) == b"new"
    store.delete(key)
    assert store.get(key) is None
    store.delete(key)  # absent: no error


def test_i15_06_entries_expire(make: Factory) -> None:
    store = make("t")
    store.set("short", b"1", 0.3)
    store.set("long", b"2", 60)
    store.set("none", b"3", 0)  # no lifetime: nothing stored
    assert store.get("short") == b"1"
    assert store.get("none") is None
    time.sleep(0.45)
    assert store.get("short") is None
    assert store.get("long") == b"2"
    assert store.add_if_absent("short", b"again", 60)  # an expired entry is absent


def test_i15_06_every_entry_is_bounded_to_a_day(make: Factory) -> None:
    store = make("t")
    store.set("huge", b"1", float(10**300))
    store.add_if_absent("inf", b"1", float("inf"))
    for key in ("huge", "inf"):
        left = store.ttl(key)
        assert left is not None and 0 < left <= MAX_STORE_SECONDS, (key, left)


def test_i15_06_add_if_absent(make: Factory) -> None:
    store = make("t")
    assert store.add_if_absent("jti", b"first", 60) is True
    assert store.add_if_absent("jti", b"second", 60) is False
    assert store.get("jti") == b"first"
    store.delete("jti")
    assert store.add_if_absent("jti", b"third", 60) is True


def test_i15_06_add_if_absent_is_atomic_under_threads(make: Factory) -> None:
    stores = [make("t") for _ in range(4)]  # several handles on one backing, as workers have

    def race(n: int, key: str, barrier: threading.Barrier, wins: list[int]) -> None:
        barrier.wait()
        if stores[n % len(stores)].add_if_absent(key, str(n).encode(), 60):
            wins.append(n)

    for round_ in range(5):
        key = f"race-{round_}"
        barrier = threading.Barrier(16)
        wins: list[int] = []
        threads = [threading.Thread(target=race, args=(n, key, barrier, wins)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1, wins
        assert stores[0].get(key) == str(wins[0]).encode()


def test_i15_06_namespaces_do_not_meet(make: Factory) -> None:
    http, dpop = make("http"), make("dpop")
    http.set("k", b"http", 60)
    assert dpop.get("k") is None
    assert dpop.add_if_absent("k", b"dpop", 60)
    assert (http.get("k"), dpop.get("k")) == (b"http", b"dpop")


def test_i15_06_redis_keys_carry_the_prefix_and_an_expiry(redis_url: str) -> None:
    store = open_store(redis_url, "dpop", max_entries=1, max_bytes=1)
    assert isinstance(store, RedisStore)
    store.set("a", b"1", 30)
    store.add_if_absent(b"b", b"2", 30)
    keys = sorted(store.client.keys("*"))
    assert keys == [b"ccguard:dpop:a", b"ccguard:dpop:b"]
    assert all(0 < store.client.pttl(k) <= 30_000 for k in keys)
    store.client.flushdb()


def test_i15_06_memory_store_is_bounded_least_recently_used_first() -> None:
    store = MemoryStore(max_entries=3, max_bytes=40)
    for key in "abc":
        store.set(key, b"x", 60)
    store.get("a")  # a is now the most recently used
    store.set("d", b"x", 60)
    assert [store.get(k) is not None for k in "abcd"] == [True, False, True, True]
    store.set("big", b"y" * 41, 60)  # larger than the whole budget: not stored
    assert store.get("big") is None and len(store.data) == 3
    store.set("e", b"z" * 30, 60)  # 31 bytes: the others make room
    assert store.size <= 40 and store.get("e") == b"z" * 30
    assert store.add_if_absent("f", b"y" * 41, 60) is False  # not stored, so not added


def test_i15_06_file_store_sweeps_expired_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flask_ccguard.core.store._SWEEP_EVERY", 10)
    store = FileStore(str(tmp_path / "s"), "http")
    for n in range(9):
        store.set(f"gone-{n}", b"1", 0.05)
    time.sleep(0.1)
    store.set("kept", b"2", 60)  # the tenth write sweeps
    names = [n for n in os.listdir(store.directory) if not n.startswith(".")]
    assert len(names) == 1 and store.get("kept") == b"2"
    assert all(os.stat(os.path.join(store.directory, n)).st_mode & 0o077 == 0 for n in names)


def test_i15_06_fail_open_turns_errors_into_misses(caplog: pytest.LogCaptureFixture) -> None:
    import redis

    url = "redis://:hunter2@127.0.0.1:1/0"  # nothing listens on port 1
    inner = open_store(url, "http", max_entries=1, max_bytes=1)
    store = FailOpen(inner, redact(url))
    assert store.get("k") is None
    store.set("k", b"v", 60)
    store.delete("k")
    assert store.add_if_absent("k", b"v", 60) is True  # open: nothing known to be there
    assert store.errors == 4
    assert caplog.text.count("cache read failed") == 1  # one warning a minute, not one per call
    assert "hunter2" not in caplog.text
    with pytest.raises(redis.ConnectionError):  # unwrapped, the caller fails closed
        inner.add_if_absent("k", b"v", 60)


# -- the introspection answers over a store ------------------------------------------------


def test_i15_06_introspection_answers_are_shared_under_the_tokens_digest(make: Factory) -> None:
    """Two workers' introspectors on one store: the second is answered from it,
    and the store holds the token's SHA-256, never the token (RFC 7662 §4)."""
    from flask_ccguard.core.fetch.http import HTTPClient
    from flask_ccguard.core.introspection import Introspector
    from flask_ccguard.testing import profile_issuer

    with profile_issuer("ibm_verify") as ibm:
        name, secret = next(iter(ibm.introspection_clients.items()))
        raw = {"endpoint": ibm.introspection_endpoint, "client_id": name, "client_secret": secret}
        options = Introspector.check_options(raw, "introspection")
        answers, inactive = make("introspection"), make("introspection-inactive")
        workers = [
            Introspector(HTTPClient(timeout=2), options, clock=time.time, answers=answers, inactive=inactive)
            for _ in range(2)
        ]
        token, bad = ibm.mint(), "NoSuchOpaqueToken0123456789abcdef"
        first = workers[0].introspect(token)
        assert first["active"] is True and workers[1].introspect(token) == first
        assert workers[0].introspect(bad) == workers[1].introspect(bad) == {"active": False}
        assert ibm.hits["introspect"] == 2  # one call per token, for both workers
    digest = hashlib.sha256(token.encode()).digest()
    assert answers.get(digest) is not None and inactive.get(hashlib.sha256(bad.encode()).digest()) is not None
    if isinstance(answers, MemoryStore):
        assert all(token.encode() not in k + v for k, v in answers.data.items())
    if isinstance(answers, RedisStore):
        assert not any(token.encode() in k for k in answers.client.keys("*"))
