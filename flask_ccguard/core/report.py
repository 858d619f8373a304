"""The validator's checks one at a time, each with a verdict and a reason (for check-token).

:func:`run_checks` applies the rules a :class:`TokenValidator` enforces
(RFC 7515 format and header, algorithm allowlist, key lookup at the
*configured* issuer, signature, RFC 7519 §4.1 claims) plus required roles and
scopes, and reports every one instead of stopping at the first failure. The
issuer's settings come from the validator's own selection
(:meth:`~.validator.TokenValidator.select_issuer`: fixed issuers, lists,
``{tenantid}`` templates); tokens the validator introspects (RFC 7662) are
reported from its verdict and the introspection answer. A final ``validate``
line runs the validator itself, so the report can never pass a token the
validator would refuse; a bug in a check becomes a FAIL line, never a traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple

from .claims import CLAIM_CHECKS, ClaimRules, VerifiedToken, roles_of, scopes_of
from .errors import CCGuardError
from .introspection import looks_like_jws
from .issuers import IssuerEntry
from .jws import ParsedToken, parse_compact
from .keys import VerifyingKey
from .signature import key_issuer_matches
from .validator import TokenValidator

__all__ = ["CHECK_NAMES", "Check", "Report", "run_checks"]

log = logging.getLogger("flask_ccguard")

#: The lines of a report, in order.
CHECK_NAMES = (
    "format",
    "algorithm",
    "key",
    "signature",
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "roles",
    "scopes",
    "validate",
)
_CLAIM_LINES = ("iss", "aud", "exp", "iat", "nbf")


class Check(NamedTuple):
    """One line of the report: ``status`` is ``PASS``, ``FAIL`` or ``SKIP``."""

    name: str
    status: str
    detail: str


class Report(NamedTuple):
    header: Mapping[str, Any] | None
    payload: Mapping[str, Any] | None
    checks: list[Check]

    @property
    def ok(self) -> bool:
        """True when nothing failed (skipped checks were not asked for)."""
        return all(c.status != "FAIL" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.ok,
            "header": dict(self.header) if self.header is not None else None,
            "payload": dict(self.payload) if self.payload is not None else None,
            "checks": [c._asdict() for c in self.checks],
        }


def _when(value: Any, now: float) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return repr(value)
    try:
        stamp = datetime.fromtimestamp(value, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return repr(value)
    delta = int(value - now)
    return f"{stamp} ({'in ' if delta > 0 else ''}{abs(delta)} s{'' if delta > 0 else ' ago'})"


def _claim_detail(name: str, payload: Mapping[str, Any], now: float) -> str:
    if name not in payload:
        return "absent (optional)"
    value = payload[name]
    return _when(value, now) if name in ("exp", "iat", "nbf") else repr(value)


def run_checks(
    validator: TokenValidator,
    token: str,
    *,
    roles: Iterable[str] = (),
    scopes: Iterable[str] = (),
    now: float | None = None,
) -> Report:
    """Check ``token`` as ``validator`` would, reporting each check.

    :param roles: if given, the token must carry at least one of them.
    :param scopes: if given, the token must carry all of them.
    """
    run = _Run(validator, token, tuple(roles), tuple(scopes), time.time() if now is None else now)
    try:
        run.check()
    except Exception as exc:  # a bug in a check must not end in a traceback
        log.debug("flask_ccguard: check-token failed unexpectedly", exc_info=True)
        run.add("internal", "FAIL", f"check-token could not finish ({type(exc).__name__}); see 'validate'")
    run.final()
    return Report(run.header, run.payload, run.checks)


class _Run:
    """One report being written."""

    def __init__(
        self, validator: TokenValidator, token: str, roles: tuple[str, ...], scopes: tuple[str, ...], now: float
    ) -> None:
        self.validator, self.token, self.roles, self.scopes, self.now = validator, token, roles, scopes, now
        self.checks: list[Check] = []
        self.header: Mapping[str, Any] | None = None
        self.payload: Mapping[str, Any] | None = None
        self.verdict: tuple[VerifiedToken | None, CCGuardError | None] | None = None

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    def skip_rest(self, reason: str) -> None:
        done = {c.name for c in self.checks}
        for name in CHECK_NAMES:
            if name not in done and name != "validate":
                self.add(name, "SKIP", reason)

    def validate(self) -> tuple[VerifiedToken | None, CCGuardError | None]:
        """The validator's own verdict, asked once (introspection answers cost a request)."""
        if self.verdict is None:
            try:
                self.verdict = (self.validator.validate(self.token), None)
            except CCGuardError as exc:
                self.verdict = (None, exc)
        return self.verdict

    def final(self) -> None:
        error = self.validate()[1]
        if error is not None:
            self.add("validate", "FAIL", f"TokenValidator refuses the token: {error.description}")
        else:
            self.add("validate", "PASS", "TokenValidator accepts the token")

    def check(self) -> None:
        validator, token = self.validator, self.token
        if validator.introspects and not looks_like_jws(token):
            self.add("format", "PASS", "opaque token (not a compact JWS): checked by RFC 7662 introspection")
            self.introspected()
            return
        try:
            parsed = parse_compact(token, validator.max_token_bytes)
        except CCGuardError as exc:
            self.add("format", "FAIL", exc.description)
            self.skip_rest("the token cannot be read")
            return
        self.header, self.payload = parsed.header, parsed.payload
        entry = validator.select_issuer(parsed.payload)
        if entry is not None and entry.introspector is not None and entry.introspector.all_tokens:
            self.add("format", "PASS", f"compact JWS; {entry.rules.issuer} introspects all its tokens (RFC 7662)")
            self.introspected()
            return
        iss = parsed.payload.get("iss")
        if entry is None:
            configured = validator.issuers
            if len(configured) != 1:
                self.add("format", "PASS", "compact JWS")
                self.add("iss", "FAIL", f"{iss!r} is none of the configured issuers {list(configured)}")
                self.skip_rest("the token's issuer is not configured")
                return
            # One issuer: check the rest against it, so the report shows all that is wrong.
            self.jws(parsed, validator.issuer_settings(configured[0]), selected=False)
            return
        self.jws(parsed, entry, selected=True)

    def jws(self, parsed: ParsedToken, entry: IssuerEntry, *, selected: bool) -> None:
        """The JWS checks with ``entry``'s settings; ``selected`` is False when the
        validator would not pick ``entry`` for this token (so ``iss`` fails)."""
        header, payload, issuer = parsed.header, parsed.payload, entry.rules.issuer
        try:
            self.validator.check_header(header, entry)
            self.add("format", "PASS", f"compact JWS, typ {header.get('typ')!r}")
        except CCGuardError as exc:
            self.add("format", "FAIL", exc.description)

        alg = header.get("alg")
        kid = header.get("kid")
        candidates: tuple[VerifyingKey, ...] = ()
        if not (isinstance(alg, str) and alg in entry.algorithms):
            self.add("algorithm", "FAIL", f"{alg!r} is not in the allowlist {sorted(entry.algorithms)}")
            self.add("key", "SKIP", "the algorithm is not allowed")
        elif kid is not None and not isinstance(kid, str):
            self.add("algorithm", "PASS", f"{alg} is allowed")
            self.add("key", "FAIL", f"the key id {kid!r} is not a string")
        else:
            self.add("algorithm", "PASS", f"{alg} is allowed")
            try:
                candidates = entry.keys.candidates(kid, alg)
                shown = f"kid {kid!r}" if kid is not None else f"{len(candidates)} key(s) for {alg}"
                self.add("key", "PASS", f"{shown} found at {issuer}")
            except CCGuardError as exc:
                self.add("key", "FAIL", f"{exc.description} (keys fetched from {issuer} only)")
        # Entra ID: a JWK naming an issuer signs only that issuer's tokens (as validate() checks).
        own = [k for k in candidates if k.issuer is None or key_issuer_matches(k, payload.get("iss"), payload)]
        if not candidates:
            self.add("signature", "SKIP", "no key to verify with")
        elif not own:
            self.add("signature", "FAIL", "the token's signing key belongs to another issuer")
        elif any(k.verify(str(alg), parsed.signing_input, parsed.signature) for k in own):
            self.add("signature", "PASS", f"verified with the issuer's {alg} key")
        else:
            self.add("signature", "FAIL", "the signature does not verify with the issuer's key")

        results = self.claim_results(payload, entry.rules)
        if not selected and results["iss"].status == "PASS":
            # e.g. iss is the template itself: it equals the rules' issuer, yet names no tenant.
            results["iss"] = Check("iss", "FAIL", f"{payload.get('iss')!r} matches no configured issuer")
        if results["aud"].status == "FAIL":
            expected = sorted(entry.rules.audiences)
            results["aud"] = results["aud"]._replace(detail=results["aud"].detail + f"; expected one of {expected}")
        if results["iss"].status == "FAIL":
            results["iss"] = results["iss"]._replace(detail=results["iss"].detail + f"; expected {_expected(entry)}")
        elif entry.template is not None:
            results["iss"] = results["iss"]._replace(
                detail=results["iss"].detail + f" (template {entry.template.template}, tid {payload.get('tid')!r})"
            )
        self.checks.extend(results[name] for name in _CLAIM_LINES)
        self.permissions(
            roles_of(payload, entry.rules.roles_claim, entry.rules.roles_delimiter),
            scopes_of(payload, entry.rules.scopes_claim),
        )

    def claim_results(self, claims: Mapping[str, Any], rules: ClaimRules) -> dict[str, Check]:
        results: dict[str, Check] = {}
        for name, check in CLAIM_CHECKS:
            try:
                check(claims, rules, self.now)
                results[name] = Check(name, "PASS", _claim_detail(name, claims, self.now))
            except CCGuardError as exc:
                results[name] = Check(name, "FAIL", f"{exc.description} ({_claim_detail(name, claims, self.now)})")
        return results

    def introspected(self) -> None:
        """RFC 7662: the issuer vouches for the token; report its answer as the validator judged it."""
        for name in ("algorithm", "key", "signature"):
            self.add(name, "SKIP", "introspected: the issuer vouches for the token, no signature to check")
        verified, error = self.validate()
        if verified is None:
            assert error is not None
            self.add("introspection", "FAIL", error.description)
            for name in _CLAIM_LINES:
                if error.claim == name:
                    self.add(name, "FAIL", error.description)
                else:
                    self.add(name, "SKIP", "no accepted introspection answer")
            self.skip_rest("no accepted introspection answer")
            return
        entry = self.validator.issuer_settings(verified.issuer)
        self.add("introspection", "PASS", f"active, answered by {verified.issuer}")
        claims = dict(verified.claims)
        claims.setdefault("iss", verified.issuer)  # RFC 7662 §2.2: iss is optional
        results = self.claim_results(claims, entry.introspected_rules)
        self.checks.extend(results[name] for name in _CLAIM_LINES)
        self.permissions(verified.roles, verified.scopes)

    def permissions(self, have_roles: frozenset[str], have_scopes: frozenset[str]) -> None:
        roles, scopes = self.roles, self.scopes
        if not roles:
            self.add("roles", "SKIP", f"none required (token has {sorted(have_roles)})")
        elif have_roles.intersection(roles):
            self.add("roles", "PASS", f"has {sorted(have_roles.intersection(roles))} (one of {list(roles)} needed)")
        else:
            self.add("roles", "FAIL", f"needs one of {list(roles)}; token has {sorted(have_roles)}")
        missing = [s for s in scopes if s not in have_scopes]
        if not scopes:
            self.add("scopes", "SKIP", f"none required (token has {sorted(have_scopes)})")
        elif missing:
            self.add("scopes", "FAIL", f"missing {missing}; token has {sorted(have_scopes)}")
        else:
            self.add("scopes", "PASS", f"has all of {list(scopes)}")


def _expected(entry: IssuerEntry) -> str:
    template = entry.template
    if template is None:
        return repr(entry.rules.issuer)
    tenants = f" among {sorted(template.tenants)}" if template.tenants else ""
    return (
        f"{template.template!r} with {{tenantid}} replaced by the token's 'tid' "
        f"(a GUID{tenants}, the first path segment of iss)"
    )
