"""Hardening round 2 (issue 13), the token client and check-token: regression tests.

Every server here is real and listens on 127.0.0.1; nothing patches ``requests``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from flask_ccguard.client import ClientCredentials
from flask_ccguard.testing import TestIssuer

#: (status, headers, body) answered to a request's (method, path, headers).
Answer = tuple[int, dict[str, str], bytes]


class Server:
    """A loopback HTTP server that records each request's headers and answers via ``reply``."""

    def __init__(self, reply: Callable[[str, dict[str, str]], Answer]) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                headers = dict(self.headers.items())
                server.seen.append((self.path, headers))
                status, extra, body = reply(self.path, headers)
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **extra}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[Callable[[Callable[[str, dict[str, str]], Answer]], Server]]:
    started: list[Server] = []

    def start(reply: Callable[[str, dict[str, str]], Answer]) -> Server:
        started.append(Server(reply))
        return started[-1]

    yield start
    for server in started:
        server.stop()


INVALID_TOKEN: Answer = (401, {"WWW-Authenticate": 'Bearer realm="b", error="invalid_token"'}, b"{}")


# -- r2-02: a fresh token never goes to another origin --------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_r2_02_no_token_to_a_redirect_target_on_another_origin(servers, ccguard_issuer: TestIssuer, status):
    other = servers(lambda path, headers: INVALID_TOKEN)  # B: another port, so another origin
    api = servers(lambda path, headers: (status, {"Location": other.url + "/steal"}, b""))  # A
    cc = ClientCredentials(ccguard_issuer.token_endpoint, "test-client", "test-secret")
    resp = requests.get(api.url + "/assets", auth=cc, timeout=5)
    assert resp.status_code == 401  # B's refusal reaches the caller as it is
    assert [h.get("Authorization") for _, h in other.seen] == [None]  # B saw no token, and no retry
    assert api.seen[0][1]["Authorization"] == "Bearer " + cc.token()  # A, the origin asked for, did
    assert ccguard_issuer.hits["token"] == 1  # B's 401 did not cost a token request either


def test_r2_02_retry_still_renews_at_the_origin_asked_for(servers, ccguard_issuer: TestIssuer):
    answers = iter([INVALID_TOKEN])
    api = servers(lambda path, headers: next(answers, (200, {}, b"{}")))
    cc = ClientCredentials(ccguard_issuer.token_endpoint, "test-client", "test-secret")
    assert requests.get(api.url + "/assets", auth=cc, timeout=5).status_code == 200
    first, second = (h["Authorization"] for _, h in api.seen)
    assert first != second == "Bearer " + cc.token()


def test_r2_02_a_same_origin_redirect_that_kept_the_token_may_renew_it(servers, ccguard_issuer: TestIssuer):
    answers = iter([INVALID_TOKEN])

    def reply(path: str, headers: dict[str, str]) -> Answer:
        if path == "/old":
            return 302, {"Location": "/new"}, b""
        return next(answers, (200, {}, json.dumps({"path": path}).encode()))

    api = servers(reply)
    cc = ClientCredentials(ccguard_issuer.token_endpoint, "test-client", "test-secret")
    assert requests.get(api.url + "/old", auth=cc, timeout=5).json() == {"path": "/new"}
    assert [p for p, _ in api.seen] == ["/old", "/new", "/new"]
    assert api.seen[-1][1]["Authorization"] == "Bearer " + cc.token()
