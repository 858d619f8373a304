"""Review 3 of DPoP and mTLS: regression tests, one group per finding (``test_review3_fN_...``)."""

from __future__ import annotations

import pytest

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
