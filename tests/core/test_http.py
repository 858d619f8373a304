"""Outbound HTTP limits: https only, size cap, deadline, redirects, User-Agent."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from flask_ccguard import ConfigurationError, __version__
from flask_ccguard.core.fetch.http import FetchError, HTTPClient, check_url
from flask_ccguard.testing import TestIssuer
from tests.conftest import send_body, serving


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://idp.example/.well-known/jwks.json", id="https"),
        pytest.param("http://127.0.0.1:8080/jwks", id="http-loopback-v4"),
        pytest.param("http://127.9.9.9/jwks", id="http-loopback-range"),
        pytest.param("http://[::1]:8080/jwks", id="http-loopback-v6"),
        pytest.param("http://localhost/jwks", id="http-localhost"),
    ],
)
def test_allowed_urls(url: str) -> None:
    assert check_url(url, "CCGUARD_JWKS_URI") == url


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://idp.example/jwks", id="http-remote"),
        pytest.param("http://10.0.0.1/jwks", id="http-private-range"),
        pytest.param("ftp://idp.example/jwks", id="other-scheme"),
        pytest.param("file:///etc/passwd", id="file"),
        pytest.param("https://user:pass@idp.example/jwks", id="credentials-in-url"),
        pytest.param("", id="empty"),
    ],
)
def test_refused_urls_name_the_option(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_url(url, "CCGUARD_JWKS_URI")
    assert str(caught.value).startswith("CCGUARD_JWKS_URI")


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/huge":
            body = b'{"k": "' + b"x" * (2 << 20) + b'"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()  # no Content-Length: the cap must hold while reading
            self.wfile.write(body)
        elif self.path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
        elif self.path == "/redirect-away":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.2:9/elsewhere")
            self.end_headers()
        elif self.path == "/redirect-here":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.end_headers()
        elif self.path == "/ok":
            send_body(self, b'{"ok": true}', content_type=None)
        else:
            self.send_error(404)


@pytest.fixture
def server() -> Iterator[str]:
    with serving(_Handler) as url:
        yield url


def test_body_over_the_cap_is_refused(server: str) -> None:
    with pytest.raises(FetchError, match="larger than"):
        HTTPClient(timeout=5).get_json(server + "/huge")


def test_trickling_server_cannot_outlast_the_deadline(server: str) -> None:
    # The server needs 100 s to send its body; only the deadline can end the fetch this way.
    with pytest.raises(FetchError, match=r"no complete answer within 0\.5 s"):
        HTTPClient(timeout=0.5).get_json(server + "/trickle")


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        pytest.param("/redirect-here", True, id="same-origin-followed"),
        pytest.param("/redirect-away", False, id="cross-origin-refused"),
    ],
)
def test_redirects(server: str, path: str, ok: bool) -> None:
    client = HTTPClient(timeout=2)
    if ok:
        assert client.get_json(server + path).data == {"ok": True}
    else:
        with pytest.raises(FetchError, match="another origin"):
            client.get_json(server + path)


def test_refused_connection_is_a_fetch_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError, match="connection failed"):
        HTTPClient(timeout=1).get_json(f"http://127.0.0.1:{port}/jwks")


def test_user_agent_and_accept_headers(ccguard_issuer: TestIssuer) -> None:
    HTTPClient().get_json(ccguard_issuer.jwks_uri)
    headers = {k.lower(): v for k, v in ccguard_issuer.requests[-1].headers.items()}
    assert headers["user-agent"] == f"flask-ccguard/{__version__}"
    assert headers["accept"] == "application/json"
