"""Shared fixtures and helpers of the test suite.

The ``ccguard_issuer`` fixture comes from flask_ccguard.testing.plugin.
Imported rather than listed in ``pytest_plugins`` so that it works both from a
checkout (``PYTHONPATH=. pytest``) and with the package installed, where the
``ccguard`` pytest11 entry point already registers flask_ccguard.testing.plugin
and a second registration under another name would abort the run.

The other fixtures: ``ibm`` and ``duende`` (introspecting profile issuers),
``redis_url`` (a redis-server per module) and ``clean_env`` (no ``CCGUARD_*`` or
``EXAMPLE_*`` variable; modules that need it say
``pytestmark = pytest.mark.usefixtures("clean_env")``).

The helpers (``make_app``, ``guarded_app``, ``bearer``, ``report_lines``,
``introspection_spec``, the loopback servers and the token tampering functions)
are plain functions; test modules import them with ``from tests.conftest import
...``. The tampering helpers change one part of a compact JWS (RFC 7515 §7.1)
and keep the rest, so that a test shows that exactly that change is caught.
"""

from __future__ import annotations

import base64
import datetime
import importlib.util
import json
import os
import shutil
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask

from flask_ccguard import CCGuard, current_token, require_token
from flask_ccguard.testing import TestIssuer, profile_issuer
from flask_ccguard.testing.plugin import ccguard_issuer  # noqa: F401

# -- requests -----------------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    """Headers that send ``token`` as an RFC 6750 §2.1 Bearer credential."""
    return {"Authorization": f"Bearer {token}"}


def report_lines(result: Result) -> dict[str, tuple[str, str]]:
    """check name -> (status, detail) from the output of a ``check-token`` report."""
    found = {}
    for line in result.output.splitlines():
        status, _, rest = line.partition("  ")
        if status in ("PASS", "FAIL", "SKIP"):
            name, _, detail = rest.strip().partition("  ")
            found[name.strip()] = (status, detail.strip())
    return found


def make_app(issuer: TestIssuer, name: str = "assets", *, path: str = "/v", **config: Any) -> Flask:
    """A Flask app trusting ``issuer``, with one ``@require_token`` view at ``path`` (GET and POST).

    The view answers ``{"client_id": ...}`` of the verified token; ``config``
    adds ``CCGUARD_*`` settings; ``name`` is the import name (the default realm).
    """
    app = Flask(name)
    app.config.update(CCGUARD_ISSUER=issuer.issuer, CCGUARD_AUDIENCE=issuer.audience, **config)
    CCGuard(app)

    @app.route(path, methods=["GET", "POST"])
    @require_token
    def view() -> Any:
        return {"client_id": current_token.client_id}

    return app


def guarded_app(issuer: TestIssuer, name: str, **config: Any) -> tuple[Flask, CCGuard]:
    """A testing Flask app named ``name`` (its default realm) trusting ``issuer``
    (:meth:`TestIssuer.app_config` with ``config``), and its CCGuard; the test adds the views."""
    app = Flask(name)
    app.config.update(issuer.app_config(**config))
    app.testing = True
    return app, CCGuard(app)


# -- environment ------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``CCGUARD_*`` or ``EXAMPLE_*`` variable for the test: the command line and the example
    app read their settings from the environment, and tox passes these through."""
    for name in list(os.environ):
        if name.startswith(("CCGUARD_", "EXAMPLE_")):
            monkeypatch.delenv(name)


# -- introspecting issuers (RFC 7662) ----------------------------------------------------------


@pytest.fixture
def ibm() -> Iterator[Any]:
    """A running ``ibm_verify`` profile issuer (opaque tokens, introspection)."""
    with profile_issuer("ibm_verify") as issuer:
        yield issuer


@pytest.fixture
def duende() -> Iterator[Any]:
    """A running ``duende`` profile issuer (opaque tokens, introspection)."""
    with profile_issuer("duende") as issuer:
        yield issuer


def introspection_spec(issuer: Any, **introspection: Any) -> dict[str, Any]:
    """An issuer entry trusting a profile issuer through its introspection endpoint (RFC 7662 §2),
    as its first introspection client; ``introspection`` adds options."""
    name, secret = next(iter(issuer.introspection_clients.items()))
    options = {"endpoint": issuer.introspection_endpoint, "client_id": name, "client_secret": secret, **introspection}
    return {"issuer": issuer.issuer, "audience": issuer.audience, "introspection": options}


# -- shared state -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (shutil.which("redis-server") and importlib.util.find_spec("redis")):
        if os.environ.get("CI"):
            pytest.fail("redis-server and the redis client are required in CI (.ci/run and tox.ini install them)")
        pytest.skip("redis-server is not installed")
    from benchmarks.servers import redis_server

    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


# -- tampering ----------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    """The bytes of a base64url segment, padding restored."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def b64json(value: Any) -> str:
    """A base64url segment of compact JSON."""
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def decode_part(segment: str) -> Any:
    """The JSON value of a base64url segment (header or payload)."""
    return json.loads(b64url_decode(segment))


def unverified_header(token: str) -> dict[str, Any]:
    return dict(decode_part(token.split(".")[0]))


def unverified_claims(token: str) -> dict[str, Any]:
    return dict(decode_part(token.split(".")[1]))


def _changed(part: str, changes: dict[str, Any]) -> str:
    members = dict(decode_part(part))
    for name, value in changes.items():
        if value is None:
            members.pop(name, None)
        else:
            members[name] = value
    return b64json(members)


def with_claims(token: str, **changes: Any) -> str:
    """The token with payload claims changed (``None`` removes one); signature kept."""
    header, payload, signature = token.split(".")
    return f"{header}.{_changed(payload, changes)}.{signature}"


def with_header(token: str, **changes: Any) -> str:
    """The token with header parameters changed (``None`` removes one); signature kept."""
    header, payload, signature = token.split(".")
    return f"{_changed(header, changes)}.{payload}.{signature}"


def flip_signature(token: str) -> str:
    """The token with one bit of its signature flipped (length unchanged)."""
    header, payload, signature = token.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[len(raw) // 2] ^= 0x01
    return f"{header}.{payload}.{b64url(bytes(raw))}"


def client_certificate(name: str = "client") -> x509.Certificate:
    """A fresh self-signed EC certificate, as a client presents over mutual TLS
    (RFC 8705 §2.2), valid from a minute ago for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def certificate_der_pem(name: str = "client") -> tuple[bytes, str]:
    """:func:`client_certificate` as (DER, PEM text)."""
    cert = client_certificate(name)
    return cert.public_bytes(serialization.Encoding.DER), cert.public_bytes(serialization.Encoding.PEM).decode()


# -- small loopback HTTP servers -------------------------------------------------------


def send_body(
    handler: BaseHTTPRequestHandler,
    body: bytes,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str | None = "application/json",
) -> None:
    """Answer ``handler``'s request with ``status``, ``headers`` and ``body`` (its length given)."""
    handler.send_response(status)
    if content_type is not None:
        handler.send_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def start_server(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    """``handler`` served on 127.0.0.1 (an ephemeral port: ``server.server_port``) by a
    threading server, over TLS with ``tls``; stop it with :func:`stop_server`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server


def stop_server(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """The base URL (``http://127.0.0.1:port``, or https) of ``handler`` served for the block."""
    server = start_server(handler, tls)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_port}"
    finally:
        stop_server(server)
