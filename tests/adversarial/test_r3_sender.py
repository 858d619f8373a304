"""Review 3 of DPoP and mTLS: regression tests, one group per finding (``test_review3_fN_...``)."""

from __future__ import annotations

import base64
import json

import pytest

from flask_ccguard.client.dpop import DPoPKey
from flask_ccguard.testing import TestIssuer, dpop_proof, generate_dpop_key
from tests.challenges import assert_challenge
from tests.conftest import make_app

URL = "http://localhost/v"


@pytest.mark.parametrize("iat", [10**400, -(10**400), 10**309], ids=["huge", "huge_negative", "past_double"])
def test_review3_f3_huge_integer_iat_is_bad_iat(ccguard_issuer: TestIssuer, iat: int) -> None:
    """F3: an integer ``iat`` beyond a double is 401 invalid_dpop_proof, never an OverflowError."""
    key = generate_dpop_key()
    token = ccguard_issuer.mint(dpop_key=key)
    client = make_app(ccguard_issuer).test_client()
    proof = dpop_proof(key, "GET", URL, token, iat=iat)
    response = client.get("/v", headers=[("Authorization", f"DPoP {token}"), ("DPoP", proof)])
    assert_challenge(
        response,
        401,
        "invalid_dpop_proof",
        "The DPoP proof's 'iat' is missing or not a number.",
        realm="assets",
        error_scheme="DPoP",
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:s3cret@api.example/x?q=1#f", "https://api.example/x"),
        ("https://user@api.example:8443/x", "https://api.example:8443/x"),
        ("https://a%40b:p%40ss@api.example/", "https://api.example/"),
    ],
    ids=["user_password", "user_port", "encoded_at"],
)
def test_review3_f8_client_proof_htu_has_no_userinfo(url: str, expected: str) -> None:
    """F8: the token client's proof never carries URL credentials in ``htu``."""
    proof = DPoPKey().proof("GET", url)
    claims = json.loads(base64.urlsafe_b64decode(proof.split(".")[1] + "=="))
    assert claims["htu"] == expected
    assert "s3cret" not in proof
