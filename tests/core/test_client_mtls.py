"""The token client presents a client certificate (RFC 8705 §2) to a real TLS server on loopback (issue 16 item 4)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from flask_ccguard import ConfigurationError
from flask_ccguard.client import ClientCredentials, TokenRequestError
from flask_ccguard.core.fetch.http import HTTPClient
from tests.conftest import send_body, start_server


def _cert(
    path: Path, name: str, issuer: tuple[x509.Certificate, Any] | None = None, *, ca: bool = False, ip: bool = False
) -> tuple[x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (path / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (path / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert, key


class MTLSTokenEndpoint:
    """An https token endpoint on loopback that requires a client certificate signed by its CA."""

    def __init__(self, tmp: Path) -> None:
        ca = _cert(tmp, "ca", ca=True)
        _cert(tmp, "server", ca, ip=True)
        self.client_cert = _cert(tmp, "client", ca)[0]
        self.dir = tmp
        self.seen: list[tuple[bytes | None, dict[str, list[str]]]] = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tmp / "server.crt", tmp / "server.key")
        ctx.load_verify_locations(tmp / "ca.crt")
        ctx.verify_mode = ssl.CERT_REQUIRED
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                peer = self.connection.getpeercert(binary_form=True)
                endpoint.seen.append((peer, parse_qs(body.decode())))
                doc = json.dumps({"access_token": "mtls-token", "token_type": "Bearer", "expires_in": 60}).encode()
                send_body(self, doc)

        self.server = start_server(Handler, ctx)
        self.url = f"https://127.0.0.1:{self.server.server_port}/token"

    def http(self) -> HTTPClient:
        http = HTTPClient(timeout=5)
        http.session.verify = str(self.dir / "ca.crt")
        return http


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[MTLSTokenEndpoint]:
    ep = MTLSTokenEndpoint(tmp_path)
    yield ep
    ep.server.shutdown()
    ep.server.server_close()


def test_i16_04_rfc8705_2_tls_client_auth_presents_the_certificate(endpoint: MTLSTokenEndpoint) -> None:
    cert = (str(endpoint.dir / "client.crt"), str(endpoint.dir / "client.key"))
    client = ClientCredentials(
        endpoint.url, "app", None, auth_method="tls_client_auth", cert=cert, http=endpoint.http()
    )
    assert client.token() == "mtls-token"
    peer, params = endpoint.seen[-1]
    assert peer == endpoint.client_cert.public_bytes(serialization.Encoding.DER)
    assert params == {"grant_type": ["client_credentials"], "client_id": ["app"]}  # RFC 8705 §2: no secret


def test_i16_04_rfc8705_2_without_the_certificate_the_handshake_fails(endpoint: MTLSTokenEndpoint) -> None:
    client = ClientCredentials(endpoint.url, "app", "secret", http=endpoint.http())
    with pytest.raises(TokenRequestError):
        client.token()
    assert endpoint.seen == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"auth_method": "tls_client_auth"}, "needs cert", id="i16_04_tls_auth_without_cert"),
        pytest.param(
            {"auth_method": "tls_client_auth", "cert": __file__, "client_secret": "s"},
            "no secret",
            id="i16_04_tls_auth_with_a_secret",
        ),
        pytest.param({"cert": ("only-one",)}, "cert must be", id="i16_04_cert_not_a_pair"),
        pytest.param({"cert": ("/nonexistent/c.crt", "/nonexistent/c.key")}, "no such file", id="i16_04_cert_missing"),
    ],
)
def test_i16_04_mtls_configuration_mistakes_fail_at_start_up(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"client_secret": None if "auth_method" in kwargs else "s", **kwargs}
    secret = args.pop("client_secret")
    with pytest.raises(ConfigurationError, match=message):
        ClientCredentials("https://as.example/token", "app", secret, **args)
