"""Hardening round 2 (issue 13), key sets: odd JWKs, replaced key material, bounded work per forged token.

Every issuer here is a real HTTP server on loopback (TestIssuer, or its
``jwks_body`` switch serving a hand-made set); nothing patches ``requests``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from flask_ccguard import KeysUnavailable
from flask_ccguard.core import jwks as jwks_module
from flask_ccguard.core.keys import prepare_jwk
from flask_ccguard.testing import TestIssuer

from .support import make_validator, rejection

# -- r2-03: one malformed JWK must not disable the key set ----------------------------------


def _odd(**members: Any) -> dict[str, Any]:
    """An RSA JWK (the attacker fixture's key material does not matter) with ``members`` replaced."""
    jwk: dict[str, Any] = {"kty": "RSA", "kid": "odd", "n": "sXch" * 86, "e": "AQAB"}
    for name, value in members.items():
        if value is None:
            jwk.pop(name, None)
        else:
            jwk[name] = value
    return jwk


ODD_JWKS = [
    pytest.param(_odd(alg=["RS256"]), id="r2_03-alg-list"),
    pytest.param(_odd(alg={"name": "RS256"}), id="r2_03-alg-object"),
    pytest.param(_odd(alg=256), id="r2_03-alg-number"),
    pytest.param(_odd(alg=None, kty=["RSA"]), id="r2_03-kty-list"),
    pytest.param(_odd(kty={"RSA": 1}), id="r2_03-kty-object"),
    pytest.param(_odd(kid=7), id="r2_03-kid-number"),
    pytest.param(_odd(kid=["a", "b"]), id="r2_03-kid-list"),
    pytest.param(_odd(use=["sig"]), id="r2_03-use-list"),
    pytest.param(_odd(use={"sig": True}), id="r2_03-use-object"),
    pytest.param(_odd(key_ops="verify"), id="r2_03-key_ops-string"),
    pytest.param(_odd(key_ops=[["verify"]]), id="r2_03-key_ops-nested"),
    pytest.param(_odd(key_ops=[{"verify": 1}, "verify"]), id="r2_03-key_ops-object-member"),
    pytest.param(_odd(n=12345), id="r2_03-n-number"),
    pytest.param(_odd(n=["AQAB"]), id="r2_03-n-list"),
    pytest.param(_odd(e=""), id="r2_03-e-empty"),
    pytest.param(_odd(e=65537), id="r2_03-e-number"),
    pytest.param(_odd(e="!!!"), id="r2_03-e-not-base64url"),
    pytest.param({"kty": "EC", "kid": "odd", "crv": ["P-256"], "x": "AA", "y": "AA"}, id="r2_03-crv-list"),
    pytest.param({"kty": "EC", "kid": "odd", "crv": {"P-256": 1}, "x": "AA", "y": "AA"}, id="r2_03-crv-object"),
    pytest.param({"kty": "EC", "kid": "odd", "crv": "P-256", "x": 1, "y": "AA"}, id="r2_03-x-number"),
    pytest.param({"kty": "EC", "kid": "odd", "crv": "P-256", "x": "AA", "y": ["AA"]}, id="r2_03-y-list"),
    pytest.param({"kty": "OKP", "kid": "odd", "crv": "Ed25519", "x": {"x": 1}}, id="r2_03-okp-x-object"),
    pytest.param(_odd(issuer=["https://idp.example"]), id="r2_03-issuer-list"),
    pytest.param(
        {"kty": "EC", "kid": "odd", "crv": "P-256", "alg": ["ES256"], "x": "AA", "y": "AA"}, id="r2_03-ec-alg"
    ),
    pytest.param(["kty", "RSA"], id="r2_03-member-array"),
    pytest.param(None, id="r2_03-member-null"),
]


@pytest.mark.parametrize("odd", ODD_JWKS)
def test_r2_03_an_odd_jwk_is_skipped_and_the_good_key_keeps_validating(
    ccguard_issuer: TestIssuer, caplog: pytest.LogCaptureFixture, odd: Any
) -> None:
    good = ccguard_issuer.public_jwk("RS256")
    # The odd key comes first, so a crash on it would be met before the good one.
    ccguard_issuer.jwks_body = json.dumps({"keys": [odd, good]}).encode()
    v = make_validator(ccguard_issuer, algorithms=("RS256", "ES256", "EdDSA"))
    token = ccguard_issuer.mint()

    with caplog.at_level(logging.INFO, logger="flask_ccguard"):
        for _ in range(5):
            assert v.validate(token).subject == "test-client"
        # Tokens naming the odd key fail as an unknown key, never as a crash.
        assert rejection(v, ccguard_issuer.mint(kid="odd")).reason == "unknown_kid"

    assert v.key_set(ccguard_issuer.issuer).kids == {good["kid"]}
    assert ccguard_issuer.hits["jwks"] <= 2  # the load, and at most the one unknown-kid refetch
    assert any("skipping key 0" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_r2_03_any_exception_preparing_one_jwk_skips_only_that_key(
    ccguard_issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever check a future JWK member escapes, the key set's own guard holds.
    real = prepare_jwk

    def fragile(jwk: Any, allowed: frozenset[str]) -> Any:
        if isinstance(jwk, dict) and jwk.get("kid") == "odd":
            raise TypeError("unhashable type: 'list'")
        return real(jwk, allowed)

    monkeypatch.setattr("flask_ccguard.core.jwks.prepare_jwk", fragile)
    ccguard_issuer.extra_jwks = [_odd()]
    v = make_validator(ccguard_issuer)

    for _ in range(5):
        assert v.validate(ccguard_issuer.mint()).subject == "test-client"

    assert "odd" not in v.key_set(ccguard_issuer.issuer)
    assert ccguard_issuer.hits["jwks"] == 1


def test_r2_03_an_unexpected_failure_while_fetching_counts_as_a_failed_fetch(
    ccguard_issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug below the key set (here: discovery raising what it never should)
    # must be a failed fetch: 503, and the failure cooldown holds off retries.
    calls = []

    def broken_discover(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        raise RuntimeError("a bug, not a FetchError")

    monkeypatch.setattr(jwks_module, "discover", broken_discover)
    v = make_validator(ccguard_issuer, jwks_refresh_cooldown=30)
    token = ccguard_issuer.mint()

    for _ in range(10):
        error = rejection(v, token)
        assert isinstance(error, KeysUnavailable)
        assert error.status == 503

    assert len(calls) == 1
    assert v.stats()["key_fetch_failures"] == 1
