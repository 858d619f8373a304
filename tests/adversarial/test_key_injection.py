"""Key injection through the token header (RFC 8725 §3.10): nothing in it is trusted, nothing is fetched."""

from __future__ import annotations

import base64
import datetime
import json
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from flask_ccguard import InvalidToken, TokenValidator
from flask_ccguard.testing import TestIssuer

from .support import RecordingListener, claims_for, forge, recording_listener, rejection


@pytest.fixture(scope="module")
def listener(attacker: TestIssuer) -> Iterator[RecordingListener]:
    """Serves the attacker's JWKS to anyone who asks, and counts who does."""
    with recording_listener(json.dumps(attacker.jwks()).encode()) as rec:
        yield rec


def _self_signed_cert(attacker: TestIssuer) -> str:
    key = attacker.key_for("RS256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")])
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


Header = Callable[[TestIssuer, TestIssuer, str], dict[str, Any]]
#: (id, header builder(issuer, attacker, listener_url), iss override or None)
INJECTIONS: list[tuple[str, Header]] = [
    (
        "RFC8725-3.10-jku-attacker-jwks",
        lambda iss, att, url: {"jku": url + "/jwks", "kid": att.public_jwk("RS256")["kid"]},
    ),
    (
        "jwt_tool-X-s-jku-spoof-legit-kid",
        lambda iss, att, url: {"jku": url + "/jwks", "kid": iss.public_jwk("RS256")["kid"]},
    ),
    ("jwt_tool-X-s-jku-spoof-no-kid", lambda iss, att, url: {"jku": url + "/jwks"}),
    ("RFC7515-4.1.2-jku-on-issuer-host-path", lambda iss, att, url: {"jku": iss.issuer + "/../" + url}),
    ("RFC7515-4.1.5-x5u-attacker-cert", lambda iss, att, url: {"x5u": url + "/cert.pem"}),
    ("RFC7515-4.1.5-x5u-with-legit-kid", lambda iss, att, url: {"x5u": url, "kid": iss.public_jwk("RS256")["kid"]}),
    ("CVE-2018-0114-embedded-jwk", lambda iss, att, url: {"jwk": att.public_jwk("RS256")}),
    (
        "CVE-2018-0114-embedded-jwk-legit-kid",
        lambda iss, att, url: {"jwk": {**att.public_jwk("RS256"), "kid": iss.public_jwk("RS256")["kid"]}},
    ),
    ("jwt_tool-X-i-jwk-injection-with-jku", lambda iss, att, url: {"jwk": att.public_jwk("RS256"), "jku": url}),
    ("RFC7515-4.1.6-x5c-self-signed", lambda iss, att, url: {"x5c": [_self_signed_cert(att)]}),
    (
        "RFC7515-4.1.6-x5c-self-signed-legit-kid",
        lambda iss, att, url: {"x5c": [_self_signed_cert(att)], "kid": iss.public_jwk("RS256")["kid"]},
    ),
    ("RFC8725-3.10-kid-is-a-url", lambda iss, att, url: {"kid": url + "/key"}),
    ("jwt_tool-kid-path-traversal-dev-null", lambda iss, att, url: {"kid": "../../../../../../dev/null"}),
    ("jwt_tool-kid-absolute-path", lambda iss, att, url: {"kid": "/etc/passwd"}),
    ("jwt_tool-kid-file-url", lambda iss, att, url: {"kid": "file:///etc/passwd"}),
    ("jwt_tool-kid-sql-injection", lambda iss, att, url: {"kid": "x' UNION SELECT 'secret' --"}),
    ("jwt_tool-kid-command-injection", lambda iss, att, url: {"kid": "key|curl " + url}),
    ("CWE-400-kid-very-long", lambda iss, att, url: {"kid": "k" * 8_000}),
    ("CWE-117-kid-crlf", lambda iss, att, url: {"kid": "a\r\nX-Injected: 1"}),
    ("CWE-158-kid-nul", lambda iss, att, url: {"kid": iss.public_jwk("RS256")["kid"] + "\x00"}),
    ("RFC7515-4.1.4-kid-integer", lambda iss, att, url: {"kid": 1}),
    ("RFC7515-4.1.4-kid-list", lambda iss, att, url: {"kid": [iss.public_jwk("RS256")["kid"]]}),
    ("RFC7515-4.1.4-kid-object", lambda iss, att, url: {"kid": {"$ne": ""}}),
    ("RFC7515-4.1.4-kid-empty", lambda iss, att, url: {"kid": ""}),
    ("RFC7515-4.1.4-kid-bool", lambda iss, att, url: {"kid": True}),
    ("CWE-1321-kid-proto", lambda iss, att, url: {"kid": "__proto__"}),
    ("CWE-1321-kid-constructor", lambda iss, att, url: {"kid": "constructor"}),
]


@pytest.mark.parametrize("header", [i[1] for i in INJECTIONS], ids=[i[0] for i in INJECTIONS])
def test_injected_key_is_neither_trusted_nor_fetched(
    issuer: TestIssuer,
    attacker: TestIssuer,
    validator: TokenValidator,
    listener: RecordingListener,
    header: Header,
) -> None:
    before = issuer.hits["jwks"]
    token = forge(
        {"alg": "RS256", **header(issuer, attacker, listener.url)},
        claims_for(issuer),
        b"",
        private=attacker.key_for("RS256"),
    )
    assert isinstance(rejection(validator, token), InvalidToken)
    assert listener.connections == 0, listener.requests
    assert issuer.hits["jwks"] - before <= 1  # the issuer's own set, at most once
    assert attacker.hits["jwks"] == 0


SSRF_ISSUERS: list[tuple[str, Callable[[str], str]]] = [
    ("CWE-918-iss-points-at-attacker", lambda url: url),
    ("CWE-918-iss-attacker-with-well-known", lambda url: url + "/.well-known/openid-configuration"),
    ("CWE-918-iss-attacker-https", lambda url: url.replace("http://", "https://")),
]


@pytest.mark.parametrize("iss", [s[1] for s in SSRF_ISSUERS], ids=[s[0] for s in SSRF_ISSUERS])
def test_the_tokens_own_issuer_is_never_contacted(
    issuer: TestIssuer, attacker: TestIssuer, validator: TokenValidator, listener: RecordingListener, iss: Any
) -> None:
    token = forge(
        {"alg": "RS256", "jku": listener.url, "kid": "k"},
        claims_for(issuer, iss=iss(listener.url)),
        b"",
        private=attacker.key_for("RS256"),
    )
    assert rejection(validator, token).reason == "issuer"
    assert listener.connections == 0


def test_an_attacker_issuer_token_is_refused_without_contacting_it(
    attacker: TestIssuer, validator: TokenValidator
) -> None:
    assert rejection(validator, attacker.mint()).reason == "issuer"
    assert sum(attacker.hits.values()) == 0


def test_the_listener_would_have_recorded_a_fetch(attacker: TestIssuer) -> None:
    # Control for the assertions above: a request to such a listener is counted.
    with recording_listener(json.dumps(attacker.jwks()).encode()) as rec:
        with urllib.request.urlopen(rec.url + "/jwks", timeout=5) as resp:
            assert json.loads(resp.read())["keys"]
        assert (rec.connections, rec.requests) == (1, ["/jwks"])
