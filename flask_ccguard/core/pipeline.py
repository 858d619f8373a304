"""The validation pipeline: the named, ordered steps every token goes through.

``parse`` (RFC 7515 §7.1) → ``issuer`` (select among configured issuers by the
unverified ``iss``; RFC 7662 introspection for opaque tokens) → ``header``
(algorithm allowlist, RFC 7515 §4.1.11 ``crit``, ``typ``, RFC 9068 §4) → ``key``
(by ``kid`` at the selected issuer only) → ``signature`` → ``claims``
(RFC 7519 §4.1) → ``binding`` (sender constraints: DPoP, RFC 9449; mTLS,
RFC 8705) → ``authorization`` (required roles/scopes, RFC 6750 §3.1).

:meth:`.validator.TokenValidator.validate` and check-token (:mod:`.report`) both
walk :data:`STEPS`, so the report is the validator's verdict step by step. Each
step (in :mod:`.steps`) is a function of the :class:`Pipeline` and one :class:`Run`; it raises a
:class:`~.errors.CCGuardError` to refuse, returns None when it passed, or returns
a reason (a constant string) when it does not apply (an introspected token has no
signature); check-token prints that as SKIP. Nothing is raised or formatted on
the way through, and validate()'s walk is worked out once per configuration
(:meth:`Pipeline._steps`): the four steps of a signed token run as one call
(:func:`.steps.signed`), and ``binding`` only once a binding is added.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable, Protocol

from .claims import VerifiedToken
from .issuers import IssuerEntry
from .jws import ParsedToken
from .keys import VerifyingKey
from .opaque import introspect_opaque, introspect_with
from .registry import IssuerRegistry
from .request import HTTPRequest
from .steps import (
    authorize,
    check_binding,
    check_header,
    check_token_claims,
    find_key,
    parse,
    select_issuer,
    signed,
    verify_signature,
)

__all__ = [
    "SIGNED_STEPS",
    "STEPS",
    "Binding",
    "Pipeline",
    "Requirement",
    "Run",
    "Step",
    "introspect_opaque",
    "introspect_with",
]


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
        # The walk without requirements (validate()'s), worked out once: "authorization"
        # has nothing to check, "binding" nothing to run until a binding is added, and
        # the steps of a signed token run as one call (signed()).
        walk: list[Step] = []
        for name, step in STEPS:
            if name == "authorization" or (name == "binding" and not self.bindings):
                continue
            step = signed if name in SIGNED_STEPS else step
            if step not in walk:
                walk.append(step)
        return tuple(walk)

    def run(self, run: Run) -> VerifiedToken:
        """Walk every step; the verified token, or the first step's refusal."""
        for step in self._active if run.required is None else self._all:
            step(self, run)
        assert run.verified is not None
        return run.verified


#: A step: returns None when it passed, or why it does not apply; raises CCGuardError to refuse.
Step = Callable[[Pipeline, Run], "str | None"]


#: The steps that :func:`signed` runs as one, in validate()'s walk.
SIGNED_STEPS = frozenset({"header", "key", "signature", "claims"})

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
