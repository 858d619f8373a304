"""Issue 18: state shared across workers and hosts through ``CCGUARD_CACHE``.

Introspection answers (shared, failing open, single flight per process), the
DPoP replay store (shared, failing closed) and the nonce secret, against a
real redis-server and real loopback issuers.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from flask_ccguard import TokenValidator
from flask_ccguard.core.errors import IntrospectionUnavailable
from flask_ccguard.core.fetch.http import HTTPClient
from flask_ccguard.core.introspection import Introspector, shared_namespace
from flask_ccguard.core.replay_store import (
    FailClosed,
    ReplayStoreUnavailable,
    SharedNonceSecret,
    open_replay_store,
)
from flask_ccguard.core.store import FailOpen, FileStore, MemoryStore, RedisStore
from tests.conftest import introspection_spec, send_body, serving


@pytest.fixture
def redis(redis_url: str) -> Iterator[Any]:
    import redis as redis_py

    client = redis_py.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


def _dead_redis() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"  # nothing listens there


def _cache(kind: str, tmp_path: Path, redis_url: str) -> str:
    return redis_url if kind == "redis" else f"file://{tmp_path / 'cache'}"


# -- 1. introspection answers ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["file", "redis"])
def test_i18_01_introspection_answers_are_shared_between_processes(
    ibm: Any, tmp_path: Path, redis_url: str, kind: str
) -> None:
    # Two validators stand for two workers (or hosts): one call for both.
    cache = _cache(kind, tmp_path, redis_url)
    a = TokenValidator([introspection_spec(ibm)], cache=cache)
    b = TokenValidator([introspection_spec(ibm)], cache=cache)
    token = ibm.mint()
    assert a.validate(token).client_id == ibm.client_id
    assert b.validate(token).client_id == ibm.client_id
    assert ibm.hits["introspect"] == 1
    bad = "not-a-token-" + "x" * 20
    for v in (a, b):
        with pytest.raises(Exception, match="not active"):
            v.validate(bad)
    assert ibm.hits["introspect"] == 2  # the inactive answer is shared too


def test_i18_01_shared_answers_are_keyed_by_a_digest_under_the_issuers_namespace(ibm: Any, redis: Any) -> None:
    url = redis.connection_pool.connection_kwargs
    cache = f"redis://{url['host']}:{url['port']}/0"
    validator = TokenValidator([introspection_spec(ibm, ttl=30)], cache=cache)
    token = ibm.mint()
    validator.validate(token)
    keys = list(redis.scan_iter(b"ccguard:introspection*"))
    prefix = f"ccguard:{shared_namespace(ibm.issuer)}:".encode()
    assert keys == [prefix + hashlib.sha256(token.encode()).digest()]
    assert token.encode() not in b"".join(keys) + redis.get(keys[0])
    assert 0 < redis.pttl(keys[0]) <= 30_000  # min(ttl, exp - now)
    # Another issuer's namespace: its answers never vouch here.
    assert shared_namespace("https://other.example") != shared_namespace(ibm.issuer)


def test_i18_01_a_redis_outage_fails_open_to_direct_introspection(ibm: Any) -> None:
    validator = TokenValidator([introspection_spec(ibm)], cache=_dead_redis())
    token = ibm.mint()
    for _ in range(3):
        assert validator.validate(token).client_id == ibm.client_id
    # This process still remembers its own answers while the shared store is down.
    assert ibm.hits["introspect"] == 1
    introspector = validator.registry.entries()[0].introspector
    assert introspector is not None
    shared = introspector._answers.shared  # type: ignore[attr-defined]
    assert isinstance(shared, FailOpen) and shared.errors >= 1


class _SlowIntrospection(BaseHTTPRequestHandler):
    calls = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            type(self).calls += 1
        time.sleep(0.5)
        send_body(self, json.dumps({"active": True, "exp": int(time.time()) + 60}).encode())

    def log_message(self, *args: Any) -> None:
        pass


def test_i18_01_single_flight_one_call_for_concurrent_requests_with_one_token() -> None:
    with serving(_SlowIntrospection) as url:
        options = Introspector.check_options(
            {
                "endpoint": f"{url}/introspect",
                "client_id": "rs",
                "client_secret": "s",
            },
            "introspection",
        )
        introspector = Introspector(HTTPClient(timeout=5), options, clock=time.time)
        answers: list[Any] = []

        def ask() -> None:
            answers.append(introspector.introspect("opaque-token-1"))

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [a["active"] for a in answers] == [True] * 8
        assert _SlowIntrospection.calls == 1
        assert introspector._flights == {}


def test_i18_01_single_flight_shares_a_failure_without_asking_again() -> None:
    options = Introspector.check_options(
        {"endpoint": "http://127.0.0.1:9/introspect", "client_id": "rs", "client_secret": "s"}, "introspection"
    )
    introspector = Introspector(HTTPClient(timeout=1), options, clock=time.time)
    with pytest.raises(IntrospectionUnavailable):
        introspector.introspect("opaque-token-2")
    assert introspector._flights == {}  # nothing left behind after a failure


# -- 2. the replay store -----------------------------------------------------------------


def test_i18_02_replay_store_backends(tmp_path: Path, redis_url: str) -> None:
    assert isinstance(open_replay_store(None), MemoryStore)
    file_store = open_replay_store(f"file://{tmp_path}")
    assert isinstance(file_store, FailClosed) and isinstance(file_store.inner, FileStore)
    redis_store = open_replay_store(redis_url)
    assert isinstance(redis_store, FailClosed) and isinstance(redis_store.inner, RedisStore)
    assert redis_store.inner.prefix == b"ccguard:dpop:"
    other = open_replay_store(redis_url)  # another worker's handle
    jti = f"jti-{time.time()}"
    assert redis_store.add_if_absent(jti, b"1", 60) is True
    assert other.add_if_absent(jti, b"1", 60) is False  # the replay, seen by every worker


def test_i18_02_replay_store_fails_closed_with_503_unless_configured_open() -> None:
    closed = open_replay_store(_dead_redis())
    with pytest.raises(ReplayStoreUnavailable) as caught:
        closed.add_if_absent("jti", b"1", 60)
    assert caught.value.status == 503
    assert caught.value.headers()["Retry-After"] == "5"
    assert caught.value.reason == "replay_store_unavailable"
    opened = open_replay_store(_dead_redis(), fail_open=True)
    assert opened.add_if_absent("jti", b"1", 60) is True


# -- 3. the nonce secret -------------------------------------------------------------------

_CHILD = """
import sys
from flask_ccguard.core.replay_store import SharedNonceSecret, open_replay_store
print(SharedNonceSecret(open_replay_store(sys.argv[1])).get().hex())
"""


@pytest.mark.parametrize("kind", ["file", "redis"])
def test_i18_03_nonce_secret_is_the_same_in_every_process(tmp_path: Path, redis_url: str, kind: str) -> None:
    cache = _cache(kind, tmp_path, redis_url)
    procs = [
        subprocess.Popen([sys.executable, "-c", _CHILD, cache], stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    secrets = {p.communicate(timeout=30)[0].strip() for p in procs}
    mine = SharedNonceSecret(open_replay_store(cache)).get().hex()
    assert len(secrets) == 1 and secrets == {mine} and len(mine) == 64


def test_i18_03_nonce_secret_changes_daily_and_is_read_once_a_day(redis_url: str) -> None:
    now = [1_700_000_000.0]
    store = open_replay_store(redis_url)
    source = SharedNonceSecret(store, clock=lambda: now[0])
    first = source.get()
    assert source.get() is first  # cached: no store operation
    now[0] += 86400
    assert source.get() != first


# -- 4. bounded state ----------------------------------------------------------------------


def test_i18_04_every_redis_key_has_the_prefix_and_an_expiry(ibm: Any, redis: Any, redis_url: str) -> None:
    validator = TokenValidator([introspection_spec(ibm)], cache=redis_url)
    for _ in range(3):
        validator.validate(ibm.mint())
    with pytest.raises(Exception, match="not active"):
        validator.validate("random-opaque-" + "y" * 20)
    replay = open_replay_store(redis_url)
    replay.add_if_absent("some-jti", b"1", 60)
    SharedNonceSecret(replay).get()
    keys = list(redis.scan_iter(count=1000))
    assert len(keys) >= 6
    for key in keys:
        assert key.startswith(b"ccguard:"), key
        assert redis.pttl(key) > 0, key


def test_i18_01_a_process_waits_for_the_answer_of_the_lease_holder(ibm: Any, redis: Any, redis_url: str) -> None:
    # Another process (here: the test) holds the lease on this token and stores
    # the answer a moment later: this process must use it, not call the issuer.
    import struct

    from flask_ccguard.core.store import RedisStore

    token = ibm.mint()
    digest = hashlib.sha256(token.encode()).digest()
    other = RedisStore(redis, shared_namespace(ibm.issuer))
    assert other.add_if_absent(b"lease:" + digest, b"1", 2)
    answer = {"active": True, **ibm.claims_of(token)}
    entry = struct.pack(">d", time.time() + 30) + json.dumps(answer).encode()
    threading.Timer(0.3, other.set, (digest, entry, 30)).start()
    validator = TokenValidator([introspection_spec(ibm)], cache=redis_url)
    assert validator.validate(token).client_id == ibm.client_id
    assert ibm.hits["introspect"] == 0


def test_i18_01_an_expired_local_copy_never_deletes_a_newer_shared_answer(ibm: Any, redis: Any, redis_url: str) -> None:
    now = [time.time()]
    a = TokenValidator([introspection_spec(ibm, ttl=10)], cache=redis_url, clock=lambda: now[0])
    b = TokenValidator([introspection_spec(ibm, ttl=10)], cache=redis_url, clock=lambda: now[0])
    token = ibm.mint()
    a.validate(token)
    b.validate(token)  # b copies the answer locally
    assert ibm.hits["introspect"] == 1
    now[0] += 11  # both copies are past their end of validity
    redis.flushdb()
    a.validate(token)  # a asks again and shares the new answer
    b.validate(token)  # b drops its old copy and takes a's, without a call
    assert ibm.hits["introspect"] == 2


class _EchoSource:
    """A nonce source whose nonce is its secret (the real one is an HMAC of it)."""

    def __init__(self, secret: bytes) -> None:
        self.nonce = secret.hex()

    def current(self) -> str:
        return self.nonce

    def is_valid(self, nonce: str) -> bool:
        return nonce == self.nonce


def test_i18_03_daily_nonce_source_agrees_across_handles_and_survives_midnight(redis_url: str) -> None:
    from flask_ccguard.core.replay_store import DailyNonceSource

    now = [1_800_000_000.0]
    a = DailyNonceSource(SharedNonceSecret(open_replay_store(redis_url), clock=lambda: now[0]), _EchoSource)
    b = DailyNonceSource(SharedNonceSecret(open_replay_store(redis_url), clock=lambda: now[0]), _EchoSource)
    yesterday = a.current()
    assert b.is_valid(yesterday) and b.current() == yesterday
    now[0] += 86400
    assert a.current() != yesterday and a.current() == b.current()
    assert a.is_valid(yesterday)  # the previous day's nonce, once more


# -- 2/3 wired into the Flask extension (DPoP, issue 16) --------------------------------------


def _dpop_headers(token: str, proof: str) -> dict[str, str]:
    return {"Authorization": f"DPoP {token}", "DPoP": proof}


def test_i18_02_a_proof_accepted_by_one_worker_is_refused_by_another(ccguard_issuer: Any, redis_url: str) -> None:
    from tests.conftest import make_app
    from tests.dpop_proofs import DPoPKey

    key = DPoPKey()
    one, two = (make_app(ccguard_issuer, CCGUARD_CACHE=redis_url) for _ in range(2))  # two workers
    token = ccguard_issuer.mint(cnf={"jkt": key.jkt})
    proof = key.proof("GET", "http://localhost/v", token)
    assert one.test_client().get("/v", headers=_dpop_headers(token, proof)).status_code == 200
    replay = two.test_client().get("/v", headers=_dpop_headers(token, proof))
    assert replay.status_code == 401
    assert "already been used" in replay.headers["WWW-Authenticate"]


def test_i18_02_replay_store_down_is_503_with_retry_after(ccguard_issuer: Any) -> None:
    from tests.conftest import make_app
    from tests.dpop_proofs import DPoPKey

    key = DPoPKey()
    app = make_app(ccguard_issuer, CCGUARD_CACHE=_dead_redis())
    token = ccguard_issuer.mint(cnf={"jkt": key.jkt})
    resp = app.test_client().get("/v", headers=_dpop_headers(token, key.proof("GET", "http://localhost/v", token)))
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
    # Bearer tokens do not need the replay store: the key cache fails open.
    assert app.test_client().get("/v", headers={"Authorization": f"Bearer {ccguard_issuer.mint()}"}).status_code == 200


def test_i18_03_nonces_issued_by_one_worker_are_accepted_by_another(ccguard_issuer: Any, redis_url: str) -> None:
    from tests.conftest import make_app
    from tests.dpop_proofs import DPoPKey

    key = DPoPKey()
    one, two = (make_app(ccguard_issuer, CCGUARD_CACHE=redis_url, CCGUARD_DPOP_NONCE=True) for _ in range(2))
    token = ccguard_issuer.mint(cnf={"jkt": key.jkt})
    first = one.test_client().get("/v", headers=_dpop_headers(token, key.proof("GET", "http://localhost/v", token)))
    assert first.status_code == 401
    nonce = first.headers["DPoP-Nonce"]
    proof = key.proof("GET", "http://localhost/v", token, claims={"nonce": nonce})
    assert two.test_client().get("/v", headers=_dpop_headers(token, proof)).status_code == 200
