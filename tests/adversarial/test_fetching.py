"""Discovery and JWKS fetching (OIDC Discovery §4.3, RFC 8414 §3.3): hostile servers cannot mislead or stall us."""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from flask_ccguard import ConfigurationError, InvalidToken, KeysUnavailable
from flask_ccguard.testing import TestIssuer

from .support import (
    RecordingListener,
    Responder,
    http_response,
    make_validator,
    raw_server,
    recording_listener,
    rejection,
    trickle,
)

TIMEOUT = 1.0


@pytest.fixture(scope="module")
def listener() -> Iterator[RecordingListener]:
    with recording_listener() as rec:
        yield rec


# -- discovery documents that must not be used ----------------------------------------


def _doc_changes(issuer: TestIssuer, listener_url: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("OIDC-Discovery-4.3-issuer-mismatch-attacker", {"issuer": listener_url, "jwks_uri": listener_url + "/jwks"}),
        ("OIDC-Discovery-4.3-issuer-trailing-slash", {"issuer": issuer.issuer + "/", "jwks_uri": listener_url}),
        ("OIDC-Discovery-4.3-issuer-uppercase", {"issuer": issuer.issuer.upper(), "jwks_uri": listener_url}),
        ("OIDC-Discovery-4.3-issuer-missing", {"issuer": None, "jwks_uri": listener_url}),
        ("OIDC-Discovery-4.3-issuer-list", {"issuer": [issuer.issuer], "jwks_uri": listener_url}),
        ("RFC8414-3.3-jwks-uri-http-non-loopback", {"jwks_uri": "http://example.com/jwks"}),
        ("RFC8414-2-jwks-uri-file-scheme", {"jwks_uri": "file:///etc/passwd"}),
        ("RFC8414-2-jwks-uri-gopher-scheme", {"jwks_uri": "gopher://127.0.0.1:70/_GET"}),
        ("RFC3986-3.2.1-jwks-uri-with-credentials", {"jwks_uri": listener_url.replace("//", "//user:pw@")}),
        ("RFC8414-2-jwks-uri-relative", {"jwks_uri": "/jwks"}),
        ("RFC8414-2-jwks-uri-not-a-string", {"jwks_uri": [listener_url]}),
        ("RFC8414-2-jwks-uri-missing", {"jwks_uri": None}),
    ]


DOC_IDS = [
    "OIDC-Discovery-4.3-issuer-mismatch-attacker",
    "OIDC-Discovery-4.3-issuer-trailing-slash",
    "OIDC-Discovery-4.3-issuer-uppercase",
    "OIDC-Discovery-4.3-issuer-missing",
    "OIDC-Discovery-4.3-issuer-list",
    "RFC8414-3.3-jwks-uri-http-non-loopback",
    "RFC8414-2-jwks-uri-file-scheme",
    "RFC8414-2-jwks-uri-gopher-scheme",
    "RFC3986-3.2.1-jwks-uri-with-credentials",
    "RFC8414-2-jwks-uri-relative",
    "RFC8414-2-jwks-uri-not-a-string",
    "RFC8414-2-jwks-uri-missing",
]


@pytest.mark.parametrize("index", range(len(DOC_IDS)), ids=DOC_IDS)
def test_unusable_discovery_document_yields_no_keys_and_no_fetch(
    ccguard_issuer: TestIssuer, listener: RecordingListener, index: int
) -> None:
    name, changes = _doc_changes(ccguard_issuer, listener.url)[index]
    assert name == DOC_IDS[index]
    ccguard_issuer.discovery_overrides = changes
    v = make_validator(ccguard_issuer, http_timeout=TIMEOUT)
    with pytest.raises(KeysUnavailable):
        v.validate(ccguard_issuer.mint())
    assert ccguard_issuer.hits["jwks"] == 0
    assert listener.connections == 0


@pytest.mark.parametrize(
    "url",
    ["http://example.com/jwks", "http://10.0.0.1/jwks", "http://169.254.169.254/latest/meta-data/", "ftp://x/jwks"],
    ids=[
        "RFC8725-3.10-config-http-non-loopback",
        "RFC8725-3.10-config-http-private-address",
        "CWE-918-config-cloud-metadata-address",
        "RFC8725-3.10-config-ftp",
    ],
)
def test_plain_http_to_a_non_loopback_host_is_refused_at_configuration(ccguard_issuer: TestIssuer, url: str) -> None:
    with pytest.raises(ConfigurationError, match="https"):
        make_validator(ccguard_issuer, jwks_uri=url)


# -- hostile JWKS servers ----------------------------------------------------------------


def _answer(data: bytes) -> Responder:
    def respond(conn: socket.socket, stop: threading.Event, head: bytes) -> None:
        conn.sendall(data)

    return respond


def _redirect(status: str, location: str) -> bytes:
    return http_response(status, b"", {"Location": location})


def _gzip_bomb() -> bytes:
    body = gzip.compress(b" " * (8 << 20))  # 8 MiB of spaces in ~8 kB
    return http_response("200 OK", body, {"Content-Encoding": "gzip", "Content-Type": "application/json"})


def _huge(with_length: bool) -> bytes:
    body = b'{"keys":[' + b'{"kty":"RSA"},' * 100_000 + b"{}]}"
    if with_length:
        return http_response("200 OK", body)
    return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body


def _many_keys() -> bytes:
    junk = [{"kty": "RSA", "kid": f"k{i}", "n": "AQAB", "e": "AQAB"} for i in range(1000)]
    return http_response("200 OK", json.dumps({"keys": junk}).encode())


HOSTILE: list[tuple[str, Any, type[Exception]]] = [
    ("CWE-601-redirect-302-cross-origin", lambda lst: _redirect("302 Found", lst + "/jwks"), KeysUnavailable),
    ("CWE-601-redirect-301-cross-origin", lambda lst: _redirect("301 Moved Permanently", lst), KeysUnavailable),
    ("CWE-601-redirect-307-cross-origin", lambda lst: _redirect("307 Temporary Redirect", lst), KeysUnavailable),
    ("CWE-601-redirect-308-cross-origin", lambda lst: _redirect("308 Permanent Redirect", lst), KeysUnavailable),
    ("CWE-918-redirect-to-metadata-ip", lambda lst: _redirect("302 Found", "http://169.254.169.254/"), KeysUnavailable),
    ("CWE-918-redirect-to-file-url", lambda lst: _redirect("302 Found", "file:///etc/passwd"), KeysUnavailable),
    ("CWE-601-redirect-scheme-relative", lambda lst: _redirect("302 Found", "//" + lst[7:]), KeysUnavailable),
    ("CWE-835-redirect-loop-same-origin", lambda lst: _redirect("302 Found", "/jwks"), KeysUnavailable),
    ("RFC9110-15.6.1-http-500", lambda lst: http_response("500 Internal Server Error", b"{}"), KeysUnavailable),
    ("RFC9110-15.6.3-http-502", lambda lst: http_response("502 Bad Gateway", b"<html>"), KeysUnavailable),
    ("RFC9110-15.6.4-http-503", lambda lst: http_response("503 Service Unavailable", b'{"keys":[]}'), KeysUnavailable),
    ("RFC9110-15.5.5-http-404", lambda lst: http_response("404 Not Found", b'{"keys":[]}'), KeysUnavailable),
    ("RFC9110-15.3.5-http-204", lambda lst: http_response("204 No Content", b""), KeysUnavailable),
    ("RFC7517-5-non-json-html", lambda lst: http_response("200 OK", b"<html>login</html>"), KeysUnavailable),
    ("RFC7517-5-json-array", lambda lst: http_response("200 OK", b"[]"), KeysUnavailable),
    ("RFC7517-5-keys-not-a-list", lambda lst: http_response("200 OK", b'{"keys":{"kty":"RSA"}}'), KeysUnavailable),
    ("RFC7517-5-invalid-utf8", lambda lst: http_response("200 OK", b'{"keys":["\xff"]}'), KeysUnavailable),
    ("CWE-674-deeply-nested-json", lambda lst: http_response("200 OK", b"[" * 99_999 + b"]" * 99_999), KeysUnavailable),
    ("CWE-400-huge-body-with-length", lambda lst: _huge(True), KeysUnavailable),
    ("CWE-400-huge-body-without-length", lambda lst: _huge(False), KeysUnavailable),
    ("CWE-409-gzip-bomb", lambda lst: _gzip_bomb(), KeysUnavailable),
    ("RFC9112-garbage-status-line", lambda lst: b"SSH-2.0-OpenSSH_9.0\r\n\r\n", KeysUnavailable),
    ("RFC9112-connection-closed-without-answer", lambda lst: b"", KeysUnavailable),
    ("CWE-400-thousands-of-junk-keys", lambda lst: _many_keys(), InvalidToken),
]


@pytest.mark.parametrize(("answer", "error"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_jwks_server_yields_no_keys(
    ccguard_issuer: TestIssuer, listener: RecordingListener, answer: Any, error: type[Exception]
) -> None:
    with raw_server(_answer(answer(listener.url))) as server:
        v = make_validator(ccguard_issuer, jwks_uri=server.url + "/jwks", http_timeout=TIMEOUT)
        exc = rejection(v, ccguard_issuer.mint())
        assert isinstance(exc, error)
        assert server.connections <= 4  # a same-origin loop stops after 3 redirects
    assert listener.connections == 0


def test_same_origin_redirect_is_followed(ccguard_issuer: TestIssuer) -> None:
    # Control for the cross-origin cases: the server's own redirect works.
    jwks = json.dumps(ccguard_issuer.jwks()).encode()

    def respond(conn: socket.socket, stop: threading.Event, head: bytes) -> None:
        if head.startswith(b"GET /old "):
            conn.sendall(_redirect("302 Found", "/new"))
        else:
            conn.sendall(http_response("200 OK", jwks))

    with raw_server(respond) as server:
        v = make_validator(ccguard_issuer, jwks_uri=server.url + "/old", http_timeout=TIMEOUT)
        assert v.validate(ccguard_issuer.mint()).subject == "test-client"
        assert server.connections == 2


def _slow_headers(conn: socket.socket, stop: threading.Event, head: bytes) -> None:
    if stop.wait(TIMEOUT * 4):
        raise OSError("server stopping")
    conn.sendall(http_response("200 OK", b'{"keys":[]}'))


def _head_then_trickle(head_bytes: bytes, body: bytes, interval: float) -> Responder:
    def respond(conn: socket.socket, stop: threading.Event, head: bytes) -> None:
        conn.sendall(head_bytes)
        trickle(body, interval)(conn, stop, head)

    return respond


SLOW: list[tuple[str, Responder]] = [
    ("CWE-400-slow-headers", _slow_headers),
    ("slowloris-trickling-headers", trickle(http_response("200 OK", b'{"keys":[]}', {"X-Pad": "p" * 40}), 0.2)),
    (
        "slowloris-trickling-body",
        _head_then_trickle(
            b"HTTP/1.1 200 OK\r\nContent-Length: 59\r\nConnection: close\r\n\r\n", b'{"keys":[' + b" " * 48 + b"]}", 0.2
        ),
    ),
    (
        "slowloris-trickling-chunked-body",
        _head_then_trickle(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            b"1\r\n \r\n" * 40 + b"0\r\n\r\n",
            0.05,
        ),
    ),
]


@pytest.mark.parametrize("respond", [s[1] for s in SLOW], ids=[s[0] for s in SLOW])
def test_slow_or_trickling_server_is_cut_off_at_the_overall_deadline(
    ccguard_issuer: TestIssuer, respond: Responder
) -> None:
    # Each byte arrives well within the read timeout, so only the overall
    # deadline can stop the fetch; the server must still be sending then.
    with raw_server(respond) as server:
        v = make_validator(ccguard_issuer, jwks_uri=server.url + "/jwks", http_timeout=TIMEOUT)
        with pytest.raises(KeysUnavailable):
            v.validate(ccguard_issuer.mint())
        assert server.finished == 0
        assert server.connections == 1
