"""Claim checks (RFC 7519 §4.1, RFC 9068 §4) and the :class:`VerifiedToken` they produce."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from .errors import ExpiredToken, InvalidToken

__all__ = [
    "CLAIM_CHECKS",
    "ID_TOKEN_CLAIMS",
    "ClaimRules",
    "VerifiedToken",
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


# The NumericDates a datetime can hold and a token can plausibly carry end at
# 9999-12-31; an 'exp' beyond would overflow expires_at (and float() of a
# 400-digit int raises). An 'nbf' or 'iat' beyond simply lies in the future.
_MAX_NUMERIC_DATE = 253402300799

#: Claims that only an OpenID Connect ID token carries (OpenID Connect Core
#: §2, §3.3.2.11; FAPI 1.0 Advanced §5.1 for ``s_hash``); a payload with one
#: is refused as an access token by default (see :func:`check_not_id_token`).
#: ``auth_time``, ``acr`` and ``amr`` are not among them: RFC 9068 §2.2.1
#: allows them in access tokens.
ID_TOKEN_CLAIMS: frozenset[str] = frozenset({"nonce", "at_hash", "c_hash", "s_hash"})


def _is_number(value: Any) -> bool:
    # bool is an int in Python but never a NumericDate (RFC 7519 §2). Ints are
    # compared as ints: math.isfinite() would overflow on a huge one.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def claim_path(name: str) -> tuple[str, ...]:
    """Split a dotted claim path such as ``realm_access.roles``.

    A claim whose own name contains dots (namespaced claims such as
    ``https://example.com/roles``) is looked up whole first, see :func:`lookup`.
    """
    return tuple(name.split("."))


def lookup(claims: Mapping[str, Any], name: str) -> Any:
    """The value at claim ``name``: the claim itself, else the dotted path."""
    if name in claims:
        return claims[name]
    node: Any = claims
    for part in claim_path(name):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def parse_strings(value: Any) -> frozenset[str]:
    """Scopes or roles from a space-separated string or a JSON array of strings.

    Anything else (numbers, objects, arrays with non-strings) yields only the
    string members, so a malformed claim grants nothing it does not spell out.
    """
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, (list, tuple)):
        return frozenset(v for v in value if isinstance(v, str) and v)
    return frozenset()


class ClaimRules:
    """What the claims of one issuer's tokens must satisfy; built once at start-up."""

    __slots__ = (
        "audiences",
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
    ) -> None:
        self.issuer = issuer
        self.audiences = frozenset(audiences)
        self.leeway = leeway
        self.require_iat = require_iat
        self.max_token_age = max_token_age
        self.roles_claim = roles_claim
        self.scopes_claim = scopes_claim
        self.require_aud = require_aud
        self.id_token_claims = tuple(id_token_claims)
        self.roles_delimiter = roles_delimiter

    def for_issuer(self, issuer: str) -> ClaimRules:
        """A copy of these rules for one concrete issuer (a tenant of a template)."""
        return ClaimRules(
            issuer=issuer,
            audiences=self.audiences,
            leeway=self.leeway,
            require_iat=self.require_iat,
            max_token_age=self.max_token_age,
            roles_claim=self.roles_claim,
            scopes_claim=self.scopes_claim,
            require_aud=self.require_aud,
            id_token_claims=self.id_token_claims,
            roles_delimiter=self.roles_delimiter,
        )


def _time_claim(claims: Mapping[str, Any], name: str, required: bool) -> float | None:
    value = claims.get(name)
    if type(value) is int and 0 <= value <= _MAX_NUMERIC_DATE:
        # What every issuer sends: a plain integer in range (bool is not ``int`` exactly).
        return value
    if value is None:
        if required or name in claims:
            raise InvalidToken(f"The access token has no '{name}' claim.", reason="missing_claim", claim=name)
        return None
    if not _is_number(value) or value < 0 or (name == "exp" and value > _MAX_NUMERIC_DATE):
        raise InvalidToken(
            f"The '{name}' claim is not a valid date (seconds since 1970).", reason="claim_type", claim=name
        )
    return math.inf if value > _MAX_NUMERIC_DATE else float(value)


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


def check_aud(claims: Mapping[str, Any], rules: ClaimRules, now: float) -> None:
    """RFC 7519 §4.1.3: ``aud`` (a string or a list) must name a configured audience."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        ok = aud in rules.audiences
    elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        ok = not rules.audiences.isdisjoint(aud)
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


def roles_of(claims: Mapping[str, Any], roles_claim: str = "roles", delimiter: str | None = None) -> frozenset[str]:
    """Roles from the claim (or dotted path) ``roles_claim``.

    An array holds one role per member (RFC 9068 §2.2.3.1, RFC 7643 §2.4).
    Some servers put several roles in one string: ``delimiter`` (such as
    ``","``) splits it, each part stripped of surrounding spaces; None splits
    on whitespace, as for scopes.
    """
    value = lookup(claims, roles_claim)
    if delimiter is None or not isinstance(value, str):
        return parse_strings(value)
    if not delimiter.strip():
        return frozenset(value.split())
    return frozenset(part for part in (p.strip() for p in value.split(delimiter)) if part)


def scopes_of(claims: Mapping[str, Any], scopes_claim: str | None = None) -> frozenset[str]:
    """Scopes from ``scopes_claim``, else ``scope`` then ``scp`` (RFC 9068 §2.2.3, Entra)."""
    if scopes_claim is not None:
        return parse_strings(lookup(claims, scopes_claim))
    value = claims.get("scope")
    if value is None:
        value = claims.get("scp")
    return parse_strings(value)


_UNSET: Any = object()


def json_copy(value: Any) -> Any:
    """A deep copy of parsed JSON: new dicts and lists, the same (immutable) scalars.

    Iterative, so a deeply nested claim (the parser admits up to Python's
    recursion limit) cannot overflow the stack of a view that reads it; and
    several times faster than :func:`copy.deepcopy` on a typical payload.
    """
    if not isinstance(value, (dict, list)):
        return value
    top: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any]] = [(value, top)]
    while stack:
        source, target = stack.pop()
        if isinstance(source, dict):
            for name, item in source.items():
                if isinstance(item, (dict, list)):
                    item_copy: Any = {} if isinstance(item, dict) else []
                    stack.append((item, item_copy))
                    item = item_copy
                target[name] = item
        else:
            for item in source:
                if isinstance(item, (dict, list)):
                    item_copy = {} if isinstance(item, dict) else []
                    stack.append((item, item_copy))
                    item = item_copy
                target.append(item)
    return top


class VerifiedToken:
    """A token whose signature and claims have been checked. Read-only.

    One object serves every request that presents the same token (the token
    cache hands it out again), so it never hands out what it holds:
    :attr:`claims` and :attr:`header` are a fresh plain ``dict`` at each
    access, which a view may change, or return as JSON, without another
    request seeing it; ``token["claim"]`` and ``token.get("claim")`` copy an
    object or array claim the same way.
    """

    __slots__ = ("_claims", "_header", "_roles", "_rules", "_scopes")

    def __init__(self, claims: dict[str, Any], header: dict[str, Any], rules: ClaimRules) -> None:
        # The dicts come fresh from the parser and are owned by this object;
        # copies are handed out, never the dicts (nor anything inside them).
        self._claims = claims
        self._header = header
        self._rules = rules
        self._roles: frozenset[str] = _UNSET
        self._scopes: frozenset[str] = _UNSET

    @property
    def claims(self) -> dict[str, Any]:
        """All claims of the payload: a new JSON-serializable ``dict`` at each access.

        Changing it changes nothing of the token: not its roles or scopes, and
        not what another request (or another access) sees.
        """
        copy: dict[str, Any] = json_copy(self._claims)
        return copy

    @property
    def header(self) -> dict[str, Any]:
        """The JOSE header: a new JSON-serializable ``dict`` at each access."""
        copy: dict[str, Any] = json_copy(self._header)
        return copy

    @property
    def subject(self) -> str | None:
        sub = self._claims.get("sub")
        return sub if isinstance(sub, str) else None

    @property
    def issuer(self) -> str:
        return self._rules.issuer

    @property
    def audiences(self) -> tuple[str, ...]:
        aud = self._claims.get("aud")
        return (aud,) if isinstance(aud, str) else tuple(aud or ())

    @property
    def client_id(self) -> str | None:
        """The calling client: ``client_id`` (RFC 9068), ``azp``, ``appid`` (Entra v1), else ``sub``."""
        for name in ("client_id", "azp", "appid", "sub"):
            value = self._claims.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    @property
    def scopes(self) -> frozenset[str]:
        """Scopes from the configured claim, else ``scope`` then ``scp``."""
        if self._scopes is _UNSET:
            self._scopes = scopes_of(self._claims, self._rules.scopes_claim)
        return self._scopes

    @property
    def roles(self) -> frozenset[str]:
        """Roles from the configured claim path (``roles`` by default)."""
        if self._roles is _UNSET:
            rules = self._rules
            self._roles = roles_of(self._claims, rules.roles_claim, rules.roles_delimiter)
        return self._roles

    @property
    def expires_at(self) -> datetime:
        exp: float = self._claims["exp"]
        return datetime.fromtimestamp(exp, tz=timezone.utc)

    @property
    def issued_at(self) -> datetime | None:
        iat: Any = self._claims.get("iat")
        return datetime.fromtimestamp(iat, tz=timezone.utc) if _is_number(iat) else None

    def __getitem__(self, name: str) -> Any:
        """The claim ``name``; an object or array is a new copy, as in :attr:`claims`."""
        return json_copy(self._claims[name])

    def get(self, name: str, default: Any = None) -> Any:
        """The claim ``name``, else ``default``; an object or array is a new copy."""
        value = self._claims.get(name, _UNSET)
        return default if value is _UNSET else json_copy(value)

    def __contains__(self, name: object) -> bool:
        return name in self._claims

    def __repr__(self) -> str:
        return f"VerifiedToken(issuer={self.issuer!r}, subject={self.subject!r}, client_id={self.client_id!r})"
