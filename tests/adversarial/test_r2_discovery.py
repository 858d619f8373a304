"""Hardening round 2 (issue 13) and issue 14: discovery and introspection bounds.

Every issuer here is a real HTTP server on 127.0.0.1; nothing patches ``requests``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flask_ccguard import KeysUnavailable, TokenValidator
from flask_ccguard.core.errors import IntrospectionUnavailable
from flask_ccguard.testing import TestIssuer

from .support import http_response, raw_server

TIMEOUT = 1.0


class Clock:
    """The validator's clock, moved by the tests."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _path(head: bytes) -> str:
    return head.split(b" ", 2)[1].decode("latin-1") if head.count(b" ") >= 2 else ""


# -- r2-07: one deadline for the whole discovery; failed discovery cools down ----------


def _hanging_metadata(slow_404: float | None, seen: list[str]) -> Any:
    """Metadata URLs that hang until the server stops; with ``slow_404``, the
    OpenID one answers 404 after that many seconds instead."""

    def respond(conn: socket.socket, stop: threading.Event, head: bytes) -> None:
        path = _path(head)
        seen.append(path)
        if slow_404 is not None and path.endswith("/openid-configuration"):
            stop.wait(slow_404)
            conn.sendall(http_response("404 Not Found", b"{}"))
            return
        stop.wait(30)  # never answers: only the client's deadline ends this

    return respond


@pytest.mark.parametrize(
    ("slow_404", "tried"),
    [
        # One hanging URL takes the whole budget: the two RFC 8414 URLs are never asked.
        pytest.param(None, 1, id="r2_07_first_url_hangs_others_not_tried"),
        # A slow 404 leaves 60 % of the budget: the second URL gets only that, the third nothing.
        pytest.param(0.4 * TIMEOUT, 2, id="r2_07_second_url_gets_only_the_remaining_time"),
    ],
)
def test_r2_07_one_deadline_covers_all_metadata_urls(
    ccguard_issuer: TestIssuer, caplog: pytest.LogCaptureFixture, slow_404: float | None, tried: int
) -> None:
    seen: list[str] = []
    with raw_server(_hanging_metadata(slow_404, seen)) as server:
        issuer = server.url + "/tenant-1"  # a path: three candidate metadata URLs
        validator = TokenValidator(issuer, ccguard_issuer.audience, http_timeout=TIMEOUT)
        with caplog.at_level(logging.WARNING, logger="flask_ccguard"), pytest.raises(KeysUnavailable):
            validator.validate(ccguard_issuer.mint(iss=issuer))
        # Counted at the server: before the fix every URL got a full timeout (3 requests, 3x the wait).
        assert server.connections == tried, seen
        assert "discovery deadline" in caplog.text


@pytest.fixture
def ibm() -> Iterator[Any]:
    with TestIssuer(profile="ibm_verify") as issuer:
        yield issuer


def _introspecting(issuer: Any, clock: Clock, **options: Any) -> TokenValidator:
    name, secret = next(iter(issuer.introspection_clients.items()))
    introspection = {"client_id": name, "client_secret": secret, **options}
    spec = {"issuer": issuer.issuer, "audience": issuer.audience, "introspection": introspection}
    return TokenValidator([spec], clock=clock, http_timeout=TIMEOUT, jwks_refresh_cooldown=30)


def _metadata_hits(issuer: Any) -> int:
    return int(issuer.hits["openid_configuration"] + issuer.hits["oauth_metadata"])


def test_r2_07_failed_endpoint_discovery_cools_down(ibm: Any) -> None:
    clock = Clock()
    validator = _introspecting(ibm, clock)  # no endpoint: discovered from the metadata
    ibm.openid_configuration = False  # every metadata URL answers 404
    for n in range(10):
        with pytest.raises(IntrospectionUnavailable):
            validator.validate(f"RandomOpaqueToken{n:04d}abcdefghijklmnop")
    discovery_requests = _metadata_hits(ibm)
    # One discovery (its three URLs) for ten tokens; before the fix, one per token (30 requests).
    assert discovery_requests == 3
    assert ibm.hits["introspect"] == 0
    ibm.openid_configuration = True
    clock.now += 29  # still cooling down: not asked, even though it would now answer
    with pytest.raises(IntrospectionUnavailable):
        validator.validate("RandomOpaqueToken9999abcdefghijklmnop")
    assert _metadata_hits(ibm) == discovery_requests
    clock.now += 2  # the cooldown is over: one new discovery, which succeeds
    assert validator.validate(ibm.mint()).client_id == ibm.client_id
    assert _metadata_hits(ibm) == discovery_requests + 1
    validator.validate(ibm.mint())
    assert _metadata_hits(ibm) == discovery_requests + 1  # kept once found


def test_r2_07_concurrent_tokens_share_one_discovery(ibm: Any) -> None:
    validator = _introspecting(ibm, Clock())
    ibm.openid_configuration = False
    errors: list[BaseException] = []

    def ask(n: int) -> None:
        try:
            validator.validate(f"ConcurrentOpaqueToken{n:04d}abcdefghijkl")
        except IntrospectionUnavailable as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 8
    assert _metadata_hits(ibm) == 3  # single flight: one discovery, its three URLs
