"""TokenValidator.stats(): validations by outcome and reason, key-set counters."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from flask_ccguard import CCGuardError
from flask_ccguard.testing import TestIssuer
from tests.core.conftest import MakeValidator


def attempt(validator, token) -> None:
    with contextlib.suppress(CCGuardError):
        validator.validate(token)


def test_outcomes_and_reasons_are_counted(ccguard_issuer: TestIssuer, make_validator: MakeValidator):
    v = make_validator(jwks_refresh_cooldown=60)
    now = int(time.time())
    for token in [
        ccguard_issuer.mint(),
        ccguard_issuer.mint(),
        ccguard_issuer.mint(iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        ccguard_issuer.mint(kid="no-such-key"),
        ccguard_issuer.mint(kid="another-missing-key"),
        "not a token",
    ]:
        attempt(v, token)
    stats = v.stats()
    assert stats["validations"] == {"accepted": 2, "rejected": 4, "unavailable": 0}
    assert stats["reasons"] == {"expired": 1, "malformed": 1, "unknown_kid": 2}
    # The first load opened the cooldown, so neither unknown kid refetched.
    assert stats["key_fetches"] == 1
    assert stats["unknown_kid_refetches"] == 0
    assert stats["cooldown_refusals"] == 2
    assert stats["issuers"][ccguard_issuer.issuer]["key_fetches"] == 1


def test_unreachable_issuer_is_counted_as_unavailable(ccguard_issuer: TestIssuer, make_validator: MakeValidator):
    v = make_validator()
    ccguard_issuer.jwks_status = 500
    attempt(v, ccguard_issuer.mint())
    stats = v.stats()
    assert stats["validations"]["unavailable"] == 1
    assert stats["reasons"] == {"keys_unavailable": 1}
    assert stats["key_fetch_failures"] == 1


def test_keys_due_for_refresh_are_counted_as_stale(ccguard_issuer: TestIssuer, make_validator: MakeValidator):
    v = make_validator(jwks_max_age=0)
    token = ccguard_issuer.mint()
    v.validate(token)
    ccguard_issuer.jwks_status = 503  # refreshes fail; the cached keys keep serving
    for _ in range(3):
        v.validate(token)
    assert v.stats()["stale_keys_served"] >= 1


def test_counts_are_exact_under_concurrency(ccguard_issuer: TestIssuer, make_validator: MakeValidator):
    v = make_validator()
    token = ccguard_issuer.mint()
    v.validate(token)

    def work() -> None:
        for _ in range(300):
            v.validate(token)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert v.stats()["validations"]["accepted"] == 1 + 8 * 300


@pytest.mark.parametrize("member", ["cache_hits", "issuer_requests", "key_set_cache_hits", "stale_keys_served"])
def test_report_has_every_counter_from_the_start(make_validator: MakeValidator, member):
    assert make_validator().stats()[member] == 0
