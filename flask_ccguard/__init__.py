"""Protect Flask APIs with OAuth 2.0 client-credentials access tokens.

flask-ccguard is a resource-server toolkit: a framework-free
:class:`TokenValidator` (issuer discovery, keys cached by ``kid`` with a
refetch cooldown, exact ``iss``/``aud``/``exp``/``nbf``/``iat`` checks, an
asymmetric algorithm allowlist), a Flask extension :class:`CCGuard` whose
decorators answer RFC 6750 errors, a token client
(:mod:`flask_ccguard.client`), the ``ccguard`` command (``token``,
``check-token``, ``decode``) and a real local test issuer
(:mod:`flask_ccguard.testing`, pytest fixture ``ccguard_issuer``).

Example::

    from flask import Flask
    from flask_ccguard import CCGuard, current_token, require_roles

    app = Flask(__name__)
    app.config["CCGUARD_ISSUER"] = "https://idp.example.com/tenant-1"
    app.config["CCGUARD_AUDIENCE"] = "https://api.example.com"
    CCGuard(app)  # every CCGUARD_* setting is checked here, at start-up

    @app.get("/assets")
    @require_roles("guest", "archivist_administrator", match="any")
    def list_assets():
        return {"caller": current_token.subject}

A refused request gets 400, 401, 403 or 503 with a ``WWW-Authenticate``
challenge and a JSON body; :class:`CCGuardError` and its subclasses carry the
status, the RFC 6750 ``error`` code and a safe description.

Read more: the documentation (``docs/`` in the sdist, built with
``tox -e docs``; the README, the package's long description, links each page)
for every ``CCGUARD_*`` setting, issuer recipes (Entra ID, RKVST, IBM Verify,
Aidbox, Duende), deployment and testing; ``SECURITY.rst`` for the
threat model and limits; ``help(flask_ccguard.testing)`` for the test issuer;
``ccguard --help`` for the command line.
"""

from __future__ import annotations

from ._version import __version__
from .core.claims import VerifiedToken
from .core.errors import (
    CCGuardBaseError,
    CCGuardError,
    ConfigurationError,
    ExpiredToken,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    KeysUnavailable,
    MissingToken,
)
from .core.validator import TokenValidator
from .decorators import current_token, require_roles, require_scopes, require_token, verify_token_in_request
from .exemption import public
from .extension import CCGuard
from .signals import token_rejected, token_verified

__all__ = [
    "CCGuard",
    "CCGuardBaseError",
    "CCGuardError",
    "ConfigurationError",
    "ExpiredToken",
    "InsufficientScope",
    "InvalidRequest",
    "InvalidToken",
    "KeysUnavailable",
    "MissingToken",
    "TokenValidator",
    "VerifiedToken",
    "__version__",
    "current_token",
    "public",
    "require_roles",
    "require_scopes",
    "require_token",
    "token_rejected",
    "token_verified",
    "verify_token_in_request",
]
