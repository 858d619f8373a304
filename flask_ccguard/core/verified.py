"""The :class:`VerifiedToken` a validation produces, and reading roles, scopes and claims from it.

Roles and scopes are parsed on first use (RFC 9068 §2.2.3, RFC 7643 §2.4);
the claims are handed out as copies, never the parsed dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .numbers import is_number

if TYPE_CHECKING:
    from .claims import ClaimRules

__all__ = ["VerifiedToken", "claim_path", "json_copy", "lookup", "parse_strings", "roles_of", "scopes_of"]


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


def roles_of(claims: Mapping[str, Any], roles_claim: str = "roles", delimiter: str | None = None) -> frozenset[str]:
    """Roles from the claim (or dotted path) ``roles_claim``.

    An array holds one role per member (RFC 9068 §2.2.3.1, RFC 7643 §2.4).
    Some servers put several roles in one string: ``delimiter`` (such as
    ``","``) splits it, each part stripped of surrounding spaces; None splits
    on whitespace, as for scopes.
    """
    value = lookup(claims, roles_claim)
    if delimiter is None or not delimiter.strip() or not isinstance(value, str):
        return parse_strings(value)  # a whitespace delimiter splits as None does
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
    def audience_defaulted(self) -> bool:
        """Whether the issuer's audience is the resource identifier (``CCGUARD_AUDIENCE`` unset)."""
        return self._rules.canonical_audience

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
        return datetime.fromtimestamp(iat, tz=timezone.utc) if is_number(iat) else None

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
