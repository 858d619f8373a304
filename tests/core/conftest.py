"""Helpers shared by the core tests: a validator bound to a TestIssuer."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from flask_ccguard import TokenValidator
from flask_ccguard.testing import TestIssuer

ALL_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")

MakeValidator = Callable[..., TokenValidator]


@pytest.fixture
def make_validator(ccguard_issuer: TestIssuer) -> MakeValidator:
    """Build a TokenValidator for the fixture issuer; keywords override."""

    def make(**options: Any) -> TokenValidator:
        options.setdefault("issuer", ccguard_issuer.issuer)
        options.setdefault("audience", ccguard_issuer.audience)
        options.setdefault("algorithms", ["RS256", "ES256", "PS256", "EdDSA"])
        return TokenValidator(**options)

    return make
