"""Shared tools of the adversarial suite: token forging and hostile loopback servers.

Everything here is real: tokens are signed with real keys, servers listen on
127.0.0.1 and are reached over TCP. Nothing patches ``requests``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from flask_ccguard import CCGuardError, TokenValidator
from flask_ccguard.testing import TestIssuer
from tests.conftest import b64json, b64url, send_body

#: Answers one connection: (socket, server stopping, request head) -> None.
Responder = Callable[[socket.socket, threading.Event, bytes], None]
ALL_ALGS = ("RS256", "PS256", "ES256", "EdDSA")
FIXED_NOW = 1_900_000_000  # a fixed clock for claim tests (2030-03-17)


def segments(token: str) -> list[str]:
    return token.split(".")


def resign_raw(issuer: TestIssuer, header_b64: str, payload_b64: str, alg: str = "RS256") -> str:
    """Sign the exact base64url text of header and payload with the issuer's key."""
    private = issuer.key_for(alg)
    return header_b64 + "." + payload_b64 + "." + b64url(raw_signature(private, alg, f"{header_b64}.{payload_b64}"))


def raw_signature(private: Any, alg: str, signing_input: str) -> bytes:
    """A JWS signature (RFC 7518 §3) by any private key, for keys TestIssuer does not hold."""
    data = signing_input.encode("ascii")
    hash_alg: Any = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}.get(alg[-3:])
    if isinstance(private, rsa.RSAPrivateKey):
        if alg.startswith("PS"):
            pad: padding.AsymmetricPadding = padding.PSS(padding.MGF1(hash_alg), hash_alg.digest_size)
        else:
            pad = padding.PKCS1v15()
        return private.sign(data, pad, hash_alg)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hash_alg)))
        size = (private.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    return private.sign(data)


def forge(header: Any, payload: Any, signature: bytes, private: Any = None, alg: str = "RS256") -> str:
    """A compact JWS from JSON-able parts; signed by ``private`` if given, else ``signature`` verbatim."""
    signing_input = b64json(header) + "." + b64json(payload)
    if private is not None:
        signature = raw_signature(private, alg, signing_input)
    return signing_input + "." + b64url(signature)


def claims_for(issuer: TestIssuer, now: float | None = None, **extra: Any) -> dict[str, Any]:
    """A payload the validator would accept from ``issuer`` at ``now``."""
    now = int(time.time() if now is None else now)
    payload: dict[str, Any] = {
        "iss": issuer.issuer,
        "aud": issuer.audience,
        "sub": "test-client",
        "client_id": "test-client",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    for name, value in extra.items():
        if value is None:
            payload.pop(name, None)
        else:
            payload[name] = value
    return payload


def make_validator(issuer: TestIssuer, **options: Any) -> TokenValidator:
    options.setdefault("audience", issuer.audience)
    options.setdefault("algorithms", ALL_ALGS)
    options.setdefault("http_timeout", 2)
    return TokenValidator(issuer.issuer, **options)


def rejection(validator: TokenValidator, token: Any) -> CCGuardError:
    """Validate ``token``, which must fail with a CCGuardError, and return that error.

    A failure reported as ``reason="internal"`` means an unexpected exception
    was caught inside the validator: a bug, so it fails the test too.
    """
    with pytest.raises(CCGuardError) as info:
        validator.validate(token)
    assert info.value.reason != "internal", "an unexpected exception was swallowed inside validate()"
    return info.value


# -- a listener that records every connection ----------------------------------------


class RecordingListener:
    """An ``http.server`` on 127.0.0.1 that records every connection and request.

    Put :attr:`url` into ``jku``/``x5u``/``iss`` of a hostile token; afterwards
    :attr:`connections` must still be 0. It serves :attr:`body` (an attacker's
    JWKS, say) to anything that does arrive, so a fetch would be "successful".
    """

    def __init__(self, body: bytes = b'{"keys": []}') -> None:
        self.body = body
        self.connections = 0
        self.requests: list[str] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                listener.requests.append(self.path)
                send_body(self, listener.body)

            do_POST = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                listener.connections += 1
                return True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- a raw-socket server for slow, trickling and malformed answers -------------------


class SocketServer:
    """A raw TCP server on 127.0.0.1 that hands each connection to :meth:`handle`, in a thread of its own.

    :param scheme: the scheme of :attr:`url` (``https`` for a server that
        plays a TLS peer by sending raw records).
    """

    def __init__(self, *, scheme: str = "http") -> None:
        self.connections = 0
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self.url = f"{scheme}://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        """Answer one connection, and close it."""
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()


class RawServer(SocketServer):
    """Answers every connection with ``respond(sock, stop, head)`` once its request head is read.

    :attr:`finished` counts answers sent to the end; a fetch that was cut off
    by the client's deadline leaves it at 0 and sets :attr:`cut_off`.
    """

    def __init__(self, respond: Responder) -> None:
        self._respond = respond
        self.finished = 0
        self.cut_off = 0
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            head = _read_request_head(conn)
            self._respond(conn, self._stop, head)
            self.finished += 1
        except OSError:
            self.cut_off += 1
        finally:
            conn.close()


def _read_request_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def trickle(data: bytes, interval: float) -> Responder:
    """A responder that sends ``data`` one byte every ``interval`` seconds (slowloris)."""

    def respond(conn: socket.socket, stop: threading.Event, head: bytes) -> None:
        for i in range(len(data)):
            if stop.wait(interval):
                raise OSError("server stopping")
            conn.sendall(data[i : i + 1])

    return respond


def http_response(status: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


@contextmanager
def recording_listener(body: bytes = b'{"keys": []}') -> Iterator[RecordingListener]:
    listener = RecordingListener(body)
    try:
        yield listener
    finally:
        listener.close()


@contextmanager
def raw_server(respond: Responder) -> Iterator[RawServer]:
    server = RawServer(respond)
    try:
        yield server
    finally:
        server.close()
