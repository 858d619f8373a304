"""Protect Flask APIs with OAuth 2.0 client-credentials access tokens."""

from __future__ import annotations

from ._version import __version__
from .core.claims import VerifiedToken
from .core.errors import (
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
from .extension import CCGuard
from .signals import token_rejected, token_verified

__all__ = [
    "CCGuard",
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
    "require_roles",
    "require_scopes",
    "require_token",
    "token_rejected",
    "token_verified",
    "verify_token_in_request",
]
