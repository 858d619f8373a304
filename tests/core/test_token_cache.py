"""The verified-token cache: hits, time re-checks on every hit, LRU eviction, key removal."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from flask_ccguard import ConfigurationError, ExpiredToken, InvalidToken, TokenValidator
from flask_ccguard.core.token_cache import TokenCache
from flask_ccguard.testing import TestIssuer


class Clock:
    """A settable clock for the validator (seconds since the epoch)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def make_validator(issuer: TestIssuer, **options: Any) -> TokenValidator:
    options.setdefault("algorithms", ["RS256", "ES256", "PS256", "EdDSA"])
    return TokenValidator(issuer.issuer, issuer.audience, **options)


def cached(validator: TokenValidator, token: str) -> bool:
    cache = validator.token_cache
    assert cache is not None
    return token in cache


def validate_until_cached(validator: TokenValidator, token: str) -> None:
    # The first verification only notes the token; the second stores it.
    validator.validate(token)
    assert not cached(validator, token)
    validator.validate(token)
    assert cached(validator, token)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "EdDSA"])
def test_a_repeated_token_is_served_from_the_cache_with_the_same_claims(ccguard_issuer: TestIssuer, alg: str) -> None:
    validator = make_validator(ccguard_issuer)
    token = ccguard_issuer.mint(alg=alg, roles=["reader"], scope="assets.read")
    first = validator.validate(token)
    second = validator.validate(token)
    fetches = validator.key_set(ccguard_issuer.issuer).fetches

    hit = validator.validate(token)

    assert hit is second
    assert dict(hit.claims) == dict(first.claims)
    assert dict(hit.header) == dict(first.header)
    assert hit.roles == frozenset({"reader"})
    assert hit.scopes == frozenset({"assets.read"})
    assert validator.key_set(ccguard_issuer.issuer).fetches == fetches


def test_a_token_seen_once_is_not_stored(ccguard_issuer: TestIssuer) -> None:
    validator = make_validator(ccguard_issuer)
    token = ccguard_issuer.mint()

    validator.validate(token)

    assert not cached(validator, token)
    assert len(validator.token_cache or ()) == 0


@pytest.mark.parametrize(
    ("options", "claims", "shift", "error", "reason"),
    [
        ({"leeway": 0}, {"expires_in": 60}, 61, ExpiredToken, "expired"),
        ({"leeway": 30}, {"expires_in": 60}, 91, ExpiredToken, "expired"),
        ({"leeway": 0, "max_token_age": 100}, {"expires_in": 3600}, 101, InvalidToken, "too_old"),
        # A clock set back before nbf (or iat) fails again, as on first sight.
        ({"leeway": 0}, {"expires_in": 3600}, -120, InvalidToken, "not_yet_valid"),
    ],
)
def test_every_hit_checks_the_time_claims_again(
    ccguard_issuer: TestIssuer,
    options: dict[str, Any],
    claims: dict[str, Any],
    shift: float,
    error: type[InvalidToken],
    reason: str,
) -> None:
    clock = Clock()
    validator = make_validator(ccguard_issuer, clock=clock, **options)
    now = int(clock.now)
    token = ccguard_issuer.mint(iat=now, nbf=now, exp=now + claims["expires_in"])
    validate_until_cached(validator, token)

    clock.now = now + shift
    with pytest.raises(error) as caught:
        validator.validate(token)

    assert caught.value.reason == reason
    assert not cached(validator, token)


def test_a_hit_just_inside_the_leeway_is_accepted(ccguard_issuer: TestIssuer) -> None:
    clock = Clock()
    validator = make_validator(ccguard_issuer, clock=clock, leeway=30)
    now = int(clock.now)
    token = ccguard_issuer.mint(iat=now, nbf=now, exp=now + 60)
    validate_until_cached(validator, token)
    hit = validator.validate(token)

    clock.now = now + 89

    assert validator.validate(token) is hit


def test_the_least_recently_used_token_is_evicted_first(ccguard_issuer: TestIssuer) -> None:
    validator = make_validator(ccguard_issuer, token_cache_size=2)
    one, two, three = (ccguard_issuer.mint() for _ in range(3))
    validate_until_cached(validator, one)
    validate_until_cached(validator, two)
    validator.validate(one)  # now `two` is the least recently used

    validate_until_cached(validator, three)

    assert [cached(validator, t) for t in (one, two, three)] == [True, False, True]
    assert len(validator.token_cache or ()) == 2


def test_tokens_of_a_key_that_leaves_the_jwks_are_dropped(ccguard_issuer: TestIssuer) -> None:
    validator = make_validator(ccguard_issuer, jwks_refresh_cooldown=0)
    old_rs, old_es = ccguard_issuer.mint(alg="RS256"), ccguard_issuer.mint(alg="ES256")
    validate_until_cached(validator, old_rs)
    validate_until_cached(validator, old_es)

    ccguard_issuer.rotate_keys()  # the old keys leave the JWKS at once
    validator.validate(ccguard_issuer.mint(alg="RS256"))  # unknown kid: refetch

    assert not cached(validator, old_rs)
    assert not cached(validator, old_es)
    with pytest.raises(InvalidToken) as caught:
        validator.validate(old_rs)
    assert caught.value.reason == "unknown_kid"


def test_a_rollover_keeping_the_old_key_keeps_its_tokens(ccguard_issuer: TestIssuer) -> None:
    validator = make_validator(ccguard_issuer, jwks_refresh_cooldown=0)
    old = ccguard_issuer.mint()
    validate_until_cached(validator, old)

    ccguard_issuer.rotate_keys(keep_old=True)
    validator.validate(ccguard_issuer.mint())  # unknown kid: refetch

    assert cached(validator, old)


def test_tokens_checked_with_a_key_without_kid_are_not_cached(ccguard_issuer: TestIssuer) -> None:
    jwk = ccguard_issuer.public_jwk("RS256")
    del jwk["kid"]
    ccguard_issuer.jwks_body = json.dumps({"keys": [jwk]}).encode()
    validator = make_validator(ccguard_issuer)
    token = ccguard_issuer.mint(kid=None)

    first, second = validator.validate(token), validator.validate(token)

    assert first is not second
    assert not cached(validator, token)


def test_a_size_of_zero_turns_the_cache_off(ccguard_issuer: TestIssuer) -> None:
    validator = make_validator(ccguard_issuer, token_cache_size=0)
    token = ccguard_issuer.mint()

    results = [validator.validate(token) for _ in range(3)]

    assert validator.token_cache is None
    assert validator.token_cache_size == 0
    assert len({id(r) for r in results}) == 3
    assert all(dict(r.claims) == dict(results[0].claims) for r in results)


def test_the_default_size_is_1024(ccguard_issuer: TestIssuer) -> None:
    validator = make_validator(ccguard_issuer)

    assert validator.token_cache_size == 1024
    assert validator.token_cache is not None
    assert validator.token_cache.maxsize == 1024


@pytest.mark.parametrize("size", [-1, 1.5, "10", True, None])
def test_a_wrong_size_is_refused_at_configuration(ccguard_issuer: TestIssuer, size: Any) -> None:
    with pytest.raises(ConfigurationError, match="token_cache_size must be a whole number of tokens"):
        make_validator(ccguard_issuer, token_cache_size=size)


def test_concurrent_hits_and_evictions_give_correct_results(ccguard_issuer: TestIssuer) -> None:
    validator = make_validator(ccguard_issuer, token_cache_size=4)
    tokens = [ccguard_issuer.mint(alg="EdDSA", sub=f"client-{i}") for i in range(8)]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(120):
                index = (offset + i) % len(tokens)
                assert validator.validate(tokens[index]).subject == f"client-{index}"
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(validator.token_cache or ()) <= 4


class Material:
    """What the cache reads of a key set: a generation and the published fingerprints."""

    def __init__(self, *fingerprints: bytes) -> None:
        self.generation = 0
        self.published = set(fingerprints)

    def holds(self, fingerprint: bytes) -> bool:
        return fingerprint in self.published

    def withdraw(self, fingerprint: bytes) -> None:
        self.published.discard(fingerprint)
        self.generation += 1


@pytest.mark.parametrize(("withdrawn_meanwhile", "served"), [(False, True), (True, False)])
def test_a_token_checked_while_its_key_was_withdrawn_is_not_served(withdrawn_meanwhile: bool, served: bool) -> None:
    cache = TokenCache(4)
    keys: Any = Material(b"k1", b"k2")
    verified: Any = object()
    generation = keys.generation  # read before the key lookup, as the validator does
    if withdrawn_meanwhile:
        keys.withdraw(b"k1")

    cache.put("token", verified, since=0, until=10, keys=keys, fingerprint=b"k1", generation=generation)

    assert ("token" in cache) is served
    assert (cache.get("token", 5) is not None) is served


def test_a_hit_after_other_material_was_withdrawn_is_served_and_checked_once() -> None:
    cache = TokenCache(4)
    keys: Any = Material(b"k1", b"k2")
    verified: Any = object()
    cache.put("token", verified, since=0, until=10, keys=keys, fingerprint=b"k1", generation=keys.generation)
    keys.withdraw(b"k2")

    entry = cache.get("token", 5)

    assert entry is not None and entry.token is verified
    assert entry.generation == keys.generation  # later hits compare one integer again


@pytest.mark.parametrize("value", [None, 42, ["a.b.c"], {"token": "a.b.c"}])
def test_a_value_that_is_no_string_is_refused_as_malformed(ccguard_issuer: TestIssuer, value: Any) -> None:
    validator = make_validator(ccguard_issuer)

    with pytest.raises(InvalidToken) as caught:
        validator.validate(value)

    assert caught.value.reason == "malformed"
