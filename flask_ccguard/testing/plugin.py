"""The pytest plugin of flask-ccguard (entry point ``pytest11: ccguard``): the ``ccguard_issuer`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .issuer import TestIssuer

__all__ = ["ccguard_issuer"]


@pytest.fixture
def ccguard_issuer() -> Iterator[TestIssuer]:
    """A started :class:`~flask_ccguard.testing.TestIssuer` (RS256, ES256, PS256, EdDSA keys); stopped afterwards.

    Client id ``test-client``, secret ``test-secret``. Configure the app
    under test with ``ccguard_issuer.app_config()`` (issuer, audience,
    algorithms, and no refetch cooldown, so that tokens minted after
    ``rotate_keys()`` are accepted at once).
    """
    with TestIssuer(
        algorithms=("RS256", "ES256", "PS256", "EdDSA"),
        clients={"test-client": "test-secret"},
    ) as issuer:
        yield issuer
