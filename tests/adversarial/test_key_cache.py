"""The key cache under attack (RFC 7517 §5): floods of unknown kids cannot hammer the issuer or block good tokens."""

from __future__ import annotations

import gc
import secrets
import threading
import tracemalloc
from collections.abc import Callable

import pytest

from flask_ccguard import InvalidToken, KeysUnavailable
from flask_ccguard.testing import TestIssuer

from .support import claims_for, forge, make_validator, rejection

Flood = Callable[[TestIssuer, int], str]


def _random_kid(iss: TestIssuer, i: int) -> str:
    return iss.mint(kid=secrets.token_urlsafe(12))


def _long_kid(iss: TestIssuer, i: int) -> str:
    return iss.mint(kid=f"{i:08d}" + "k" * 4000)


def _near_kid(iss: TestIssuer, i: int) -> str:
    return iss.mint(kid=iss.public_jwk("RS256")["kid"] + str(i))


def _no_kid_unpublished_alg(iss: TestIssuer, i: int) -> str:
    # ES384 is allowed, but the issuer publishes no ES384 key: every token misses.
    return forge({"alg": "ES384"}, claims_for(iss, jti=str(i)), bytes(96))


def _legit_kid_wrong_alg(iss: TestIssuer, i: int) -> str:
    return forge({"alg": "PS256", "kid": iss.public_jwk("RS256")["kid"]}, claims_for(iss, jti=str(i)), bytes(256))


FLOODS: list[tuple[str, Flood]] = [
    ("PyJWT-PyJWKClient-random-kid-flood", _random_kid),
    ("CWE-400-long-kid-flood", _long_kid),
    ("CWE-400-near-miss-kid-flood", _near_kid),
    ("CWE-400-kidless-unpublished-alg-flood", _no_kid_unpublished_alg),
    ("RFC7517-4.4-legit-kid-wrong-alg-flood", _legit_kid_wrong_alg),
]


@pytest.mark.parametrize("flood", [f[1] for f in FLOODS], ids=[f[0] for f in FLOODS])
def test_unknown_kid_flood_fetches_at_most_once_per_cooldown(ccguard_issuer: TestIssuer, flood: Flood) -> None:
    v = make_validator(ccguard_issuer, algorithms=("RS256", "PS256", "ES256", "ES384", "EdDSA"))
    good = ccguard_issuer.mint()
    v.validate(good)
    loaded = ccguard_issuer.hits["jwks"]
    tokens = [flood(ccguard_issuer, i) for i in range(150)]
    for token in tokens:
        assert isinstance(rejection(v, token), InvalidToken)
    assert ccguard_issuer.hits["jwks"] - loaded <= 1
    # Good tokens are not blocked, and no new key appeared out of the flood.
    assert v.validate(good).subject == "test-client"
    assert v.key_set(ccguard_issuer.issuer).kids == {
        ccguard_issuer.public_jwk(a)["kid"] for a in ("RS256", "ES256", "PS256", "EdDSA")
    }


def test_unknown_kid_flood_leaves_no_memory_behind(ccguard_issuer: TestIssuer) -> None:
    v = make_validator(ccguard_issuer)
    v.validate(ccguard_issuer.mint())
    tokens = [ccguard_issuer.mint(kid=f"{i:06d}" + "x" * 5000) for i in range(400)]
    rejection(v, tokens[0])  # the one refetch happens here, outside the measurement
    # Count only memory allocated on behalf of flask_ccguard (anywhere in the
    # stack), so threads left by other tests do not blur the figure.
    ours = [tracemalloc.Filter(True, "*flask_ccguard*", all_frames=True)]
    tracemalloc.start(30)
    try:
        gc.collect()
        before = tracemalloc.take_snapshot().filter_traces(ours)
        for token in tokens[1:]:
            rejection(v, token)
        gc.collect()
        after = tracemalloc.take_snapshot().filter_traces(ours)
    finally:
        tracemalloc.stop()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # 399 kids of 5 kB would be ~2 MB if anything kept them.
    assert growth < 256 * 1024


def _concurrently(n: int, fn: Callable[[int], object]) -> list[object]:
    results: list[object] = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_concurrent_unknown_kids_share_one_fetch(ccguard_issuer: TestIssuer) -> None:
    v = make_validator(ccguard_issuer)
    v.validate(ccguard_issuer.mint())
    loaded = ccguard_issuer.hits["jwks"]
    ccguard_issuer.jwks_delay = 0.3  # keep the refetch in flight while the others miss
    tokens = [ccguard_issuer.mint(kid=f"random-{i}") for i in range(16)]
    results = _concurrently(16, lambda i: v.validate(tokens[i]))
    assert all(isinstance(r, InvalidToken) and r.reason == "unknown_kid" for r in results), results
    assert ccguard_issuer.hits["jwks"] - loaded <= 1


def test_concurrent_requests_after_rotation_all_pass_on_one_fetch(ccguard_issuer: TestIssuer) -> None:
    # No cooldown: the initial load would otherwise close the window for the
    # new kid (panva/jose counts it too); single flight alone must hold.
    v = make_validator(ccguard_issuer, jwks_refresh_cooldown=0)
    v.validate(ccguard_issuer.mint())
    loaded = ccguard_issuer.hits["jwks"]
    ccguard_issuer.rotate_keys()
    ccguard_issuer.jwks_delay = 0.2
    tokens = [ccguard_issuer.mint() for _ in range(12)]
    results = _concurrently(12, lambda i: v.validate(tokens[i]).subject)
    assert results == ["test-client"] * 12
    assert ccguard_issuer.hits["jwks"] - loaded == 1


def test_concurrent_first_requests_share_the_initial_fetch(ccguard_issuer: TestIssuer) -> None:
    v = make_validator(ccguard_issuer)
    ccguard_issuer.jwks_delay = 0.2
    tokens = [ccguard_issuer.mint() for _ in range(12)]
    results = _concurrently(12, lambda i: v.validate(tokens[i]).subject)
    assert results == ["test-client"] * 12
    assert ccguard_issuer.hits["jwks"] == 1


def test_flood_while_the_issuer_is_down_keeps_serving_cached_keys(ccguard_issuer: TestIssuer) -> None:
    v = make_validator(ccguard_issuer)
    good = ccguard_issuer.mint()
    v.validate(good)
    loaded = ccguard_issuer.hits["jwks"]
    ccguard_issuer.jwks_status = 503
    for i in range(100):
        assert rejection(v, ccguard_issuer.mint(kid=f"k{i}")).reason == "unknown_kid"
    assert v.validate(good).subject == "test-client"
    assert ccguard_issuer.hits["jwks"] - loaded <= 1


def test_flood_before_keys_were_ever_loaded_fetches_once(ccguard_issuer: TestIssuer) -> None:
    ccguard_issuer.jwks_status = 500
    v = make_validator(ccguard_issuer)
    for _ in range(50):
        with pytest.raises(KeysUnavailable):
            v.validate(ccguard_issuer.mint())
    assert ccguard_issuer.hits["jwks"] == 1
    assert ccguard_issuer.hits["openid_configuration"] == 1
