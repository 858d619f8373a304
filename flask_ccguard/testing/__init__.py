"""A real local OpenID issuer over loopback HTTP, and its pytest plugin.

:class:`TestIssuer` (:mod:`.issuer`) serves discovery metadata, a JWKS and a
client-credentials token endpoint on ``127.0.0.1`` at an ephemeral port and
signs its tokens independently of flask_ccguard's validator (:mod:`.minting`).
:func:`profile_issuer` builds one that mimics a real identity provider
(:mod:`.profiles`).

pytest plugin
-------------
The fixture ``ccguard_issuer`` (:mod:`.plugin`) yields a started
:class:`TestIssuer` publishing RS256, ES256, PS256 and EdDSA keys, and stops it
afterwards. Its token endpoint accepts the client id ``test-client`` with the
secret ``test-secret`` (``client_secret_post`` or ``client_secret_basic``); the
tokens it issues carry ``sub`` and ``client_id`` ``test-client``. Configure the
app under test from :meth:`TestIssuer.app_config`, which also turns off the
unknown-``kid`` refetch cooldown so that a token minted after
:meth:`TestIssuer.rotate_keys` is accepted at once::

    def test_list_assets(ccguard_issuer):
        app = create_app(ccguard_issuer.app_config())
        ccguard_issuer.rotate_keys()
        token = ccguard_issuer.mint(roles=["guest"])
        ...

When flask-ccguard is installed, the ``pytest11`` entry point ``ccguard``
registers :mod:`flask_ccguard.testing.plugin` and the fixture is there in every
test session.

A checkout run with ``PYTHONPATH=. pytest`` has no entry point, so the
project's ``tests/conftest.py`` imports the fixture instead::

    from flask_ccguard.testing.plugin import ccguard_issuer  # noqa: F401

We do *not* use ``pytest_plugins = ["flask_ccguard.testing.plugin"]`` there:
when the package is also installed (tox), pytest would register that one
module under two names (``ccguard`` and its module name) and abort with
"Plugin already registered under a different name". An imported fixture is
only a conftest-level definition of the same function, which works in both
cases.

This package does not import pytest (only :mod:`.plugin` does), so it works
without it.
"""

from __future__ import annotations

from .dpop import cert_thumbprint, dpop_proof, generate_dpop_key, jwk_thumbprint, public_jwk
from .issuer import TestIssuer
from .minting import SUPPORTED_ALGORITHMS
from .profiles import profile_issuer
from .server import RecordedRequest

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "RecordedRequest",
    "TestIssuer",
    "cert_thumbprint",
    "dpop_proof",
    "generate_dpop_key",
    "jwk_thumbprint",
    "profile_issuer",
    "public_jwk",
]
