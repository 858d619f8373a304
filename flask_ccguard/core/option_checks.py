"""The checks of option values: each takes (value, display name) and returns the normalized value.

Every message names the option as the user wrote it (``CCGUARD_LEEWAY``,
``CCGUARD_ISSUER[1]['leeway']``) and says how to fix it; :mod:`.options` attaches
one to each option.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from .authorization import ScopeHierarchy
from .claims import ID_TOKEN_CLAIMS
from .errors import ConfigurationError
from .keys import ASYMMETRIC_ALGORITHMS
from .numbers import bounded_number
from .request_url import URI_CHARS

# RFC 9068 §2.1 asks for "at+jwt"; most issuers still send "JWT" or nothing.
DEFAULT_TOKEN_TYPES: frozenset[str | None] = frozenset({None, "jwt", "at+jwt"})
# RFC 9110 §11.5: the realm is a quoted-string; we refuse what would need escaping.
_REALM = re.compile(r"[\x20-\x7e]+")
# RFC 3986 §2.1: "%" only as the start of a pct-encoded octet.
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def normalize_typ(typ: str) -> str:
    # RFC 7515 §4.1.9: a media type, case-insensitive, "application/" optional.
    typ = typ.lower()
    return typ[len("application/") :] if typ.startswith("application/") else typ


def audiences(value: Any, name: str) -> frozenset[str]:
    if isinstance(value, str) and value:
        return frozenset((value,))
    if isinstance(value, (list, tuple, set, frozenset)) and value and all(isinstance(v, str) and v for v in value):
        return frozenset(value)
    raise ConfigurationError(
        f"{name} is required to check the 'aud' claim: set it to your API's identifier "
        "(e.g. 'https://api.example.com' or its client id), or a list of them."
    )


def algorithms(value: Any, name: str) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple, set, frozenset)) or not value:
        raise ConfigurationError(f"{name} must be a non-empty list such as ['RS256'].")
    for alg in value:
        if not isinstance(alg, str):
            raise ConfigurationError(f"{name} must hold algorithm names such as 'RS256'.")
        if alg.lower() == "none" or alg.upper().startswith("HS"):
            raise ConfigurationError(
                f"{name} contains {alg!r}: unsigned and HMAC tokens are refused because "
                "a resource server must not hold the issuer's signing secret; use e.g. 'RS256'."
            )
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise ConfigurationError(
                f"{name} contains {alg!r}, which is not supported; choose from {sorted(ASYMMETRIC_ALGORITHMS)}."
            )
    return frozenset(value)


def token_types(value: Any, name: str) -> frozenset[str | None]:
    if value is None:
        return DEFAULT_TOKEN_TYPES
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, (list, tuple, set, frozenset))
        or not value
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise ConfigurationError(f"{name} must be None or a list of 'typ' values such as ['at+jwt'].")
    return frozenset(normalize_typ(v) for v in value)


def id_token_claims(value: Any, name: str) -> frozenset[str]:
    if value is None:
        return ID_TOKEN_CLAIMS
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigurationError(
            f"{name} must be None (refuse tokens with {sorted(ID_TOKEN_CLAIMS)}) or a list of claim "
            "names, e.g. ['at_hash', 'c_hash', 's_hash'] for an issuer that puts 'nonce' in access tokens, "
            "or [] to turn the check off."
        )
    return frozenset(value)


def non_negative(value: Any, name: str) -> float:
    seconds = bounded_number(value)  # never OverflowError, whatever the number
    if seconds is None or seconds < 0:
        raise ConfigurationError(f"{name} must be a number of seconds, 0 or more (got {value!r}).")
    return seconds


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(f"{name} must be a whole number above 0 (got {value!r}).")
    return value


def boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False (got {value!r}).")
    return value


def anything(value: Any, name: str) -> Any:
    """No check here: the value is checked where it is used (e.g. the issuer list, the cache URL)."""
    return value


def leeway(value: Any, name: str) -> float:
    seconds = non_negative(value, name)
    if seconds > 600:
        raise ConfigurationError(f"{name} is {seconds} seconds; clock skew beyond 600 seconds defeats 'exp'.")
    return seconds


def timeout(value: Any, name: str) -> float:
    seconds = non_negative(value, name)
    if seconds == 0:
        raise ConfigurationError(f"{name} must be more than 0 seconds.")
    return seconds


def optional_seconds(value: Any, name: str) -> float | None:
    return None if value is None else non_negative(value, name)


def url_or_none(value: Any, name: str) -> str | None:
    # The URL itself is checked with the issuer it belongs to (check_url), which knows about loopback.
    return value  # type: ignore[no-any-return]


def claim_path(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a claim name or dotted path such as 'realm_access.roles'.")
    return value


def delimiter(value: Any, name: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigurationError(
            f"{name} must be None (a string of roles is split on spaces) "
            "or the separator between the roles of one string, such as ','."
        )
    return value


def scopes_claim(value: Any, name: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigurationError(f"{name} must be a claim name, or None for 'scope' then 'scp'.")
    return value


def cache_size(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{name} must be a whole number of tokens, 0 to turn the cache off (got {value!r}).")
    return value


def realm(value: Any, name: str) -> str | None:
    if value is not None and (
        not isinstance(value, str) or not _REALM.fullmatch(value) or '"' in value or "\\" in value
    ):
        raise ConfigurationError(
            f"{name} must be printable ASCII text without quotes or backslashes, or None for the app's import name."
        )
    return value


def warm_up(value: Any, name: str) -> bool | str:
    if not (isinstance(value, bool) or value == "require"):
        raise ConfigurationError(f"{name} must be False, True or 'require' (got {value!r}).")
    return value  # type: ignore[no-any-return]


def resource(value: Any, name: str) -> str | None:
    """RFC 8707 §2, RFC 9728 §1.2: an absolute https URI (http on loopback) already in
    canonical form: lower-case scheme and host, no fragment, query or user info."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]  # CCGUARD_RESOURCE from the environment is read as a list
    if value is None:
        return None
    fix = f"set {name} to the API's identifier, e.g. 'https://api.example.com' or 'https://api.example.com/v2'"
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be one URI string; {fix}.")
    # RFC 3986 §2: no space, quote, backslash, control or non-ASCII character, which
    # a challenge, a header or the metadata URL could not carry as written.
    if not URI_CHARS.fullmatch(value):
        raise ConfigurationError(
            f"{name} {value!r} has a character a URI cannot hold (a space, quote, backslash, control or "
            "non-ASCII character, RFC 3986 §2); percent-encode it (e.g. '%20' for a space, '%C3%A9' for an e with an acute accent)."
        )
    if _BAD_PERCENT.search(value):
        raise ConfigurationError(f"{name} {value!r} has a '%' not followed by two hex digits; write '%25' for '%'.")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  # raises ValueError for a malformed port
        # The metadata path is matched against the request's path, which the server decodes as UTF-8.
        unquote(parts.path, errors="strict")
    except ValueError:
        raise ConfigurationError(f"{name} {value!r} is not a valid URI; {fix}.") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(f"{name} {value!r} must be an absolute https URI; {fix}.")
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise ConfigurationError(f"{name} {value!r} must use https (http only for localhost or 127.0.0.1).")
    if "#" in value or "?" in value or "@" in parts.netloc:
        raise ConfigurationError(f"{name} {value!r} must have no fragment, query or user info (RFC 8707 §2); {fix}.")
    # "%2E" is "." (an unreserved character, RFC 3986 §2.3).
    if "//" in parts.path or any(unquote(seg) in (".", "..") for seg in parts.path.split("/")):
        # RFC 3986 §6.2.2.3: clients and proxies remove dot segments and servers merge
        # "//", so the metadata URL built from such a path (RFC 9728 §3.1) would not be served.
        raise ConfigurationError(
            f"{name} {value!r} must have no empty, '.' or '..' path segment (RFC 3986 §6.2.2.3); {fix}."
        )
    # urlsplit lower-cases the scheme itself: compare with the text as written.
    origin = f"{parts.scheme}://{parts.netloc}"
    if not value.startswith(origin.lower()):
        raise ConfigurationError(f"{name} {value!r} must be canonical: write {origin.lower()!r} in lower case.")
    return value


def scope_hierarchy(value: Any, name: str) -> ScopeHierarchy | None:
    if value is None:
        return None
    if isinstance(value, ScopeHierarchy):
        return value
    if callable(value):
        return ScopeHierarchy(value)
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, (list, tuple, set, frozenset)) and all(isinstance(s, str) for s in v)
        for k, v in value.items()
    ):
        return ScopeHierarchy(value)
    raise ConfigurationError(
        f"{name} must be a mapping of a broad scope to the narrower scopes it implies, e.g. "
        "{'assets': ['assets:read', 'assets:write']}, or a callable scope -> implied scopes."
    )


def uri_or_none(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or urlsplit(value).scheme not in ("https", "http") or not urlsplit(value).netloc:
        raise ConfigurationError(f"{name} must be an absolute http(s) URL, e.g. 'https://api.example.com/docs'.")
    return value


def text_or_none(value: Any, name: str) -> str | None:
    if value is None or (isinstance(value, str) and value.strip()):
        return value
    raise ConfigurationError(f"{name} must be a short human-readable name, e.g. 'Asset API'.")
