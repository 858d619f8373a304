"""Smoke tests of the local oidc-provider issuer, over real HTTP.

These check the test infrastructure itself, independently of flask_ccguard:
signatures are verified here with ``cryptography`` directly (RFC 7515 JWS,
RFC 7518 / RFC 8037 algorithms), claims against RFC 9068.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

if TYPE_CHECKING:  # fixtures come from conftest.py; no runtime import of it
    from .conftest import OidcProvider

#: Mirrors provider.mjs; the fixture exposes the same as ``.resources``.
RESOURCES = {
    "RS256": "urn:ccguard:rs256",
    "PS256": "urn:ccguard:ps256",
    "ES256": "urn:ccguard:es256",
    "EdDSA": "urn:ccguard:eddsa",
}
CLIENT_IDS = ["admin", "basic-client", "reader"]
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}


# -- a minimal, strict JWS verifier (test-only) ------------------------------


def _b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64url_int(segment: str) -> int:
    return int.from_bytes(_b64url_decode(segment), "big")


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _signature = token.split(".")
    return json.loads(_b64url_decode(header)), json.loads(_b64url_decode(payload))


def verify_jws(token: str, jwks: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify a compact JWS against the JWK with the header's ``kid``.

    :returns: (header, payload)
    :raises cryptography.exceptions.InvalidSignature: bad signature.
    :raises AssertionError: no such kid, or key type does not fit the alg.
    """
    header_b64, payload_b64, signature_b64 = token.split(".")
    header, payload = decode_unverified(token)
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    signature = _b64url_decode(signature_b64)
    matches = [k for k in jwks["keys"] if k.get("kid") == header["kid"]]
    assert len(matches) == 1, f"kid {header['kid']!r} not (uniquely) in JWKS"
    jwk = matches[0]
    alg = header["alg"]
    if "alg" in jwk:
        assert jwk["alg"] == alg, f"JWK alg {jwk['alg']} used for {alg}"
    if alg in ("RS256", "PS256"):
        assert jwk["kty"] == "RSA"
        rsa_key = rsa.RSAPublicNumbers(_b64url_int(jwk["e"]), _b64url_int(jwk["n"])).public_key()
        if alg == "RS256":
            rsa_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            # RFC 7518 §3.5: salt length equals the hash output size.
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            rsa_key.verify(signature, signing_input, pss, hashes.SHA256())
    elif alg == "ES256":
        assert (jwk["kty"], jwk["crv"]) == ("EC", "P-256")
        ec_key = ec.EllipticCurvePublicNumbers(
            _b64url_int(jwk["x"]), _b64url_int(jwk["y"]), ec.SECP256R1()
        ).public_key()
        # RFC 7518 §3.4: R || S, 32 octets each, not DER.
        assert len(signature) == 64
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        ec_key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    elif alg == "EdDSA":
        assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")  # RFC 8037 §3.1
        Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk["x"])).verify(signature, signing_input)
    else:
        raise AssertionError(f"unexpected alg {alg}")
    return header, payload


# -- discovery ---------------------------------------------------------------


def test_openid_discovery(oidc_provider: OidcProvider) -> None:
    response = requests.get(f"{oidc_provider.issuer}/.well-known/openid-configuration", timeout=10)
    assert response.status_code == 200
    meta = response.json()
    assert meta["issuer"] == oidc_provider.issuer
    assert meta["issuer"].startswith("http://127.0.0.1:")
    assert meta["token_endpoint"] == f"{oidc_provider.issuer}/token"
    assert meta["jwks_uri"] == f"{oidc_provider.issuer}/jwks"
    assert "client_credentials" in meta["grant_types_supported"]
    assert {"client_secret_post", "client_secret_basic"} <= set(meta["token_endpoint_auth_methods_supported"])
    assert {"assets:read", "assets:write"} <= set(meta["scopes_supported"])
    assert oidc_provider.resources == RESOURCES
    assert sorted(oidc_provider.clients) == CLIENT_IDS


def test_openid_mode_also_serves_rfc8414_path(oidc_provider: OidcProvider) -> None:
    # oidc-provider v9 serves the same document on the RFC 8414 path too.
    response = requests.get(f"{oidc_provider.issuer}/.well-known/oauth-authorization-server", timeout=10)
    assert response.status_code == 200
    assert response.json() == oidc_provider.metadata()


def test_jwks_is_public_and_covers_every_key_type(oidc_provider: OidcProvider) -> None:
    response = requests.get(oidc_provider.metadata()["jwks_uri"], timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    keys = response.json()["keys"]
    assert {(k["kty"], k.get("crv")) for k in keys} == {
        ("RSA", None),
        ("EC", "P-256"),
        ("OKP", "Ed25519"),
    }
    for key in keys:
        assert key["kid"]
        assert key["use"] == "sig"
        assert not PRIVATE_MEMBERS & key.keys(), f"private material published: {key}"


# -- tokens ------------------------------------------------------------------


@pytest.mark.parametrize("alg", sorted(RESOURCES))
@pytest.mark.parametrize("client_id", CLIENT_IDS)
def test_each_client_gets_a_jwt_for_each_resource(oidc_provider: OidcProvider, client_id: str, alg: str) -> None:
    resource = oidc_provider.resources[alg]
    before = int(time.time())
    token = oidc_provider.token(client_id, resource=resource)
    header, claims = verify_jws(token, oidc_provider.jwks())

    assert header["alg"] == alg
    assert header["typ"] == "at+jwt"  # RFC 9068 §2.1
    assert claims["iss"] == oidc_provider.issuer
    assert claims["aud"] == resource  # a single string, not a list
    assert claims["client_id"] == client_id
    assert claims["sub"] == client_id  # RFC 9068 §2.2: no resource owner
    assert claims["scope"] == oidc_provider.client_scopes[client_id]  # space-separated string
    assert claims["roles"] == oidc_provider.client_roles[client_id]
    assert isinstance(claims["jti"], str) and claims["jti"]
    assert before - 5 <= claims["iat"] <= time.time() + 5
    assert claims["exp"] - claims["iat"] == 300
    assert "nbf" not in claims


def test_token_response_shape(oidc_provider: OidcProvider) -> None:
    response = oidc_provider.token_response("admin", resource=RESOURCES["ES256"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "assets:read assets:write"
    assert "refresh_token" not in body


def test_default_resource_without_resource_parameter(
    oidc_provider: OidcProvider,
) -> None:
    token = oidc_provider.token("reader")
    header, claims = verify_jws(token, oidc_provider.jwks())
    assert header["alg"] == "RS256"
    assert claims["aud"] == oidc_provider.default_resource == "urn:ccguard:rs256"


def test_scope_subset_is_honoured(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("admin", resource=RESOURCES["PS256"], scope="assets:read")
    assert decode_unverified(token)[1]["scope"] == "assets:read"


def test_scope_beyond_client_registration_is_refused(
    oidc_provider: OidcProvider,
) -> None:
    response = oidc_provider.token_response("reader", scope="assets:read assets:write")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_without_scope_parameter_token_has_no_scope_claim(
    oidc_provider: OidcProvider,
) -> None:
    token = oidc_provider.token("admin", scope="")
    claims = decode_unverified(token)[1]
    assert "scope" not in claims
    assert claims["roles"] == ["archivist_administrator"]


def test_unknown_resource_is_invalid_target(oidc_provider: OidcProvider) -> None:
    response = oidc_provider.token_response("admin", resource="urn:ccguard:nope")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


@pytest.mark.parametrize("auth", ["post", "basic"])
def test_wrong_secret_is_invalid_client(oidc_provider: OidcProvider, auth: str) -> None:
    client_id = "admin" if auth == "post" else "basic-client"
    response = oidc_provider.token_response(client_id, auth=auth, client_secret="wrong")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("client_id", CLIENT_IDS)
@pytest.mark.parametrize("auth", ["post", "basic"])
def test_secret_methods_are_interchangeable(oidc_provider: OidcProvider, client_id: str, auth: str) -> None:
    # oidc-provider accepts client_secret_post and client_secret_basic for a
    # client registered with either one (shared/client_auth.js).
    response = oidc_provider.token_response(client_id, auth=auth)
    assert response.status_code == 200, response.text


# -- key rotation ------------------------------------------------------------


def _published_kids(provider: OidcProvider) -> set[str]:
    return {k["kid"] for k in provider.jwks()["keys"]}


def test_rotation_replaces_keys(oidc_provider_factory: Any) -> None:
    provider: OidcProvider = oidc_provider_factory()
    old_kids = _published_kids(provider)
    old_token = provider.token("admin", resource=RESOURCES["ES256"])
    assert decode_unverified(old_token)[0]["kid"] in old_kids

    new_signing = provider.rotate_keys()

    new_kids = _published_kids(provider)
    assert new_kids == set(new_signing)
    assert len(new_kids) == 3 and not new_kids & old_kids
    with pytest.raises(AssertionError, match=r"not .*in JWKS"):
        verify_jws(old_token, provider.jwks())
    for alg, resource in RESOURCES.items():
        header, _ = verify_jws(provider.token("admin", resource=resource), provider.jwks())
        assert header["alg"] == alg and header["kid"] in new_kids


def test_graceful_rotation_keeps_previous_public_keys(
    oidc_provider_factory: Any,
) -> None:
    provider: OidcProvider = oidc_provider_factory()
    old_kids = _published_kids(provider)
    old_token = provider.token("reader", resource=RESOURCES["EdDSA"])

    new_signing = set(provider.rotate_keys(keep_previous=True))

    assert _published_kids(provider) == old_kids | new_signing
    verify_jws(old_token, provider.jwks())  # still verifiable
    for resource in RESOURCES.values():
        header, _ = verify_jws(provider.token("reader", resource=resource), provider.jwks())
        assert header["kid"] in new_signing  # but no longer used to sign


@pytest.mark.skipif(not hasattr(signal, "SIGUSR2"), reason="POSIX signal")
def test_sigusr2_rotates_keys(oidc_provider_factory: Any) -> None:
    provider: OidcProvider = oidc_provider_factory()
    old_kids = _published_kids(provider)
    os.kill(provider.process.pid, signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while _published_kids(provider) == old_kids:
        assert time.monotonic() < deadline, provider.output()
        time.sleep(0.05)
    assert not _published_kids(provider) & old_kids
    assert "ROTATED " in provider.output()


# -- RFC 8414-only mode ------------------------------------------------------


def test_no_openid_discovery_mode_serves_only_rfc8414(
    oidc_provider_no_discovery: OidcProvider,
) -> None:
    provider = oidc_provider_no_discovery
    openid = requests.get(f"{provider.issuer}/.well-known/openid-configuration", timeout=10)
    assert openid.status_code == 404

    rfc8414 = requests.get(f"{provider.issuer}/.well-known/oauth-authorization-server", timeout=10)
    assert rfc8414.status_code == 200
    meta = rfc8414.json()
    assert meta["issuer"] == provider.issuer
    assert meta["token_endpoint"] == f"{provider.issuer}/token"

    token = provider.token("admin", resource=RESOURCES["PS256"])
    jwks = requests.get(meta["jwks_uri"], timeout=10).json()
    header, claims = verify_jws(token, jwks)
    assert header["alg"] == "PS256"
    assert claims["iss"] == provider.issuer


def test_both_modes_issue_verifiable_tokens(any_oidc_provider: OidcProvider) -> None:
    meta = any_oidc_provider.metadata()
    token = any_oidc_provider.token("basic-client", resource=RESOURCES["ES256"])
    jwks = requests.get(meta["jwks_uri"], timeout=10).json()
    _, claims = verify_jws(token, jwks)
    assert claims["iss"] == meta["issuer"] == any_oidc_provider.issuer
