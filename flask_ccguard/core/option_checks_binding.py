"""The checks of the sender-constraint options (RFC 9449 DPoP, RFC 8705 mTLS, FAPI 2.0).

Each takes (value, display name) like those of :mod:`.option_checks` and names
the key and the fix in its :class:`~.errors.ConfigurationError`.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigurationError
from .keys import ASYMMETRIC_ALGORITHMS
from .mtls import SOURCES
from .proxies import Network, parse_trusted_proxies
from .request_url import parse_forwarded_headers, parse_public_base_url

__all__ = [
    "FAPI2_ALGORITHMS",
    "PROFILES",
    "client_cert_source",
    "dpop_algorithms",
    "dpop_iat_window",
    "dpop_mode",
    "dpop_nonce",
    "forwarded_headers",
    "profile",
    "public_base_url",
    "trusted_proxies",
]

#: FAPI 2.0 Security Profile §5.4.1: PS256, ES256 or EdDSA (Ed25519) only.
FAPI2_ALGORITHMS = ("PS256", "ES256", "EdDSA")
PROFILES = ("fapi2",)


def dpop_mode(value: Any, name: str) -> str:
    if value not in ("disabled", "allowed", "required"):
        raise ConfigurationError(f"{name} must be 'disabled', 'allowed' or 'required' (RFC 9449), not {value!r}.")
    return str(value)


def dpop_algorithms(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or any(a not in ASYMMETRIC_ALGORITHMS for a in value):
        raise ConfigurationError(
            f"{name} must be a non-empty list of asymmetric JWS algorithms from {sorted(ASYMMETRIC_ALGORITHMS)} "
            "(a DPoP proof is signed with the client's private key; never 'none' or HS*)."
        )
    return tuple(value)


def dpop_iat_window(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
        raise ConfigurationError(f"{name} must be the seconds a DPoP proof stays acceptable, 0 < s <= 3600 (e.g. 60).")
    return float(value)


def dpop_nonce(value: Any, name: str) -> bool | bytes:
    if value is False or value is None:
        return False
    if value is True:
        return True
    secret = value.encode("utf-8") if isinstance(value, str) else value
    if not isinstance(secret, bytes) or len(secret) < 32:
        raise ConfigurationError(
            f"{name} must be False, True (a secret per process) or a secret of at least 32 bytes "
            "(e.g. secrets.token_urlsafe(32)) shared by every worker."
        )
    return secret


def public_base_url(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be the API's public base URL such as 'https://api.example.com'.")
    return parse_public_base_url(value, name)


def forwarded_headers(value: Any, name: str) -> str | tuple[str, ...]:
    # Checked here, kept as given (the settings show what was configured);
    # the Flask layer reads it with parse_forwarded_headers.
    parse_forwarded_headers(value, name)
    return value if isinstance(value, str) else tuple(v.lower() for v in value)


def trusted_proxies(value: Any, name: str) -> tuple[Network, ...]:
    return parse_trusted_proxies(value, name)


def client_cert_source(value: Any, name: str) -> str | None:
    if value is not None and value not in SOURCES:
        raise ConfigurationError(
            f"{name} is {value!r}; use one of "
            + ", ".join(repr(s) for s in SOURCES)
            + ", or leave it unset to refuse certificate-bound tokens."
        )
    return value if value is None else str(value)


def profile(value: Any, name: str) -> str | None:
    if value is not None and value not in PROFILES:
        raise ConfigurationError(
            f"{name} must be None or 'fapi2' (the FAPI 2.0 resource-server preset), not {value!r}."
        )
    return value if value is None else str(value)
