"""Which configured issuer vouches for a token by RFC 7662 introspection (the pipeline's ``issuer`` step for them), and the checks its answer passes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

from .claims import ClaimRules, VerifiedToken, check_claims
from .errors import IntrospectionUnavailable, InvalidToken
from .issuers import IssuerEntry
from .registry import IssuerRegistry

__all__ = ["check_introspected", "introspect_opaque", "introspect_with"]


def introspect_opaque(registry: IssuerRegistry, token: str, clock: Callable[[], float]) -> VerifiedToken:
    """Ask each issuer with introspection, in the configured order (RFC 7662 §2).

    An opaque token names no issuer. The first issuer whose endpoint calls it
    active *and* whose checks the answer passes decides. An active answer that
    fails them (another ``aud``, an ``iss`` naming another issuer, expired) does
    not end the search: that issuer does not vouch for this token here, and the
    next may. If none accepts: 503 if an endpoint could not answer (it might
    have), else the first such refusal, else "not active".
    """
    unavailable: IntrospectionUnavailable | None = None
    refused: InvalidToken | None = None
    for entry in registry.introspecting:
        try:
            return introspect_with(entry, token, clock)
        except IntrospectionUnavailable as exc:
            unavailable = unavailable or exc
        except InvalidToken as exc:
            if exc.reason != "inactive":
                refused = refused or exc
    if unavailable is not None:
        raise unavailable
    if refused is not None:
        raise refused
    raise InvalidToken("The access token is not active.", reason="inactive")


def introspect_with(entry: IssuerEntry, token: str, clock: Callable[[], float]) -> VerifiedToken:
    """``entry``'s introspection answer for ``token``, checked (RFC 7662 §2.2)."""
    assert entry.introspector is not None
    answer = entry.introspector.introspect(token)
    check_introspected(answer, entry.introspected_rules, clock())
    return VerifiedToken(answer, {}, entry.introspected_rules)


def check_introspected(answer: Mapping[str, Any], rules: ClaimRules, now: float) -> None:
    """Check an introspection answer like a JWT's claims (RFC 7662 §2.2).

    ``active`` must be true and ``exp`` present; ``iss``, ``aud``, ``nbf`` and
    ``iat`` are checked when present (RFC 7662 makes them optional, and an
    endpoint that authenticated this API usually omits ``aud``).

    :raises InvalidToken: (or :class:`ExpiredToken`) naming the claim.
    """
    if answer.get("active") is not True:
        raise InvalidToken("The access token is not active.", reason="inactive")
    token_type = answer.get("token_type")
    if isinstance(token_type, str) and "refresh" in token_type.lower():
        raise InvalidToken("The token is not an access token.", reason="token_type")
    probe = dict(answer)
    probe.setdefault("iss", rules.issuer)
    check_claims(probe, rules, now)
