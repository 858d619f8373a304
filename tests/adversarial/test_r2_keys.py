"""Hardening round 2 (issue 13), key sets: odd JWKs, replaced key material, bounded work per forged token.

Every issuer here is a real HTTP server on loopback (TestIssuer, or its
``jwks_body`` switch serving a hand-made set); nothing patches ``requests``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from flask_ccguard import InvalidToken, KeysUnavailable, TokenValidator
from flask_ccguard.core import jwks as jwks_module
from flask_ccguard.core.jwks import MAX_KIDLESS_CANDIDATES
from flask_ccguard.core.keys import VerifyingKey, prepare_jwk
from flask_ccguard.testing import TestIssuer
from tests.conftest import b64url

from .support import claims_for, forge, make_validator, rejection

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

    monkeypatch.setattr("flask_ccguard.core.jwk_set.prepare_jwk", fragile)
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


# -- r2-10: bounded work per forged token, whatever the issuer's key set holds ---------------


def _b64int(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _rsa_numbers(bits: int, e: int = 65537, kid: str = "odd") -> dict[str, Any]:
    """An RSA JWK of exactly ``bits`` bits built from numbers (no key generation: only sizes are checked)."""
    n = (1 << (bits - 1)) | int.from_bytes(secrets.token_bytes(bits // 8), "big") % (1 << (bits - 1)) | 1
    return {"kty": "RSA", "kid": kid, "n": _b64int(n), "e": _b64int(e)}


REFUSED_RSA = [
    pytest.param(_rsa_numbers(8193), "at most 8192", id="r2_10-modulus-8193-bits"),
    pytest.param(_rsa_numbers(16400), "at most 8192", id="r2_10-modulus-16400-bits"),
    pytest.param(_rsa_numbers(3072, e=(1 << 3069) | 1), "exponent", id="r2_10-exponent-3070-bits"),
    pytest.param(_rsa_numbers(2048, e=2**32 + 1), "exponent", id="r2_10-exponent-2**32+1"),
    pytest.param(_rsa_numbers(2048, e=65536), "exponent", id="r2_10-exponent-even"),
    pytest.param(_rsa_numbers(2048, e=1), "exponent", id="r2_10-exponent-1"),
    pytest.param({**_rsa_numbers(2048), "e": "AA"}, "exponent", id="r2_10-exponent-0"),
]


@pytest.mark.parametrize(("jwk", "logged"), REFUSED_RSA)
def test_r2_10_rsa_keys_beyond_the_size_bounds_are_skipped_with_a_log_line(
    ccguard_issuer: TestIssuer, caplog: pytest.LogCaptureFixture, jwk: dict[str, Any], logged: str
) -> None:
    good = ccguard_issuer.public_jwk("RS256")
    ccguard_issuer.jwks_body = json.dumps({"keys": [jwk, good]}).encode()
    v = make_validator(ccguard_issuer, algorithms=("RS256",))

    with caplog.at_level(logging.INFO, logger="flask_ccguard"):
        assert v.validate(ccguard_issuer.mint()).subject == "test-client"

    assert v.key_set(ccguard_issuer.issuer).kids == {good["kid"]}
    skipped = [r.getMessage() for r in caplog.records if "skipping key 0" in r.getMessage()]
    assert skipped and logged in skipped[0], [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize(
    "jwk",
    [
        pytest.param(_rsa_numbers(8192), id="r2_10-modulus-8192-bits"),
        pytest.param(_rsa_numbers(2048, e=3), id="r2_10-exponent-3"),
        pytest.param(_rsa_numbers(2048, e=2**32 - 1), id="r2_10-exponent-2**32-1"),
    ],
)
def test_r2_10_rsa_keys_at_the_bounds_are_accepted(jwk: dict[str, Any]) -> None:
    assert prepare_jwk(jwk, frozenset({"RS256"})).algorithms == {"RS256"}


def _ed_jwk(kid: str) -> dict[str, Any]:
    public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64url(public)}


@pytest.fixture
def count_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Record the ``kid`` of every key :meth:`VerifyingKey.verify` is called on."""
    calls: list[str | None] = []
    real = VerifyingKey.verify

    def counting(self: VerifyingKey, alg: str, signing_input: bytes, signature: bytes) -> bool:
        calls.append(self.kid)
        return real(self, alg, signing_input, signature)

    monkeypatch.setattr(VerifyingKey, "verify", counting)
    return calls


def test_r2_10_a_token_without_kid_tries_at_most_a_few_keys(
    ccguard_issuer: TestIssuer, count_verifications: list[str | None]
) -> None:
    # A hostile set: 40 EdDSA keys (and EC keys, which never fit EdDSA), the real one last.
    decoys = [_ed_jwk(f"decoy-{i}") for i in range(40)]
    ec_keys = [{**ccguard_issuer.public_jwk("ES256"), "kid": f"ec-{i}"} for i in range(10)]
    real = ccguard_issuer.public_jwk("EdDSA")
    ccguard_issuer.jwks_body = json.dumps({"keys": [*ec_keys, *decoys, real]}).encode()
    v = make_validator(ccguard_issuer)
    assert v.validate(ccguard_issuer.mint(alg="EdDSA")).subject == "test-client"  # by kid: one key
    count_verifications.clear()

    forged = forge({"alg": "EdDSA", "typ": "at+jwt"}, claims_for(ccguard_issuer), bytes(64))
    assert rejection(v, forged).reason == "bad_signature"
    # Signed by the real key, but that key is beyond the first few: refused too.
    assert rejection(v, ccguard_issuer.mint(alg="EdDSA", kid=None)).reason == "bad_signature"

    assert len(count_verifications) == 2 * MAX_KIDLESS_CANDIDATES
    assert set(count_verifications) == {f"decoy-{i}" for i in range(MAX_KIDLESS_CANDIDATES)}
    assert 3 <= MAX_KIDLESS_CANDIDATES <= 5


def test_r2_10_a_token_without_kid_still_verifies_with_one_of_the_first_keys(ccguard_issuer: TestIssuer) -> None:
    # A rollover as kid-less issuers do it: the new key first, then the old ones.
    keys = [ccguard_issuer.public_jwk("EdDSA"), _ed_jwk("old-1"), _ed_jwk("old-2")]
    ccguard_issuer.jwks_body = json.dumps({"keys": keys[::-1]}).encode()
    v = make_validator(ccguard_issuer)

    assert v.validate(ccguard_issuer.mint(alg="EdDSA", kid=None)).subject == "test-client"


# -- r2-08: cached tokens follow key material, not key names --------------------------------


def _replace_material_under_the_same_kid(issuer: TestIssuer, alg: str = "RS256") -> str:
    """Publish a new key for ``alg`` under the current kid; return that kid.

    Afterwards ``issuer.mint(kid=kid)`` signs with the new material.
    """
    kid = str(issuer.public_jwk(alg)["kid"])
    issuer.rotate_keys()
    issuer.jwks_body = json.dumps({"keys": [{**issuer.public_jwk(alg), "kid": kid}]}).encode()
    return kid


def _cache_it(v: TokenValidator, token: str) -> None:
    v.validate(token)
    v.validate(token)  # the second sight stores it
    assert v.token_cache is not None and token in v.token_cache


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_r2_08_a_cached_token_of_replaced_material_is_refused_once_the_set_refreshes(
    ccguard_issuer: TestIssuer,
) -> None:
    # The periodic refresh alone (no bad-signature refetch) brings the new material.
    v = make_validator(ccguard_issuer, jwks_max_age=0.3, jwks_refresh_cooldown=30)
    old = ccguard_issuer.mint()
    _cache_it(v, old)
    keys = v.key_set(ccguard_issuer.issuer)

    _replace_material_under_the_same_kid(ccguard_issuer)
    replaced_at = ccguard_issuer.hits["jwks"]
    time.sleep(0.35)  # the set is due for refresh
    with contextlib.suppress(InvalidToken):
        v.validate(old)  # served from the old set while it starts the background refresh
    # Every fetch the issuer answered since has been installed.
    _wait_for(lambda: ccguard_issuer.hits["jwks"] > replaced_at and keys.fetches >= ccguard_issuer.hits["jwks"])

    assert old not in (v.token_cache or ())
    assert rejection(v, old).reason == "bad_signature"


def test_r2_08_new_material_under_a_known_kid_is_accepted_after_one_refetch(ccguard_issuer: TestIssuer) -> None:
    v = make_validator(ccguard_issuer, jwks_refresh_cooldown=0.3)
    old = ccguard_issuer.mint()
    _cache_it(v, old)
    assert ccguard_issuer.hits["jwks"] == 1

    kid = _replace_material_under_the_same_kid(ccguard_issuer)
    time.sleep(0.35)  # the initial load's cooldown passes
    new = ccguard_issuer.mint(kid=kid)

    assert v.validate(new).subject == "test-client"
    assert ccguard_issuer.hits["jwks"] == 2  # exactly one refetch picked the new material up
    # The token of the withdrawn material is cached no longer, and refused.
    assert old not in (v.token_cache or ())
    assert rejection(v, old).reason == "bad_signature"


def test_r2_08_forged_signatures_under_a_known_kid_refetch_at_most_once_per_cooldown(
    ccguard_issuer: TestIssuer,
) -> None:
    v = make_validator(ccguard_issuer, jwks_refresh_cooldown=0.5)
    good = ccguard_issuer.mint()
    v.validate(good)
    loaded = ccguard_issuer.hits["jwks"]
    time.sleep(0.55)  # the initial load's cooldown passes: one refetch is allowed
    kid = ccguard_issuer.public_jwk("RS256")["kid"]
    header = {"alg": "RS256", "typ": "at+jwt", "kid": kid}

    for i in range(60):
        forged = forge(header, claims_for(ccguard_issuer, jti=str(i)), secrets.token_bytes(256))
        assert rejection(v, forged).reason == "bad_signature"

    assert ccguard_issuer.hits["jwks"] - loaded <= 1
    assert v.validate(good).subject == "test-client"


def test_r2_08_the_generation_moves_only_when_material_is_withdrawn(ccguard_issuer: TestIssuer) -> None:
    v = make_validator(ccguard_issuer, jwks_refresh_cooldown=0)
    v.validate(ccguard_issuer.mint())
    keys = v.key_set(ccguard_issuer.issuer)
    start = keys.generation
    fingerprint = keys.candidates(ccguard_issuer.public_jwk("RS256")["kid"], "RS256")[0].fingerprint

    ccguard_issuer.rotate_keys(keep_old=True)  # only additions
    v.validate(ccguard_issuer.mint())  # unknown kid: refetch
    assert keys.generation == start
    assert keys.holds(fingerprint)

    _replace_material_under_the_same_kid(ccguard_issuer)  # same kid, new material
    assert rejection(v, ccguard_issuer.mint(kid="unknown")).reason == "unknown_kid"  # refetch
    assert keys.generation == start + 1
    assert not keys.holds(fingerprint)


def test_r2_08_concurrent_forged_signatures_under_a_known_kid_share_one_refetch(ccguard_issuer: TestIssuer) -> None:
    v = make_validator(ccguard_issuer, jwks_refresh_cooldown=0.5)
    v.validate(ccguard_issuer.mint())
    loaded = ccguard_issuer.hits["jwks"]
    time.sleep(0.55)
    ccguard_issuer.jwks_delay = 0.2  # keep the refetch in flight while the others fail
    header = {"alg": "RS256", "typ": "at+jwt", "kid": ccguard_issuer.public_jwk("RS256")["kid"]}
    tokens = [forge(header, claims_for(ccguard_issuer, jti=str(i)), secrets.token_bytes(256)) for i in range(16)]
    barrier = threading.Barrier(len(tokens))
    reasons: list[str] = []

    def attack(token: str) -> None:
        barrier.wait()
        try:
            v.validate(token)
        except InvalidToken as exc:
            reasons.append(exc.reason)

    threads = [threading.Thread(target=attack, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert reasons == ["bad_signature"] * len(tokens)
    assert ccguard_issuer.hits["jwks"] - loaded <= 1
