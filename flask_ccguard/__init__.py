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

__all__ = [
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
]
