"""Algorithm allowlist bound to key type (RFC 7518 §3), and forged tokens."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization

from flask_ccguard import ConfigurationError, InvalidToken, TokenValidator
from flask_ccguard.testing import TestIssuer

from .conftest import ALL_ALGORITHMS


@pytest.mark.parametrize("alg", ALL_ALGORITHMS)
def test_each_algorithm_accepted_when_allowed(ccguard_issuer: TestIssuer, alg: str) -> None:
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, algorithms=[alg])
    assert validator.validate(ccguard_issuer.mint(alg=alg)).header["alg"] == alg


@pytest.mark.parametrize("alg", [a for a in ALL_ALGORITHMS if a != "RS256"])
def test_each_algorithm_refused_when_not_allowed(ccguard_issuer: TestIssuer, alg: str) -> None:
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, algorithms=["RS256"])
    with pytest.raises(InvalidToken) as caught:
        validator.validate(ccguard_issuer.mint(alg=alg))
    assert caught.value.reason == "algorithm"
    assert ccguard_issuer.hits["jwks"] == 0, "refused before any key work"


@pytest.mark.parametrize("bad", ["none", "None", "NONE", "HS256", "HS384", "HS512", "hs256", "RSA1_5", "ES256K", ""])
def test_unsafe_or_unknown_algorithms_refused_at_configuration(bad: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        TokenValidator("https://idp.example", "api", algorithms=["RS256", bad])
    assert "algorithms" in str(caught.value)
    assert repr(bad) in str(caught.value)


def _swap_header(token: str, header: dict[str, object]) -> str:
    _, payload, signature = token.split(".")
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return f"{encoded}.{payload}.{signature}"


def test_rs_token_relabelled_ps_is_refused(ccguard_issuer: TestIssuer) -> None:
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, algorithms=["RS256", "PS256"])
    token = ccguard_issuer.mint(alg="RS256")
    kid = ccguard_issuer.public_jwk("RS256")["kid"]
    with pytest.raises(InvalidToken) as caught:
        validator.validate(_swap_header(token, {"alg": "PS256", "kid": kid, "typ": "at+jwt"}))
    assert caught.value.reason in {"bad_signature", "unknown_kid"}


def test_key_type_must_fit_the_header_algorithm(ccguard_issuer: TestIssuer) -> None:
    """An ES256 header pointing at the RSA key's kid finds no usable key."""
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, algorithms=["RS256", "ES256"])
    rsa_kid = ccguard_issuer.public_jwk("RS256")["kid"]
    with pytest.raises(InvalidToken) as caught:
        validator.validate(ccguard_issuer.mint(alg="ES256", kid=rsa_kid))
    assert caught.value.reason == "unknown_kid"


def test_jwk_alg_narrows_what_a_key_verifies(ccguard_issuer: TestIssuer) -> None:
    """The RS256 key's JWK says alg=RS256, so a PS256 signature with it is refused."""
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, algorithms=["RS256", "PS256"])
    rs_kid = ccguard_issuer.public_jwk("RS256")["kid"]
    token = ccguard_issuer.sign({"alg": "PS256", "kid": rs_kid}, _claims(ccguard_issuer), alg="PS256")
    with pytest.raises(InvalidToken):
        validator.validate(token)


def _claims(issuer: TestIssuer) -> dict[str, object]:
    import time

    now = int(time.time())
    return {"iss": issuer.issuer, "aud": issuer.audience, "sub": "x", "iat": now, "exp": now + 60}


def _public_pem(issuer: TestIssuer) -> bytes:
    return (
        issuer.key_for("RS256")
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


FORGERIES = [
    pytest.param("none", None, id="alg-none-empty-signature"),
    pytest.param("HS256", "pem", id="hs256-keyed-with-public-pem"),
    pytest.param("HS256", "jwk", id="hs256-keyed-with-public-jwk"),
]


@pytest.mark.parametrize(("alg", "secret_form"), FORGERIES)
def test_forged_tokens_refused(ccguard_issuer: TestIssuer, alg: str, secret_form: str | None) -> None:
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience)
    kid = ccguard_issuer.public_jwk("RS256")["kid"]
    secret = None
    if secret_form == "pem":
        secret = _public_pem(ccguard_issuer)
    elif secret_form == "jwk":
        secret = json.dumps(ccguard_issuer.public_jwk("RS256")).encode()
    token = ccguard_issuer.sign({"alg": alg, "kid": kid}, _claims(ccguard_issuer), alg=alg, secret=secret)
    with pytest.raises(InvalidToken) as caught:
        validator.validate(token)
    assert caught.value.reason in {"algorithm", "unsigned"}


def test_wrong_key_with_the_right_kid_is_refused(ccguard_issuer: TestIssuer) -> None:
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience)
    kid = ccguard_issuer.public_jwk("RS256")["kid"]
    with TestIssuer() as other:  # same claims, another issuer's private key
        forged = other.mint(kid=kid, iss=ccguard_issuer.issuer, aud=ccguard_issuer.audience)
    with pytest.raises(InvalidToken) as caught:
        validator.validate(forged)
    assert caught.value.reason == "bad_signature"


def test_tampered_payload_is_refused(ccguard_issuer: TestIssuer) -> None:
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience)
    header, _, signature = ccguard_issuer.mint(roles=["guest"]).split(".")
    _, payload, _ = ccguard_issuer.mint(roles=["archivist_administrator"]).split(".")
    with pytest.raises(InvalidToken) as caught:
        validator.validate(f"{header}.{payload}.{signature}")
    assert caught.value.reason == "bad_signature"


def test_token_without_kid_tries_keys_of_its_type(ccguard_issuer: TestIssuer) -> None:
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, algorithms=["RS256", "ES256"])
    assert validator.validate(ccguard_issuer.mint(alg="ES256", kid=None)).header.get("kid") is None
