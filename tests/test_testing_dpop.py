"""TestIssuer's DPoP-bound and certificate-bound tokens, and the proof helpers (issue 16 item 5).

Tokens are bound to the proof's key (RFC 9449 §5, §6.1); bad proofs are refused
(§4.3, one case per check, the section in the id). Proofs made by
:func:`flask_ccguard.testing.dpop_proof` are checked with joserfc.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.serialization import Encoding
from joserfc import jws
from joserfc.jwk import JWKRegistry

from flask_ccguard.testing import (
    TestIssuer,
    cert_thumbprint,
    dpop_proof,
    generate_dpop_key,
    jwk_thumbprint,
    public_jwk,
)
from tests.conftest import client_certificate as _certificate

KEY = generate_dpop_key()


def claims_of(jwt: str, part: int = 1) -> dict[str, Any]:
    seg = jwt.split(".")[part]
    doc: dict[str, Any] = json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))
    return doc


@pytest.fixture
def issuer() -> Iterator[TestIssuer]:
    with TestIssuer(clients={"app": "secret"}) as iss:
        yield iss


def ask(issuer: TestIssuer, proof: str | None) -> requests.Response:
    headers = {"DPoP": proof} if proof is not None else {}
    data = {"grant_type": "client_credentials", "client_id": "app", "client_secret": "secret"}
    return requests.post(issuer.token_endpoint, data=data, headers=headers, timeout=5)


@pytest.mark.parametrize("alg", ["ES256", "ES384", "PS256", "EdDSA"])
def test_i16_05_dpop_proof_verifies_with_joserfc(alg: str) -> None:
    key = generate_dpop_key(alg)
    proof = dpop_proof(key, "GET", "https://api.example/a?b=1", token="tok", nonce="n")
    head = claims_of(proof, 0)
    assert head["typ"] == "dpop+jwt" and head["alg"] == alg and set(head["jwk"]) <= {"kty", "crv", "x", "y", "n", "e"}
    registry = jws.JWSRegistry(algorithms=[alg], strict_check_header=False)
    registry.max_header_length = 4096
    obj = jws.deserialize_compact(proof, JWKRegistry.import_key(head["jwk"]), registry=registry)
    claims = json.loads(obj.payload)
    assert claims["htu"] == "https://api.example/a" and claims["htm"] == "GET" and claims["nonce"] == "n"
    assert claims["ath"] == base64.urlsafe_b64encode(hashlib.sha256(b"tok").digest()).rstrip(b"=").decode()
    assert JWKRegistry.import_key(head["jwk"]).thumbprint() == jwk_thumbprint(key)  # RFC 7638


def test_i16_05_rfc9449_5_token_endpoint_binds_the_token_to_the_proof_key(issuer: TestIssuer) -> None:
    resp = ask(issuer, dpop_proof(KEY, "POST", issuer.token_endpoint))
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "DPoP"
    assert claims_of(resp.json()["access_token"])["cnf"] == {"jkt": jwk_thumbprint(KEY)}
    plain = ask(issuer, None).json()
    assert plain["token_type"] == "Bearer" and "cnf" not in claims_of(plain["access_token"])
    assert "ES256" in requests.get(issuer.discovery_url, timeout=5).json()["dpop_signing_alg_values_supported"]


def _hs256_proof(url: str) -> str:
    good = dpop_proof(KEY, "POST", url)
    head = base64.urlsafe_b64encode(json.dumps({"typ": "dpop+jwt", "alg": "HS256", "jwk": public_jwk(KEY)}).encode())
    return head.rstrip(b"=").decode() + "." + good.split(".", 1)[1]


def _private_jwk() -> dict[str, Any]:
    jwk = dict(public_jwk(KEY))
    jwk["d"] = "AAAA"
    return jwk


BAD_PROOFS: list[Any] = [
    pytest.param(lambda url: "not-a-jwt", id="i16_05_rfc9449_4_3_2_not_a_jws"),
    pytest.param(
        lambda url: dpop_proof(KEY, "POST", url) + "," + dpop_proof(KEY, "POST", url),
        id="i16_05_rfc9449_4_3_1_two_proofs",
    ),
    pytest.param(lambda url: dpop_proof(KEY, "POST", url, header={"typ": "JWT"}), id="i16_05_rfc9449_4_3_4_wrong_typ"),
    pytest.param(lambda url: dpop_proof(KEY, "POST", url, header={"typ": None}), id="i16_05_rfc9449_4_3_4_no_typ"),
    pytest.param(_hs256_proof, id="i16_05_rfc9449_4_3_5_symmetric_alg"),
    pytest.param(lambda url: dpop_proof(KEY, "POST", url, header={"alg": "none"}), id="i16_05_rfc9449_4_3_5_alg_none"),
    pytest.param(
        lambda url: dpop_proof(KEY, "POST", url, header={"jwk": _private_jwk()}), id="i16_05_rfc9449_4_3_7_private_jwk"
    ),
    pytest.param(
        lambda url: dpop_proof(KEY, "POST", url, header={"jwk": public_jwk(generate_dpop_key())}),
        id="i16_05_rfc9449_4_3_6_signed_by_another_key",
    ),
    pytest.param(lambda url: dpop_proof(KEY, "POST", url)[:-4] + "AAAA", id="i16_05_rfc9449_4_3_6_bad_signature"),
    pytest.param(lambda url: dpop_proof(KEY, "POST", url, claims={"jti": None}), id="i16_05_rfc9449_4_3_3_no_jti"),
    pytest.param(lambda url: dpop_proof(KEY, "POST", url, htm=None), id="i16_05_rfc9449_4_3_3_no_htm"),
    pytest.param(lambda url: dpop_proof(KEY, "POST", url, htu=None), id="i16_05_rfc9449_4_3_3_no_htu"),
    pytest.param(lambda url: dpop_proof(KEY, "POST", url, claims={"iat": None}), id="i16_05_rfc9449_4_3_3_no_iat"),
    pytest.param(lambda url: dpop_proof(KEY, "GET", url), id="i16_05_rfc9449_4_3_8_wrong_htm"),
    pytest.param(lambda url: dpop_proof(KEY, "POST", url + "/other"), id="i16_05_rfc9449_4_3_9_wrong_htu"),
    pytest.param(
        lambda url: dpop_proof(KEY, "POST", url.replace("127.0.0.1", "localhost")), id="i16_05_rfc9449_4_3_9_other_host"
    ),
    pytest.param(
        lambda url: dpop_proof(KEY, "POST", url, iat=int(time.time()) - 600), id="i16_05_rfc9449_4_3_11_old_iat"
    ),
    pytest.param(
        lambda url: dpop_proof(KEY, "POST", url, iat=int(time.time()) + 600), id="i16_05_rfc9449_4_3_11_future_iat"
    ),
    pytest.param(
        lambda url: dpop_proof(KEY, "POST", url, claims={"iat": "now"}), id="i16_05_rfc9449_4_3_11_iat_not_a_number"
    ),
]


@pytest.mark.parametrize("make", BAD_PROOFS)
def test_i16_05_bad_proofs_are_refused(issuer: TestIssuer, make: Any) -> None:
    resp = ask(issuer, make(issuer.token_endpoint))
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_dpop_proof"
    assert "access_token" not in resp.json()


def test_i16_05_rfc9449_11_1_a_proof_is_accepted_once(issuer: TestIssuer) -> None:
    proof = dpop_proof(KEY, "POST", issuer.token_endpoint)
    assert ask(issuer, proof).status_code == 200
    replay = ask(issuer, proof)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_dpop_proof"


def test_i16_05_rfc9449_8_nonce_demanded() -> None:
    with TestIssuer(clients={"app": "secret"}, dpop_nonce=True) as iss:
        first = ask(iss, dpop_proof(KEY, "POST", iss.token_endpoint))
        assert first.status_code == 400 and first.json()["error"] == "use_dpop_nonce"
        nonce = first.headers["DPoP-Nonce"]
        assert nonce == iss.dpop.nonce
        assert ask(iss, dpop_proof(KEY, "POST", iss.token_endpoint, nonce="stale")).json()["error"] == "use_dpop_nonce"
        assert ask(iss, dpop_proof(KEY, "POST", iss.token_endpoint, nonce=nonce)).status_code == 200
        iss.dpop.rotate_nonce()
        again = ask(iss, dpop_proof(KEY, "POST", iss.token_endpoint, nonce=nonce))
        assert again.json()["error"] == "use_dpop_nonce" and again.headers["DPoP-Nonce"] != nonce


def test_i16_05_mint_binds_to_a_dpop_key_or_a_certificate(issuer: TestIssuer) -> None:
    assert claims_of(issuer.mint(dpop_key=KEY))["cnf"] == {"jkt": jwk_thumbprint(KEY)}
    assert claims_of(issuer.mint(dpop_key=public_jwk(KEY)))["cnf"] == {"jkt": jwk_thumbprint(KEY)}
    assert claims_of(issuer.mint(cnf={"jkt": "abc"}))["cnf"] == {"jkt": "abc"}
    cert = _certificate()
    der = cert.public_bytes(Encoding.DER)
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()  # RFC 8705 §3.1
    for form in (cert, der, cert.public_bytes(Encoding.PEM)):
        assert claims_of(issuer.mint(cert=form))["cnf"] == {"x5t#S256": expected}
    assert cert_thumbprint(cert) == expected
    both = claims_of(issuer.mint(dpop_key=KEY, cert=cert, cnf={"extra": 1}))["cnf"]
    assert both == {"extra": 1, "jkt": jwk_thumbprint(KEY), "x5t#S256": expected}
