"""Hardening round 2 (issue 13), fetching: every issuer request bounded, nothing of a fetch outliving it.

Every server here is real and listens on loopback (or on this host's own
non-loopback address, where a test needs a peer that is not loopback).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from flask_ccguard import ConfigurationError, InvalidToken, TokenValidator
from flask_ccguard.core.fetch.http import FetchError, HTTPClient, check_url, is_loopback
from flask_ccguard.core.fetch.http_cache import MEMORY_CACHE_BYTES, MEMORY_CACHE_ENTRIES, MemoryCache, make_cache
from flask_ccguard.testing import TestIssuer
from tests.conftest import send_body, start_server, stop_server

from .support import SocketServer, claims_for, forge

# -- a JWKS served as a static file (nginx, S3, a CDN) ---------------------------------


class StaticJWKS:
    """Serves ``body`` at ``/jwks`` as a web server serves a file: validators, 304s.

    :param etag: send ``ETag`` and honour ``If-None-Match``.
    :param last_modified: send ``Last-Modified`` and honour ``If-Modified-Since``.
    :param cache_control: a ``Cache-Control`` value to send, if any.
    """

    def __init__(self, body: bytes, *, etag: bool, last_modified: bool, cache_control: str | None = None) -> None:
        self.body = body
        self.requests = 0
        self.not_modified = 0
        self.lock = threading.Lock()
        stamp = time.time() - 3600
        tag = '"5f2b-' + uuid.uuid4().hex[:8] + '"'
        static = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with static.lock:
                    static.requests += 1
                headers = []
                if etag:
                    headers.append(("ETag", tag))
                if last_modified:
                    headers.append(("Last-Modified", formatdate(stamp, usegmt=True)))
                if cache_control is not None:
                    headers.append(("Cache-Control", cache_control))
                if self._unchanged(tag, stamp):
                    with static.lock:
                        static.not_modified += 1
                    self.send_response(304)
                    for name, value in headers:
                        self.send_header(name, value)
                    self.end_headers()
                    return
                send_body(self, static.body, headers=dict(headers))

            def _unchanged(self, tag: str, stamp: float) -> bool:
                # RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since.
                if etag and self.headers.get("If-None-Match") is not None:
                    return tag in self.headers["If-None-Match"]
                since = self.headers.get("If-Modified-Since")
                if last_modified and since:
                    try:
                        return parsedate_to_datetime(since).timestamp() >= int(stamp)
                    except (TypeError, ValueError):
                        return False
                return False

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = start_server(Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/jwks"

    def close(self) -> None:
        stop_server(self._server)


@contextmanager
def static_jwks(body: bytes, **kw: Any) -> Iterator[StaticJWKS]:
    server = StaticJWKS(body, **kw)
    try:
        yield server
    finally:
        server.close()


def random_kid_token(issuer: TestIssuer) -> str:
    """A token naming a key id nobody published, with a made-up signature."""
    header = {"alg": "RS256", "typ": "at+jwt", "kid": uuid.uuid4().hex}
    return forge(header, claims_for(issuer), os.urandom(256))


# -- r2-01: conditional refetches count against the unknown-kid cooldown ---------------

COOLDOWN = 0.4
FLOOD_SECONDS = 1.2


@pytest.mark.parametrize(
    ("headers", "shared"),
    [
        pytest.param({"etag": True, "last_modified": True}, False, id="r2_01_nginx_etag_and_last_modified"),
        pytest.param({"etag": True, "last_modified": False}, False, id="r2_01_etag_only"),
        pytest.param(
            {"etag": False, "last_modified": True, "cache_control": "max-age=300"},
            False,
            id="r2_01_last_modified_and_max_age",
        ),
        pytest.param(
            {"etag": True, "last_modified": True, "cache_control": "public, max-age=300"},
            False,
            id="r2_01_cdn_max_age_and_etag",
        ),
        pytest.param({"etag": True, "last_modified": True}, True, id="r2_01_shared_file_cache"),
    ],
)
def test_r2_01_conditional_refetch_counts_against_the_cooldown(
    issuer: TestIssuer, tmp_path: Path, headers: dict[str, Any], shared: bool
) -> None:
    body = json.dumps(issuer.jwks()).encode()
    with static_jwks(body, **headers) as jwks:
        v = TokenValidator(
            issuer.issuer,
            audience=issuer.audience,
            algorithms=("RS256",),
            jwks_uri=jwks.url,
            jwks_refresh_cooldown=COOLDOWN,
            http_timeout=2,
            cache=f"file://{tmp_path / 'httpcache'}" if shared else None,
        )
        v.validate(issuer.mint())  # the initial fetch: 200, stored with its validators
        before = jwks.requests
        tokens = 0
        start = time.monotonic()
        while time.monotonic() - start < FLOOD_SECONDS:
            with pytest.raises(InvalidToken):
                v.validate(random_kid_token(issuer))
            tokens += 1
        elapsed = time.monotonic() - start
        during = jwks.requests - before
        # One request per cooldown window the flood spans (a 304 is a request).
        bound = math.ceil(elapsed / COOLDOWN) + 1
        assert tokens > 10 * bound, "the flood was too slow to show anything"
        assert during <= bound, f"{during} JWKS requests for {tokens} random kids in {elapsed:.2f} s"
        assert jwks.not_modified >= 1, "the refetches were not conditional: the case was not exercised"
        assert v.validate(issuer.mint()).subject  # good tokens still pass
        assert v.stats()["issuer_requests"] == jwks.requests


def test_r2_01_revalidation_is_not_a_cache_hit(issuer: TestIssuer) -> None:
    body = json.dumps(issuer.jwks()).encode()
    with static_jwks(body, etag=True, last_modified=True) as jwks:
        http = HTTPClient(timeout=2)
        assert http.get_json(jwks.url).from_cache is False
        again = http.get_json(jwks.url, fresh=True)
        assert jwks.not_modified == 1
        assert again.from_cache is False  # the issuer answered 304: it was contacted
        assert again.data == issuer.jwks()
        assert (http.network_fetches, http.cache_hits) == (2, 0)


# -- r2-06: nothing of a fetch outlives its deadline -----------------------------------


HTTP_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"a" * 100_000
# A TLS handshake record (RFC 8446 §5.1) announcing 16 KiB, whose bytes then trickle in.
TLS_HEAD = b"\x16\x03\x03\x40\x00" + b"\x02" * 16384


class HeaderTrickler(SocketServer):
    """Accepts a connection, then sends ``head`` a byte at a time (status line and headers, or a TLS record).

    It reads whatever the client sent first without waiting for a request head:
    a TLS client sends a handshake, never one. :attr:`closed_at` is when the
    client closed its side (the server saw EOF or a reset).
    """

    def __init__(self, head: bytes = HTTP_HEAD, *, tls: bool = False, interval: float = 0.05) -> None:
        self.head = head
        self.interval = interval
        self.closed_at: float | None = None
        super().__init__(scheme="https" if tls else "http")

    def handle(self, conn: socket.socket) -> None:
        head = self.head
        try:
            conn.settimeout(5)
            conn.recv(65536)  # the request
            for i in range(len(head)):
                if self._stop.wait(self.interval):
                    return
                readable, _, _ = select.select([conn], [], [], 0)
                if readable and conn.recv(1) == b"":
                    break  # EOF: the client shut its side
                conn.sendall(head[i : i + 1])
        except OSError:
            pass  # reset: the client closed
        else:
            if self._stop.is_set():
                return
        finally:
            conn.close()
        self.closed_at = time.monotonic()


def _fetch_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "ccguard-fetch" and t.is_alive()}


@pytest.mark.parametrize(
    ("how", "tls"),
    [
        pytest.param("get", False, id="r2_06_jwks_get_headers_trickled"),
        pytest.param("post", False, id="r2_06_introspection_post_headers_trickled"),
        # CPython bounds a whole TLS handshake by the connect timeout; this case
        # keeps that true of the transport as it changes.
        pytest.param("get", True, id="r2_06_tls_handshake_trickled"),
    ],
)
def test_r2_06_header_trickle_leaves_no_thread_or_socket(how: str, tls: bool) -> None:
    server = HeaderTrickler(TLS_HEAD if tls else HTTP_HEAD, tls=tls)
    try:
        before = _fetch_threads()
        http = HTTPClient(timeout=0.5)
        start = time.monotonic()

        def fetch() -> object:
            if how == "get":
                return http.get_json(server.url + "/jwks")
            return http.post_form(server.url + "/introspect", {"token": "opaque"})

        with pytest.raises(FetchError, match=r"(within|after) 0\.5 s"):
            fetch()
        assert time.monotonic() - start < 0.5 + 0.5, "the caller waited past the deadline"
        deadline = time.monotonic() + 1.0  # a small grace after the deadline
        while (_fetch_threads() - before or server.closed_at is None) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.connections == 1
        assert not _fetch_threads() - before, "the fetch thread outlived the deadline"
        assert server.closed_at is not None, "the server still holds an open connection"
        assert server.closed_at - start < 0.5 + 1.0
    finally:
        server.close()


# -- r2-09: the in-process HTTP cache is bounded ---------------------------------------


class FreshRedirects:
    """``/jwks`` redirects (same origin) to a URL never used before, which serves a cacheable JWKS."""

    def __init__(self, jwks: dict[str, Any], padding: int) -> None:
        self.body = json.dumps({**jwks, "padding": "x" * padding}).encode()
        self.count = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go in separate writes: without this each
                # response waits out a delayed ACK.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                if self.path == "/jwks":
                    outer.count += 1
                    self.send_response(302)
                    self.send_header("Location", f"/jwks/{uuid.uuid4().hex}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                send_body(self, outer.body, headers={"Cache-Control": "max-age=86400", "ETag": f'"{uuid.uuid4().hex}"'})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = start_server(Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/jwks"

    def close(self) -> None:
        stop_server(self._server)


@pytest.mark.parametrize(
    ("fetches", "padding"),
    [
        pytest.param(MEMORY_CACHE_ENTRIES + 100, 0, id="r2_09_entries_bound_small_documents"),
        pytest.param(420, 24_000, id="r2_09_bytes_bound_large_documents"),
    ],
)
def test_r2_09_fresh_redirect_targets_cannot_grow_the_memory_cache(
    issuer: TestIssuer, fetches: int, padding: int
) -> None:
    server = FreshRedirects(issuer.jwks(), padding)
    try:
        # Cooldown 0: every forged kid refetches, the most an attacker can get.
        v = TokenValidator(
            issuer.issuer,
            audience=issuer.audience,
            algorithms=("RS256",),
            jwks_uri=server.url,
            jwks_refresh_cooldown=0,
            http_timeout=2,
        )
        v.validate(issuer.mint())
        for _ in range(fetches):
            with pytest.raises(InvalidToken):
                v.validate(random_kid_token(issuer))
        assert server.count >= fetches  # each forged kid did reach a fresh URL
        stored = v.http.cache.data  # type: ignore[attr-defined]
        total = sum(len(k) + len(value) for k, value in stored.items())
        assert len(stored) <= MEMORY_CACHE_ENTRIES
        assert total <= MEMORY_CACHE_BYTES
        assert v.validate(issuer.mint()).subject  # the key set still works
    finally:
        server.close()


def test_r2_09_memory_cache_drops_expired_and_least_recently_used() -> None:
    cache = MemoryCache(max_entries=2, max_bytes=100)
    cache.set("a", b"1", expires=3600)
    cache.set("b", b"2")
    assert cache.get("a") == b"1"  # a is now the most recently used
    cache.set("c", b"3")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"1", None, b"3")
    cache.set("d", b"x" * 200)  # larger than the whole budget: not stored
    assert cache.get("d") is None and cache.size <= 100
    cache.set("e", b"5", expires=-1)  # already stale
    assert cache.get("e") is None


# -- r2-11: plain http only to what is really loopback ---------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        pytest.param("localhost", True, id="r2_11_localhost"),
        pytest.param("LOCALHOST.", True, id="r2_11_localhost_fqdn"),
        pytest.param("127.0.0.1", True, id="r2_11_ipv4_loopback"),
        pytest.param("[::1]", True, id="r2_11_ipv6_loopback"),
        pytest.param("::ffff:127.0.0.1", True, id="r2_11_ipv4_mapped_loopback"),
        pytest.param("evil.localhost", False, id="r2_11_subdomain_of_localhost_unresolved"),
        pytest.param("localhost.evil.example", False, id="r2_11_localhost_prefix"),
        pytest.param("192.0.2.1", False, id="r2_11_other_address"),
        pytest.param("", False, id="r2_11_empty"),
    ],
)
def test_r2_11_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_r2_11_http_to_a_localhost_subdomain_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"^CCGUARD_JWKS_URI 'http://evil\.localhost/jwks' is not allowed"):
        check_url("http://evil.localhost/jwks", "CCGUARD_JWKS_URI")
    with pytest.raises(FetchError, match="https required"):
        HTTPClient(timeout=1).get_json("http://evil.localhost:8080/jwks")


def _own_address() -> str | None:
    """An address of this host that is not loopback, if it has one."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # UDP: no packet leaves, the route picks the address
        address = str(probe.getsockname()[0])
        if not address.startswith("127."):
            return address
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            if not str(info[4][0]).startswith("127."):
                return str(info[4][0])
    return None


def test_r2_11_plain_http_connection_to_a_peer_that_is_not_loopback_is_cut() -> None:
    # The names were checked before connecting; what if one then resolves
    # elsewhere? The transport checks the connected peer itself. Its session
    # is driven directly here, as a rebinding resolver would leave it.
    address = _own_address()
    if address is None:
        pytest.skip("this host has no address but loopback")
    requests_seen: list[str] = []
    with listener_on(address, requests_seen) as url:
        http = HTTPClient(timeout=2)
        with pytest.raises(requests.ConnectionError, match="not loopback"):
            http.session.get(url + "/jwks", timeout=2)
        time.sleep(0.1)
        assert requests_seen == []


@contextmanager
def listener_on(address: str, seen: list[str]) -> Iterator[str]:
    """An HTTP server on ``address`` recording the paths it is asked for; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "12")
            self.end_headers()
            self.wfile.write(b'{"keys": []}')

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((address, 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


# -- r2-14: a file cache directory another user can write to is refused ----------------


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        pytest.param(0o777, "is writable by other users (mode 777)", id="r2_14_world_writable"),
        pytest.param(0o1777, "is writable by other users (mode 1777)", id="r2_14_world_writable_sticky"),
        pytest.param(0o770, "is writable by other users (mode 770)", id="r2_14_group_writable"),
    ],
)
def test_r2_14_writable_cache_directory_is_refused(tmp_path: Path, mode: int, message: str) -> None:
    shared = tmp_path / "ccguard"
    shared.mkdir()
    shared.chmod(mode)
    with pytest.raises(ConfigurationError) as info:
        make_cache(f"file://{shared}", "CCGUARD_CACHE")
    text = str(info.value)
    assert text.startswith(f"CCGUARD_CACHE: the cache directory '{shared}' {message}")
    assert f"chmod 700 {shared}" in text


def test_r2_14_cache_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, 65534, 65534)  # nobody
    else:
        theirs = Path("/")  # root's
    with pytest.raises(ConfigurationError, match=r"^CCGUARD_CACHE: the cache directory .* belongs to another user"):
        TokenValidator("https://idp.example", audience="api", cache=f"file://{theirs}", option_name=_config_key)


def _config_key(option: str) -> str:
    return "CCGUARD_" + option.upper()


def test_r2_14_private_cache_directory_is_used_and_a_new_one_created_private(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o755)  # others may read (the keys are public), not write
    mine.chmod(0o755)
    assert make_cache(f"file://{mine}", "CCGUARD_CACHE") is not None
    fresh = tmp_path / "new" / "ccguard"
    make_cache(f"file://{fresh}", "CCGUARD_CACHE")
    assert fresh.stat().st_mode & 0o077 == 0
