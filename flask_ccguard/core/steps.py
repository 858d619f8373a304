"""The steps of :mod:`.pipeline`, each a function of the :class:`~.pipeline.Pipeline` and one :class:`~.pipeline.Run`.

A step raises a :class:`~.errors.CCGuardError` to refuse, returns None when it
passed, or returns why it does not apply (an introspected token has no
signature), which check-token prints as SKIP. The bodies of ``header``, ``key``,
``signature`` and ``claims`` are shared with :func:`signed`, which runs the four
in one call on validate()'s walk. Their order is written once, in
:data:`.pipeline.STEPS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .authorization import lacking
from .bearer import is_b64token
from .claims import VerifiedToken, check_claims
from .errors import InsufficientScope, InvalidToken
from .header import check_algorithm, check_header_rules
from .introspection import looks_like_jws
from .jws import parse_compact
from .opaque import introspect_opaque, introspect_with
from .signature import first_verifying

if TYPE_CHECKING:
    from .pipeline import Pipeline, Run

__all__ = [
    "authorize",
    "check_binding",
    "check_header",
    "check_token_claims",
    "find_key",
    "parse",
    "select_issuer",
    "signed",
    "verify_signature",
]


def parse(p: Pipeline, run: Run) -> str | None:
    """RFC 7515 §7.1 compact serialization (or an opaque token for introspection)."""
    token = run.token
    if isinstance(token, bytes):
        try:
            run.token = token = token.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidToken("The access token is malformed: it is not ASCII.", reason="malformed") from None
    if p.registry.introspecting and not looks_like_jws(token):
        if len(token) > p.max_token_bytes:
            raise InvalidToken("The access token is too large.", reason="too_large")
        if not is_b64token(token):  # RFC 6750 §2.1: what an opaque bearer token may be
            raise InvalidToken("The access token is malformed.", reason="malformed")
        run.opaque = True
        return None
    run.parsed = parse_compact(token, p.max_token_bytes)
    return None


def select_issuer(p: Pipeline, run: Run) -> str | None:
    """Only a configured issuer, chosen by the token's unverified ``iss``; introspected
    tokens are answered here (RFC 7662 §2), and the signature steps skip them."""
    if run.opaque:
        run.verified = introspect_opaque(p.registry, run.token, p.clock)
        return None
    claims = run.parsed.payload
    entry = p.registry.select(claims)
    if entry is None:
        p.registry.log_near_miss(claims.get("iss"))
        raise InvalidToken("The access token is from an unexpected issuer.", reason="issuer", claim="iss")
    run.entry = entry
    if entry.introspector is not None and entry.introspector.all_tokens:
        run.verified = introspect_with(entry, run.token, p.clock)
    return None


def _jws_only(run: Run, body: Callable[[Run], None]) -> str | None:
    # check-token's view of a step that an introspected token has no use for.
    if run.verified is not None:
        return "introspected"
    body(run)
    return None


def check_header(p: Pipeline, run: Run) -> str | None:
    """The algorithm allowlist, then the header rules (see :func:`check_header_rules`)."""
    return _jws_only(run, _header)


def _header(run: Run) -> None:
    header, entry = run.parsed.header, run.entry
    check_algorithm(header, entry)
    check_header_rules(header, entry)


def find_key(p: Pipeline, run: Run) -> str | None:
    """The issuer's keys for the header's ``kid`` and ``alg`` (RFC 7517 §4.5)."""
    return _jws_only(run, _key)


def _key(run: Run) -> None:
    kid = run.parsed.header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidToken("The token's key id is malformed.", reason="malformed")
    keys = run.entry.keys
    # Read before the lookup: material withdrawn while this runs may have verified the token.
    run.generation = keys.generation
    run.candidates = keys.candidates(kid, run.parsed.header["alg"])  # raises KeysUnavailable/InvalidToken if none


def verify_signature(p: Pipeline, run: Run) -> str | None:
    """RFC 7515 §5.2 with the selected issuer's keys; an unknown ``kid`` may refetch (cooldown-bounded)."""
    return _jws_only(run, _signature)


def _signature(run: Run) -> None:
    parsed, entry = run.parsed, run.entry
    header, claims = parsed.header, parsed.payload
    alg, kid, iss = header["alg"], header.get("kid"), claims.get("iss")
    keys = entry.keys
    found = run.candidates
    key, wrong_issuer = first_verifying(found, alg, iss, claims, parsed.signing_input, parsed.signature)
    if key is None and kid is not None and not wrong_issuer:
        # The issuer may have put new material under this kid (cooldown-bounded refetch).
        replacement = keys.replacement(kid, alg, found[0])
        if replacement is not None:
            key, wrong_issuer = first_verifying(
                (replacement,), alg, iss, claims, parsed.signing_input, parsed.signature
            )
    if key is None:
        if wrong_issuer:
            raise InvalidToken("The token's signing key belongs to another issuer.", reason="key_issuer")
        raise InvalidToken("The token's signature is invalid.", reason="bad_signature")
    run.key = key


def check_token_claims(p: Pipeline, run: Run) -> str | None:
    """RFC 7519 §4.1 / RFC 9068 §4 claims (introspection answers were checked when answered)."""
    return _jws_only(run, _claims)


def _claims(run: Run) -> None:
    parsed, entry = run.parsed, run.entry
    check_claims(parsed.payload, entry.rules, run.now)
    run.verified = VerifiedToken(parsed.payload, parsed.header, entry.rules)


def signed(p: Pipeline, run: Run) -> str | None:
    """``header``, ``key``, ``signature`` and ``claims`` in one call: validate()'s walk.

    The same work as the four steps (their bodies are shared), minus three trips
    through the walk and three "introspected?" tests on the common path.
    """
    if run.verified is not None:
        return "introspected"
    _header(run)
    _key(run)
    _signature(run)
    _claims(run)
    return None


def check_binding(p: Pipeline, run: Run) -> str | None:
    """Sender constraints (RFC 9449 DPoP, RFC 8705 mTLS): each configured :class:`Binding`."""
    if not p.bindings:
        return "no sender constraint configured"
    assert run.verified is not None
    for binding in p.bindings:
        binding(run.request, run.verified)
    return None


def authorize(p: Pipeline, run: Run) -> str | None:
    """Required roles and scopes (RFC 6750 §3.1 ``insufficient_scope``), when the caller states them."""
    required = run.required
    if required is None or not (required.roles or required.scopes):
        return "nothing required"
    token = run.verified
    assert token is not None
    problem = (lacking(token.roles, required.roles, required.match, "role(s)") if required.roles else None) or (
        lacking(token.scopes, required.scopes, required.match, "scope(s)") if required.scopes else None
    )
    if problem:
        raise InsufficientScope(problem)
    return None
