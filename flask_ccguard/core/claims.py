"""Claim checks (RFC 7519 §4.1, RFC 9068 §4); the :class:`~.verified.VerifiedToken` they produce is in :mod:`.verified`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ExpiredToken, InvalidToken
from .numbers import MAX_SECONDS, is_number
from .request_url import DEFAULT_PORTS

# The token the checks produce and its claim readers, re-exported from here.
from .verified import VerifiedToken, claim_path, json_copy, parse_strings, roles_of, scopes_of

__all__ = [
    "CLAIM_CHECKS",
    "ID_TOKEN_CLAIMS",
    "ClaimRules",
    "VerifiedToken",
    "canonical_uri",
    "check_aud",
    "check_claims",
    "check_exp",
    "check_iat",
    "check_iss",
    "check_nbf",
    "check_not_id_token",
    "claim_path",
    "json_copy",
    "parse_strings",
    "roles_of",
    "scopes_of",
    "validity_window",
]


#: Claims that only an OpenID Connect ID token carries (OpenID Connect Core
#: §2, §3.3.2.11; FAPI 1.0 Advanced §5.1 for ``s_hash``); a payload with one
#: is refused as an access token by default (see :func:`check_not_id_token`).
#: ``auth_time``, ``acr`` and ``amr`` are not among them: RFC 9068 §2.2.1
#: allows them in access tokens.
ID_TOKEN_CLAIMS: frozenset[str] = frozenset({"nonce", "at_hash", "c_hash", "s_hash"})


class ClaimRules:
    """What the claims of one issuer's tokens must satisfy; built once at start-up."""

    __slots__ = (
        "audiences",
        "canonical_audience",
        "id_token_claims",
        "issuer",
        "leeway",
        "max_token_age",
        "require_aud",
        "require_iat",
        "roles_claim",
        "roles_delimiter",
        "scopes_claim",
    )

    def __init__(
        self,
        *,
        issuer: str,
        audiences: Iterable[str],
        leeway: float = 60,
        require_iat: bool = True,
        max_token_age: float | None = None,
        roles_claim: str = "roles",
        scopes_claim: str | None = None,
        require_aud: bool = True,
        id_token_claims: Iterable[str] = ID_TOKEN_CLAIMS,
        roles_delimiter: str | None = None,
        canonical_audience: bool = False,
    ) -> None:
        self.issuer = issuer
        #: ``aud`` values are compared in canonical form (:func:`~.option_checks.canonical_uri`):
        #: the audience defaulted from the resource identifier.
        self.canonical_audience = canonical_audience
        self.audiences = frozenset(audiences)
        self.leeway = leeway
        self.require_iat = require_iat
        self.max_token_age = max_token_age
        self.roles_claim = roles_claim
        self.scopes_claim = scopes_claim
        self.require_aud = require_aud
        self.id_token_claims = tuple(id_token_claims)
        self.roles_delimiter = roles_delimiter

    def replace(self, **changes: Any) -> ClaimRules:
        """A copy of these rules with ``changes`` (constructor keywords): for one tenant of a
        template (``issuer=``), or for introspection answers."""
        return ClaimRules(**{**{name: getattr(self, name) for name in ClaimRules.__slots__}, **changes})


def _time_claim(claims: Mapping[str, Any], name: str, required: bool) -> float | None:
    # The NumericDates a datetime can hold and a token can plausibly carry end at
    # MAX_SECONDS (9999-12-31); an 'exp' beyond would overflow expires_at (and float()
    # of a 400-digit int raises). An 'nbf' or 'iat' beyond simply lies in the future.
    value = claims.get(name)
    if type(value) is int and 0 <= value <= MAX_SECONDS:
        # What every issuer sends: a plain integer in range (bool is not ``int`` exactly).
        return value
    if value is None:
        if required or name in claims:
            raise InvalidToken(f"The access token has no '{name}' claim.", reason="missing_claim", claim=name)
        return None
    if not is_number(value) or value < 0 or (name == "exp" and value > MAX_SECONDS):
        raise InvalidToken(
            f"The '{name}' claim is not a valid date (seconds since 1970).", reason="claim_type", claim=name
        )
    return math.inf if value > MAX_SECONDS else float(value)


def check_exp(claims: Mapping[str, Any], rules: ClaimRules, now: float) -> None:
    """RFC 7519 §4.1.4: the current time MUST be before ``exp`` (required)."""
    exp = _time_claim(claims, "exp", True)
    assert exp is not None
    if now >= exp + rules.leeway:
        raise ExpiredToken(claim="exp")


def check_nbf(claims: Mapping[str, Any], rules: ClaimRules, now: float) -> None:
    """RFC 7519 §4.1.5: the current time MUST be after or equal to ``nbf``, if present."""
    nbf = _time_claim(claims, "nbf", False)
    if nbf is not None and now + rules.leeway < nbf:
        raise InvalidToken("The access token is not valid yet.", reason="not_yet_valid", claim="nbf")


def check_iat(claims: Mapping[str, Any], rules: ClaimRules, now: float) -> None:
    """RFC 7519 §4.1.6: ``iat`` (required by default) may not lie in the future, nor too far back."""
    iat = _time_claim(claims, "iat", rules.require_iat)
    if iat is None:
        return
    if iat > now + rules.leeway:
        raise InvalidToken("The access token was issued in the future.", reason="issued_in_future", claim="iat")
    if rules.max_token_age is not None and now - iat > rules.max_token_age + rules.leeway:
        raise InvalidToken("The access token is too old.", reason="too_old", claim="iat")


def check_iss(claims: Mapping[str, Any], rules: ClaimRules, now: float) -> None:
    """RFC 7519 §4.1.1, RFC 9068 §4: ``iss`` must be the configured issuer exactly."""
    if claims.get("iss") != rules.issuer:
        raise InvalidToken("The access token is from an unexpected issuer.", reason="issuer", claim="iss")


#: ``aud`` entries put in canonical form at most (a token may list many).
_MAX_AUDIENCES = 32


def canonical_uri(value: str) -> str:
    """``value`` in the form resource identifiers are compared in (RFC 3986 §6.2.2-6.2.3).

    Scheme and host lower-case, the scheme's default port and a trailing
    ``/`` of the path dropped; anything unparsable is returned as it is
    (it then equals only itself). Used for the audience defaulted from
    ``resource`` (RFC 8707 §2).

    A URI is ASCII (RFC 3986 §2): a value with any other character is
    returned as it is, so Unicode case folding (``"\u212a"``, the Kelvin
    sign, lower-cases to ``"k"``) or Unicode digits in a port cannot make a
    look-alike host equal the resource.
    """
    if not value.isascii():
        return value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return value
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return value
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if port is None or port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
    if parts.username is not None or parts.password is not None:
        return value
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, netloc, path, parts.query, parts.fragment))


def check_aud(claims: Mapping[str, Any], rules: ClaimRules, now: float) -> None:
    """RFC 7519 §4.1.3: ``aud`` (a string or a list) must name a configured audience."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        ok = aud in rules.audiences or (rules.canonical_audience and canonical_uri(aud) in rules.audiences)
    elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        ok = not rules.audiences.isdisjoint(aud) or (
            rules.canonical_audience and not rules.audiences.isdisjoint(canonical_uri(a) for a in aud[:_MAX_AUDIENCES])
        )
    elif aud is None:
        if not rules.require_aud:
            return
        raise InvalidToken("The access token has no 'aud' claim.", reason="missing_claim", claim="aud")
    else:
        raise InvalidToken("The 'aud' claim is malformed.", reason="claim_type", claim="aud")
    if not ok:
        raise InvalidToken("The access token is meant for another audience.", reason="audience", claim="aud")


def check_not_id_token(claims: Mapping[str, Any], rules: ClaimRules, now: float) -> None:
    """RFC 8725 §3.11-3.12, RFC 9068 §4: an ID token is not an access token.

    An ID token is signed by the same issuer with the same keys, and
    ``typ: JWT`` (which the default token types accept) does not tell the two
    apart; an API whose audience is also an OpenID client id would take one.
    A payload carrying a claim of ``rules.id_token_claims`` (by default
    :data:`ID_TOKEN_CLAIMS`) is refused.
    """
    for name in rules.id_token_claims:
        if name in claims:
            raise InvalidToken(
                f"The token is an OpenID Connect ID token (it has a '{name}' claim), not an access token.",
                reason="id_token",
                claim=name,
            )


def validity_window(claims: Mapping[str, Any], rules: ClaimRules) -> tuple[float, float]:
    """The times ``(since, until)`` between which :func:`check_claims` passes on time grounds.

    For claims that passed :func:`check_claims`: ``since <= now < until``
    implies that ``exp``, ``nbf``, ``iat`` and ``max_token_age`` still hold
    (the bounds are never looser than the checks; at the edge a caller
    re-runs the full checks).
    """
    leeway = rules.leeway
    until = claims["exp"] + leeway
    since = float("-inf")
    nbf = claims.get("nbf")
    if nbf is not None:
        since = nbf - leeway
    iat = claims.get("iat")
    if iat is not None:
        since = max(since, iat - leeway)
        if rules.max_token_age is not None:
            until = min(until, iat + rules.max_token_age + leeway)
    # No float(): a huge integer claim must not raise here.
    return since, until


#: The claim checks in the order :func:`check_claims` runs them, by claim name;
#: check-token runs them one by one to report each.
CLAIM_CHECKS: tuple[tuple[str, Callable[[Mapping[str, Any], ClaimRules, float], None]], ...] = (
    ("exp", check_exp),
    ("nbf", check_nbf),
    ("iat", check_iat),
    ("iss", check_iss),
    ("aud", check_aud),
    ("id_token", check_not_id_token),
)


_CHECKS = tuple(check for _, check in CLAIM_CHECKS)


def check_claims(claims: Mapping[str, Any], rules: ClaimRules, now: float) -> None:
    """Check ``exp``, ``nbf``, ``iat``, ``iss`` and ``aud``, and that the token is no ID token.

    :param now: the current time in seconds since the epoch.
    :raises InvalidToken: (or :class:`ExpiredToken`) naming the claim.
    """
    for check in _CHECKS:
        check(claims, rules, now)
