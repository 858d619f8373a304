"""Fixtures of the adversarial suite: one issuer per module, an attacker, and a validator factory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flask_ccguard import TokenValidator
from flask_ccguard.testing import TestIssuer

from .support import ALL_ALGS, make_validator


@pytest.fixture(scope="module")
def issuer() -> Iterator[TestIssuer]:
    """The legitimate issuer, shared by a module's read-only cases."""
    with TestIssuer(algorithms=ALL_ALGS) as iss:
        yield iss


@pytest.fixture(scope="module")
def attacker() -> Iterator[TestIssuer]:
    """A second issuer with keys of its own: what an attacker can sign with."""
    with TestIssuer(algorithms=ALL_ALGS) as iss:
        yield iss


@pytest.fixture(scope="module")
def validator(issuer: TestIssuer) -> TokenValidator:
    """A validator for ``issuer`` accepting RS256, PS256, ES256 and EdDSA."""
    v = make_validator(issuer)
    v.validate(issuer.mint())  # warm the key cache once
    return v
