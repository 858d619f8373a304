"""The key cache: rotation, cooldown, single flight, outages, unusable keys."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from flask_ccguard import InvalidToken, KeysUnavailable, TokenValidator
from flask_ccguard.testing import TestIssuer

from .conftest import MakeValidator


def _wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def test_keys_fetched_once_and_reused(ccguard_issuer: TestIssuer, make_validator: MakeValidator) -> None:
    validator = make_validator()
    for alg in ("RS256", "ES256", "PS256", "EdDSA", "RS256"):
        validator.validate(ccguard_issuer.mint(alg=alg))
    assert ccguard_issuer.hits["jwks"] == 1
    assert ccguard_issuer.hits["openid_configuration"] == 1


def test_rotated_key_seen_on_first_use(ccguard_issuer: TestIssuer, make_validator: MakeValidator) -> None:
    validator = make_validator(jwks_refresh_cooldown=0.2)
    validator.validate(ccguard_issuer.mint())
    ccguard_issuer.jwks_cache_control = "max-age=3600"  # the refetch must bypass the HTTP cache
    ccguard_issuer.rotate_keys()
    time.sleep(0.25)
    assert validator.validate(ccguard_issuer.mint()).subject == "test-client"
    assert ccguard_issuer.hits["jwks"] == 2


def test_unknown_kid_refetch_limited_by_cooldown(ccguard_issuer: TestIssuer, make_validator: MakeValidator) -> None:
    validator = make_validator(jwks_refresh_cooldown=30)
    validator.validate(ccguard_issuer.mint())
    for n in range(20):
        with pytest.raises(InvalidToken) as caught:
            validator.validate(ccguard_issuer.mint(kid=f"random-{n}"))
        assert caught.value.reason == "unknown_kid"
    assert ccguard_issuer.hits["jwks"] == 1
    assert validator.key_set(ccguard_issuer.issuer).cooldown_refusals == 20


def test_unknown_kid_refetches_once_after_cooldown(ccguard_issuer: TestIssuer, make_validator: MakeValidator) -> None:
    validator = make_validator(jwks_refresh_cooldown=0.2)
    validator.validate(ccguard_issuer.mint())
    time.sleep(0.25)
    for n in range(5):
        with pytest.raises(InvalidToken):
            validator.validate(ccguard_issuer.mint(kid=f"random-{n}"))
    assert ccguard_issuer.hits["jwks"] == 2


def test_concurrent_misses_share_one_fetch(ccguard_issuer: TestIssuer, make_validator: MakeValidator) -> None:
    validator = make_validator(jwks_refresh_cooldown=0)
    validator.validate(ccguard_issuer.mint())
    ccguard_issuer.rotate_keys()
    ccguard_issuer.jwks_delay = 0.3
    tokens = [ccguard_issuer.mint() for _ in range(12)]
    start = threading.Barrier(len(tokens))
    results: list[Any] = []

    def call(token: str) -> None:
        start.wait()
        try:
            results.append(validator.validate(token).subject)
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=call, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["test-client"] * len(tokens)
    assert ccguard_issuer.hits["jwks"] == 2, "one initial fetch, one shared refetch"


def test_nothing_cached_and_issuer_failing_gives_keys_unavailable(
    ccguard_issuer: TestIssuer, make_validator: MakeValidator
) -> None:
    ccguard_issuer.jwks_status = 500
    validator = make_validator(jwks_refresh_cooldown=30)
    for _ in range(3):
        with pytest.raises(KeysUnavailable) as caught:
            validator.validate(ccguard_issuer.mint())
        assert caught.value.status == 503
    assert ccguard_issuer.hits["jwks"] == 1, "failures are retried only after the cooldown"


def test_unreachable_issuer_gives_keys_unavailable() -> None:
    issuer = TestIssuer()
    token = issuer.mint()
    issuer.stop()
    validator = TokenValidator(issuer.issuer, issuer.audience, http_timeout=1)
    with pytest.raises(KeysUnavailable):
        validator.validate(token)


def test_cached_keys_keep_serving_through_an_outage(ccguard_issuer: TestIssuer, make_validator: MakeValidator) -> None:
    validator = make_validator(jwks_max_age=0, jwks_refresh_cooldown=0)
    validator.validate(ccguard_issuer.mint())
    ccguard_issuer.jwks_status = 503
    for _ in range(5):
        assert validator.validate(ccguard_issuer.mint()).subject == "test-client"
    _wait_for(lambda: ccguard_issuer.hits["jwks"] >= 2)


def test_keys_beyond_stale_limit_stop_serving(ccguard_issuer: TestIssuer, make_validator: MakeValidator) -> None:
    validator = make_validator(jwks_max_age=0, jwks_refresh_cooldown=0, jwks_stale_limit=0.3)
    validator.validate(ccguard_issuer.mint())
    ccguard_issuer.jwks_status = 500
    time.sleep(0.4)
    with pytest.raises(KeysUnavailable) as caught:
        validator.validate(ccguard_issuer.mint())
    assert caught.value.reason == "keys_stale"
    ccguard_issuer.jwks_status = 200
    assert validator.validate(ccguard_issuer.mint()).subject == "test-client"


def test_key_dropped_by_the_issuer_stops_validating(ccguard_issuer: TestIssuer, make_validator: MakeValidator) -> None:
    validator = make_validator(jwks_refresh_cooldown=0)
    old_token = ccguard_issuer.mint()
    validator.validate(old_token)
    ccguard_issuer.rotate_keys()
    validator.validate(ccguard_issuer.mint())  # unknown kid: refetch installs the new set
    with pytest.raises(InvalidToken) as caught:
        validator.validate(old_token)
    assert caught.value.reason == "unknown_kid"


@pytest.mark.parametrize(
    ("cache_control", "expected_fetches"),
    [pytest.param("max-age=3600", 1, id="issuer-max-age-honoured"), pytest.param(None, 2, id="no-header-refreshes")],
)
def test_issuer_max_age_extends_refresh(
    ccguard_issuer: TestIssuer, make_validator: MakeValidator, cache_control: str | None, expected_fetches: int
) -> None:
    ccguard_issuer.jwks_cache_control = cache_control
    validator = make_validator(jwks_max_age=0, jwks_refresh_cooldown=0)
    validator.validate(ccguard_issuer.mint())
    validator.validate(ccguard_issuer.mint())
    if expected_fetches > 1:
        _wait_for(lambda: ccguard_issuer.hits["jwks"] >= expected_fetches)
    else:
        time.sleep(0.1)
    assert ccguard_issuer.hits["jwks"] == expected_fetches


UNUSABLE = [
    pytest.param("rsa-1024", "1024 bits", id="rsa-under-2048"),
    pytest.param({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}, "use", id="use-enc"),
    pytest.param(
        {"kty": "EC", "kid": "ops", "key_ops": ["sign"], "crv": "P-256"}, "key_ops", id="key-ops-without-verify"
    ),
    pytest.param({"kty": "oct", "kid": "oct", "k": "c2VjcmV0"}, "private", id="symmetric-key"),
    pytest.param(
        {"kty": "EC", "kid": "priv", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}, "private", id="private-ec"
    ),
    pytest.param({"kty": "XYZ", "kid": "x"}, "unsupported", id="unknown-kty"),
    pytest.param(
        {"kty": "EC", "kid": "curve", "crv": "P-192", "x": "AA", "y": "AA"}, "unsupported", id="unknown-curve"
    ),
    pytest.param({"kty": "EC", "kid": "pt", "crv": "P-256", "x": "AQ", "y": "AQ"}, "curve", id="point-not-on-curve"),
    pytest.param({"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AQID"}, "32 bytes", id="short-ed25519"),
    pytest.param(
        {"kty": "RSA", "kid": "alg", "alg": "ES256", "n": "AQAB", "e": "AQAB"}, "does not fit", id="alg-mismatch"
    ),
    pytest.param("not-an-object", "JSON object", id="not-an-object"),
]


def _special_jwk(name: str) -> Any:
    if name == "not-an-object":
        return ["not", "an", "object"]
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_numbers()
    return {"kty": "RSA", "kid": "small", "n": _b64(numbers.n), "e": _b64(numbers.e)}


def _b64(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(("jwk", "logged"), UNUSABLE)
def test_unusable_keys_skipped_without_breaking_the_set(
    ccguard_issuer: TestIssuer, make_validator: MakeValidator, caplog: pytest.LogCaptureFixture, jwk: Any, logged: str
) -> None:
    if isinstance(jwk, str):
        jwk = _special_jwk(jwk)
    if isinstance(jwk, dict):
        ccguard_issuer.extra_jwks = [jwk]
    else:
        ccguard_issuer.jwks_body = json.dumps({"keys": [*ccguard_issuer.jwks()["keys"], jwk]}).encode()
    with caplog.at_level(logging.INFO, logger="flask_ccguard"):
        assert make_validator().validate(ccguard_issuer.mint()).subject == "test-client"
    assert any(logged in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b'{"keys": "nope"}', id="keys-not-array"),
        pytest.param(b"[]", id="array"),
    ],
)
def test_broken_key_set_gives_keys_unavailable(
    ccguard_issuer: TestIssuer, make_validator: MakeValidator, body: bytes
) -> None:
    ccguard_issuer.jwks_body = body
    with pytest.raises(KeysUnavailable):
        make_validator().validate(ccguard_issuer.mint())
