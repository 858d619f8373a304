"""The client-credentials token client (RFC 6749 §4.4), as ``flask_ccguard.client``.

The implementation lives in :mod:`flask_ccguard.client.credentials` (no Flask import).
"""

from __future__ import annotations

from .credentials import AUTH_METHODS, TLS_AUTH_METHODS, ClientCredentials, TokenRequestError
from .dpop import DPoPKey

__all__ = ["AUTH_METHODS", "TLS_AUTH_METHODS", "ClientCredentials", "DPoPKey", "TokenRequestError"]
