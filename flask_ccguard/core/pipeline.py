"""The validation pipeline: the named, ordered steps every token goes through.

``parse`` (RFC 7515 §7.1) → ``issuer`` (select among configured issuers by the
unverified ``iss``; RFC 7662 introspection for opaque tokens) → ``header``
(algorithm allowlist, RFC 7515 §4.1.11 ``crit``, ``typ``, RFC 9068 §4) → ``key``
(by ``kid`` at the selected issuer only) → ``signature`` → ``claims``
(RFC 7519 §4.1) → ``binding`` (sender constraints: DPoP, RFC 9449; mTLS,
RFC 8705) → ``authorization`` (required roles/scopes, RFC 6750 §3.1).

:meth:`.validator.TokenValidator.validate` and check-token (:mod:`.report`) both
walk :data:`STEPS`, so the report is the validator's verdict step by step. Each
step is a function of the :class:`Pipeline` and one :class:`Run`; it raises a
:class:`~.errors.CCGuardError` to refuse, returns None when it passed, or returns
a reason (a constant string) when it does not apply (an introspected token has no
signature); check-token prints that as SKIP. Nothing is raised or formatted on
the way through, so walking them costs a few calls beside the signature check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Callable, Protocol

from .authorization import lacking
from .claims import VerifiedToken, check_claims
from .errors import InsufficientScope, InvalidToken
from .header import check_algorithm, check_header_rules
from .introspection import looks_like_jws
from .issuers import IssuerEntry
from .jws import ParsedToken, parse_compact
from .keys import VerifyingKey
from .opaque import introspect_opaque, introspect_with
from .registry import IssuerRegistry
from .request import HTTPRequest
from .signature import first_verifying

__all__ = [
    "STEPS",
    "Binding",
    "Pipeline",
    "Requirement",
    "Run",
    "Step",
    "introspect_opaque",
    "introspect_with",
]

# RFC 6750 §2.1 b64token: what an opaque bearer token may consist of.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class Binding(Protocol):
    """A sender-constraint check run in the ``binding`` step (DPoP, mTLS).

    Called with the request description (None when the caller gave none) and the
    token whose signature and claims have passed; raises a
    :class:`~.errors.CCGuardError` to refuse. Runs on every use of a token, cache
    hits included, since a proof or certificate belongs to one request.
    """

    def __call__(self, request: HTTPRequest | None, token: VerifiedToken) -> None: ...


class Requirement(Protocol):
    """What the ``authorization`` step checks: ``roles``/``scopes`` and ``match``."""

    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    match: str


class Run:
    """One token going through the pipeline: what each step found."""

    __slots__ = (
        "candidates",
        "entry",
        "generation",
        "key",
        "now",
        "opaque",
        "parsed",
        "request",
        "required",
        "token",
        "verified",
    )

    def __init__(
        self, token: str | bytes, now: float, request: HTTPRequest | None = None, required: Requirement | None = None
    ) -> None:
        self.token: Any = token
        self.now = now
        self.request = request
        self.required = required
        self.opaque = False
        # Set by the "parse" and "issuer" steps before any later step reads them (a
        # token that fails either never reaches those); left unset, not None, so the
        # steps need no checks on the way.
        self.parsed: ParsedToken
        self.entry: IssuerEntry
        self.candidates: tuple[VerifyingKey, ...] = ()
        self.key: VerifyingKey | None = None
        self.generation = 0
        self.verified: VerifiedToken | None = None


class Pipeline:
    """The steps' configuration: the issuer registry, the size limit, the bindings."""

    __slots__ = ("_active", "_all", "bindings", "clock", "max_token_bytes", "registry")

    def __init__(
        self,
        registry: IssuerRegistry,
        max_token_bytes: int,
        clock: Callable[[], float],
        bindings: Iterable[Binding] = (),
    ) -> None:
        self.registry = registry
        self.max_token_bytes = max_token_bytes
        self.clock = clock
        #: Sender-constraint checks of the ``binding`` step, in order.
        self.bindings: tuple[Binding, ...] = tuple(bindings)
        self._all = tuple(step for _, step in STEPS)
        self._active = self._steps()

    def add_binding(self, binding: Binding) -> None:
        """Run ``binding`` in the ``binding`` step of every validation, cache hits included."""
        self.bindings = (*self.bindings, binding)
        self._active = self._steps()

    def _steps(self) -> tuple[Step, ...]:
        # The walk without requirements (validate()'s): "authorization" has nothing to
        # check, and "binding" nothing to run until a binding is added.
        return tuple(step for name, step in STEPS if name != "authorization" and (name != "binding" or self.bindings))

    def run(self, run: Run) -> VerifiedToken:
        """Walk every step; the verified token, or the first step's refusal."""
        for step in self._active if run.required is None else self._all:
            step(self, run)
        assert run.verified is not None
        return run.verified


#: A step: returns None when it passed, or why it does not apply; raises CCGuardError to refuse.
Step = Callable[[Pipeline, Run], "str | None"]


# -- the steps ------------------------------------------------------------------------


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
        if not _B64TOKEN.fullmatch(token):
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


def check_header(p: Pipeline, run: Run) -> str | None:
    """The algorithm allowlist, then the header rules (see :func:`check_header_rules`)."""
    if run.verified is not None:
        return "introspected"
    check_algorithm(run.parsed.header, run.entry)
    check_header_rules(run.parsed.header, run.entry)
    return None


def find_key(p: Pipeline, run: Run) -> str | None:
    """The issuer's keys for the header's ``kid`` and ``alg`` (RFC 7517 §4.5)."""
    if run.verified is not None:
        return "introspected"
    kid = run.parsed.header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidToken("The token's key id is malformed.", reason="malformed")
    keys = run.entry.keys
    # Read before the lookup: material withdrawn while this runs may have verified the token.
    run.generation = keys.generation
    run.candidates = keys.candidates(kid, run.parsed.header["alg"])  # raises KeysUnavailable/InvalidToken if none
    return None


def verify_signature(p: Pipeline, run: Run) -> str | None:
    """RFC 7515 §5.2 with the selected issuer's keys; an unknown ``kid`` may refetch (cooldown-bounded)."""
    if run.verified is not None:
        return "introspected"
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
    return None


def check_token_claims(p: Pipeline, run: Run) -> str | None:
    """RFC 7519 §4.1 / RFC 9068 §4 claims (introspection answers were checked when answered)."""
    if run.verified is not None:
        return "introspected"
    parsed, entry = run.parsed, run.entry
    check_claims(parsed.payload, entry.rules, run.now)
    run.verified = VerifiedToken(parsed.payload, parsed.header, entry.rules)
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


#: The steps, named and in order: the one place their order is written.
STEPS: tuple[tuple[str, Step], ...] = (
    ("parse", parse),
    ("issuer", select_issuer),
    ("header", check_header),
    ("key", find_key),
    ("signature", verify_signature),
    ("claims", check_token_claims),
    ("binding", check_binding),
    ("authorization", authorize),
)
