"""Helpers shared by the core tests: a validator bound to a TestIssuer, a recording loopback server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, NamedTuple

import pytest

from flask_ccguard import TokenValidator
from flask_ccguard.testing import TestIssuer
from tests.conftest import send_body, start_server, stop_server

ALL_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")

MakeValidator = Callable[..., TokenValidator]


@pytest.fixture
def make_validator(ccguard_issuer: TestIssuer) -> MakeValidator:
    """Build a TokenValidator for the fixture issuer; keywords override."""

    def make(**options: Any) -> TokenValidator:
        options.setdefault("issuer", ccguard_issuer.issuer)
        options.setdefault("audience", ccguard_issuer.audience)
        options.setdefault("algorithms", ["RS256", "ES256", "PS256", "EdDSA"])
        return TokenValidator(**options)

    return make


# -- a recording loopback server (the token client's tests) -----------------------------


class Seen(NamedTuple):
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, dict[str, str], bytes]


class Recorder:
    """A loopback HTTP server that records each request verbatim and answers via ``reply``."""

    def __init__(self, reply: Callable[[Seen], Reply]) -> None:
        self.reply = reply
        self.seen: list[Seen] = []
        self.release = threading.Event()
        self.release.set()
        self.arrived = threading.Event()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
                recorder.seen.append(seen)
                recorder.arrived.set()
                recorder.release.wait(10)
                status, headers, body = recorder.reply(seen)
                send_body(self, body, status, headers)

            do_GET = do_POST = _handle

        self.server = start_server(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.release.set()
        stop_server(self.server)


@pytest.fixture
def recorder() -> Iterator[Callable[[Callable[[Seen], Reply]], Recorder]]:
    started: list[Recorder] = []

    def start(reply: Callable[[Seen], Reply]) -> Recorder:
        started.append(Recorder(reply))
        return started[-1]

    yield start
    for rec in started:
        rec.stop()
