"""Outside review of round 2, key sets: F1 (a huge issuer max-age, the single flight), F2, F3.

Every issuer here is a real HTTP server on loopback (TestIssuer, or a small
``http.server`` where the issuer must move its key set); nothing patches ``requests``.
"""

from __future__ import annotations

import collections
import datetime
import importlib.util
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from flask_ccguard import InvalidToken, KeysUnavailable
from flask_ccguard.core import jwks as jwks_module
from flask_ccguard.core.fetch.http import HTTPClient
from flask_ccguard.core.fetch.http_cache import MAX_STORE_SECONDS, make_cache
from flask_ccguard.core.jwk_set import KeyIndex
from flask_ccguard.core.jwks import KeySet
from flask_ccguard.testing import TestIssuer
from tests.conftest import send_body, start_server, stop_server

from .support import claims_for, make_validator, rejection

# -- F1: a huge Cache-Control max-age; no exception may leave the fetch flight open -----------

HUGE_MAX_AGE = "max-age=" + "9" * 400


def test_review_f1_a_huge_issuer_max_age_keeps_the_key_set_working(ccguard_issuer: TestIssuer) -> None:
    # max-age with 400 digits made now + max_age overflow inside the lock:
    # 401 "internal", then the flight stayed open for good.
    ccguard_issuer.jwks_cache_control = HUGE_MAX_AGE
    v = make_validator(ccguard_issuer, http_timeout=1)
    assert v.validate(ccguard_issuer.mint()).subject
    assert v.validate(ccguard_issuer.mint()).subject
    keys = v.key_set(ccguard_issuer.issuer)
    assert not keys._fetching

    started = time.monotonic()
    error = rejection(v, ccguard_issuer.sign({"alg": "RS256", "kid": "unknown-1"}, claims_for(ccguard_issuer)))
    assert isinstance(error, InvalidToken) and error.reason == "unknown_kid"
    assert time.monotonic() - started < 0.9  # never waits on a flight nobody flies
    assert ccguard_issuer.hits["jwks"] == 1  # the unknown kid found the cooldown closed


class _Bug(Exception):
    """What a bug below the fetch raises (never a FetchError)."""


def _index_failing_once(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the next key index built by the key set raise, as a bug after the fetch would."""
    calls: list[int] = []
    real = KeyIndex

    def fragile(*args: Any, **kwargs: Any) -> Any:
        if args:  # an index of fetched keys, not the empty one of a new key set
            calls.append(1)
            if len(calls) == 1:
                raise _Bug("a bug after the fetch")
        return real(*args, **kwargs)

    monkeypatch.setattr(jwks_module, "KeyIndex", fragile)  # the name the key set builds with
    return calls


def test_review_f1_an_exception_after_the_fetch_is_a_failed_fetch_and_closes_the_flight(
    ccguard_issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _index_failing_once(monkeypatch)
    v = make_validator(ccguard_issuer, http_timeout=1, jwks_refresh_cooldown=0)
    token = ccguard_issuer.mint()

    error = rejection(v, token)
    assert isinstance(error, KeysUnavailable)
    keys = v.key_set(ccguard_issuer.issuer)
    assert not keys._fetching
    assert keys.fetch_failures == 1

    started = time.monotonic()
    assert v.validate(token).subject  # the next request fetches again, at once
    assert time.monotonic() - started < 2.5  # an open flight held it 3 x timeout + 1 = 4 s


def _clocked_key_set(issuer: TestIssuer, now: list[float]) -> KeySet:
    return KeySet(HTTPClient(timeout=1), issuer.issuer, frozenset({"RS256"}), max_age=600, clock=lambda: now[0])


def _wait_landed(keys: KeySet) -> None:
    deadline = time.monotonic() + 5
    while keys._fetching and time.monotonic() < deadline:
        time.sleep(0.01)


def test_review_f1_an_exception_in_a_background_refresh_closes_the_flight(
    ccguard_issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    keys = _clocked_key_set(ccguard_issuer, now)
    kid = ccguard_issuer.public_jwk("RS256")["kid"]
    assert keys.candidates(kid, "RS256")
    calls = _index_failing_once(monkeypatch)

    now[0] += 601  # due: refreshed in the background while the cached keys serve
    assert keys.candidates(kid, "RS256")
    _wait_landed(keys)
    assert calls == [1] and not keys._fetching
    assert keys.fetch_failures == 1

    now[0] += 31  # after the failure cooldown the next refresh runs and succeeds
    keys.refresh_if_due()
    _wait_landed(keys)
    assert keys.fetch_failures == 1 and keys.fetches == 3


def test_review_f1_a_background_refresh_that_cannot_start_closes_the_flight(
    ccguard_issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    keys = _clocked_key_set(ccguard_issuer, now)
    kid = ccguard_issuer.public_jwk("RS256")["kid"]
    assert keys.candidates(kid, "RS256")

    class NoThread(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    now[0] += 601
    with monkeypatch.context() as patch:
        patch.setattr(threading, "Thread", NoThread)  # the module the key set starts threads with
        assert keys.candidates(kid, "RS256")  # the cached keys keep serving
    assert not keys._fetching
    keys.refresh_if_due()  # and the refresh is tried again
    _wait_landed(keys)
    assert keys.fetches == 2 and keys.fetch_failures == 0


# -- F3: the issuer's max-age counts up to a cap ------------------------------------------------


def test_review_f3_a_key_the_issuer_removed_stops_validating_despite_a_huge_max_age(
    ccguard_issuer: TestIssuer,
) -> None:
    # max-age=999999999 kept a removed key validating for ~31 years: our
    # refresh waited that long, and the HTTP cache kept serving the old set.
    ccguard_issuer.jwks_cache_control = "max-age=999999999"
    v = make_validator(ccguard_issuer, jwks_max_age=0.2, jwks_stale_limit=1, jwks_refresh_cooldown=0.2)
    old = ccguard_issuer.mint()
    assert v.validate(old).subject
    ccguard_issuer.rotate_keys()  # the old key is withdrawn

    time.sleep(1.3)  # past the cap: here the stale limit (1 s), below one day
    error = rejection(v, old)
    assert isinstance(error, InvalidToken)
    assert v.validate(ccguard_issuer.mint()).subject  # the new key is in


def test_review_f3_the_issuer_max_age_counts_up_to_one_day(ccguard_issuer: TestIssuer) -> None:
    ccguard_issuer.jwks_cache_control = "max-age=999999999"
    now = [1000.0]
    keys = KeySet(
        HTTPClient(timeout=1),
        ccguard_issuer.issuer,
        frozenset({"RS256"}),
        max_age=600,
        stale_limit=7 * 86400,
        clock=lambda: now[0],
    )
    old_kid = ccguard_issuer.public_jwk("RS256")["kid"]
    assert keys.candidates(old_kid, "RS256")
    assert jwks_module.MAX_ISSUER_MAX_AGE == 86400 == keys.issuer_max_age_cap
    ccguard_issuer.rotate_keys()

    now[0] += 86400 - 1  # within the day: the issuer's max-age holds, no fetch
    keys.refresh_if_due()
    assert old_kid in keys and ccguard_issuer.hits["jwks"] == 1

    now[0] += 1  # a day on: refreshed, past the HTTP cache that would keep the old set for years
    keys.refresh_if_due()
    _wait_landed(keys)
    assert old_kid not in keys
    assert ccguard_issuer.public_jwk("RS256")["kid"] in keys


# -- F2: a discovered jwks_uri is discovered again -----------------------------------------------


class MovingIssuer:
    """An issuer on loopback whose metadata names a key set at a path the test chooses.

    Its tokens are signed by ``keys`` (a TestIssuer, which only serves ``/jwks``):
    :attr:`routes` maps a path to (Cache-Control, JSON body); others are 404.
    """

    def __init__(self, keys: TestIssuer) -> None:
        self.keys = keys
        self.routes: dict[str, tuple[str, Any]] = {}
        self.hits: collections.Counter[str] = collections.Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits[self.path] += 1
                route = outer.routes.get(self.path)
                status, cache, body = (200, *route) if route else (404, "", {"error": "not_found"})
                send_body(self, json.dumps(body).encode(), status, {"Cache-Control": cache} if cache else None)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = start_server(Handler)
        self.issuer = f"http://127.0.0.1:{self._server.server_port}"

    def publish(self, jwks_path: str, *, metadata_cache: str = "max-age=1") -> None:
        """Name ``jwks_path`` in the metadata and serve the key set there (as well)."""
        self.routes[METADATA] = (metadata_cache, {"issuer": self.issuer, "jwks_uri": self.issuer + jwks_path})
        self.routes[jwks_path] = ("", {"keys": [self.keys.public_jwk("RS256")]})

    def token(self, kid: str | None = None) -> str:
        header = {"alg": "RS256", "kid": kid or self.keys.public_jwk("RS256")["kid"]}
        return self.keys.sign(header, claims_for(self.keys, iss=self.issuer))

    def close(self) -> None:
        stop_server(self._server)


METADATA = "/.well-known/openid-configuration"


@pytest.fixture
def moving(ccguard_issuer: TestIssuer) -> Iterator[MovingIssuer]:
    server = MovingIssuer(ccguard_issuer)
    try:
        yield server
    finally:
        server.close()


def _validator(moving: MovingIssuer, **options: Any) -> Any:
    from flask_ccguard import TokenValidator

    return TokenValidator(moving.issuer, audience=moving.keys.audience, http_timeout=1, **options)


def test_review_f2_a_moved_jwks_uri_is_found_once_the_metadata_lapses(moving: MovingIssuer) -> None:
    moving.publish("/jwks1")
    v = _validator(moving, jwks_max_age=0.3, jwks_refresh_cooldown=0.3, jwks_stale_limit=60)
    assert v.validate(moving.token()).subject

    moving.publish("/jwks2")  # the old URI still answers: only the metadata says where keys are now
    deadline = time.monotonic() + 5
    while moving.hits["/jwks2"] == 0 and time.monotonic() < deadline:
        assert v.validate(moving.token()).subject
        time.sleep(0.1)
    assert moving.hits["/jwks2"] >= 1
    assert v.key_set(moving.issuer).fetch_failures == 0
    fetched_old = moving.hits["/jwks1"]
    time.sleep(0.4)
    assert v.validate(moving.token()).subject
    time.sleep(0.2)
    assert moving.hits["/jwks1"] == fetched_old  # the old URI is no longer asked


def test_review_f2_a_failed_fetch_discovers_again_past_the_http_cache(moving: MovingIssuer) -> None:
    # The metadata is cached for an hour, naming a URI that now 404s: the
    # retry after the failure must ask the issuer, not the cache.
    moving.publish("/jwks1", metadata_cache="max-age=3600")
    v = _validator(moving, jwks_max_age=0.3, jwks_refresh_cooldown=0.5, jwks_stale_limit=3)
    assert v.validate(moving.token()).subject
    moving.publish("/jwks2", metadata_cache="max-age=3600")
    del moving.routes["/jwks1"]

    started = time.monotonic()
    while time.monotonic() - started < 4:  # beyond the stale limit: the keys must come from /jwks2
        assert v.validate(moving.token()).subject
        rejection(v, moving.token(kid="made-up"))  # a flood of unknown kids on top
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    keys = v.key_set(moving.issuer)
    assert moving.hits["/jwks2"] >= 1
    assert keys.fetch_failures <= 2  # one, or two on a loaded machine; one per cooldown (~8) before
    # Discovery runs inside the fetch flight: at most one per cooldown, flood or not.
    assert moving.hits[METADATA] <= 1 + elapsed / 0.5 + 1


def test_review_f2_a_configured_jwks_uri_is_never_rediscovered(moving: MovingIssuer) -> None:
    moving.publish("/jwks1")
    v = _validator(
        moving, jwks_uri=moving.issuer + "/jwks1", jwks_max_age=0.2, jwks_refresh_cooldown=0.2, jwks_stale_limit=60
    )
    assert v.validate(moving.token()).subject
    moving.publish("/jwks2")
    del moving.routes["/jwks1"]
    for _ in range(4):
        time.sleep(0.25)
        assert v.validate(moving.token()).subject  # the cached keys serve while /jwks1 fails
    time.sleep(0.3)
    assert moving.hits[METADATA] == 0 and moving.hits["/jwks2"] == 0
    assert moving.hits["/jwks1"] >= 2


# -- review round 2: an issuer's lifetime reaches every HTTP cache backend bounded ----------------

HUGE_LIFETIMES = [
    pytest.param(int("9" * 400), id="RFC9111-1.2.2-max-age-400-digits"),
    pytest.param(datetime.datetime(9999, 12, 31), id="expires-year-9999"),
    pytest.param(None, id="no-lifetime"),
]


@pytest.fixture(params=["memory", "redis"])
def http_cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Each HTTP cache backend, Redis as a real throw-away redis-server."""
    if request.param == "memory":
        yield make_cache(None)
        return
    if not (shutil.which("redis-server") and importlib.util.find_spec("redis")):
        if os.environ.get("CI"):
            pytest.fail("redis-server and the redis client are required in CI (.ci/run and tox.ini install them)")
        pytest.skip("redis-server is not installed")
    from benchmarks.servers import redis_server

    with redis_server(tmp_path) as url:
        yield make_cache(url)


@pytest.mark.parametrize("expires", HUGE_LIFETIMES)
def test_review_f1_every_cache_backend_bounds_the_issuers_lifetime(http_cache: Any, expires: Any) -> None:
    """A 400-digit max-age once overflowed the in-process cache (and a Redis
    ``EX``): the store of a key set must take any lifetime and keep it at
    most MAX_STORE_SECONDS, and every shared key expires."""
    url = "https://issuer.example/jwks"
    http_cache.set(url, b"{}", expires)
    assert http_cache.get(url) == b"{}"
    left = http_cache.store.ttl(url)  # the store's own expiry (a Redis key's PTTL)
    assert 0 < left <= MAX_STORE_SECONDS, left
