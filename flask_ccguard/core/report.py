"""The check-token report: the validator's pipeline walked step by step, each step a PASS, FAIL or SKIP line.

:func:`run_checks` runs the steps of :mod:`.pipeline` (the functions
:meth:`~.validator.TokenValidator.validate` runs, on the same issuer registry)
and, unlike ``validate()``, goes on after a failure where a later step can
still run, so the report shows everything that is wrong. Issuer forms are the
registry's (fixed issuers, lists, ``{tenantid}`` templates); tokens the
validator introspects (RFC 7662) are reported from its verdict and the
introspection answer. A final ``validate`` line runs the validator itself, so
the report can never pass a token the validator would refuse; a bug in a
check becomes a FAIL line, never a traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from .authorization import lacking
from .claims import CLAIM_CHECKS, ClaimRules, VerifiedToken
from .errors import CCGuardError
from .header import check_algorithm, check_header_rules
from .issuers import IssuerEntry
from .jws import ParsedToken
from .pipeline import Run
from .report_binding import binding_lines
from .report_lines import _CLAIM_LINES, CHECK_NAMES, Check, Report, claim_detail
from .request import HTTPRequest
from .steps import find_key, parse, select_issuer, verify_signature
from .validator import TokenValidator

__all__ = ["CHECK_NAMES", "Check", "Report", "run_checks"]

log = logging.getLogger("flask_ccguard")


def run_checks(
    validator: TokenValidator,
    token: str,
    *,
    roles: Iterable[str] = (),
    scopes: Iterable[str] = (),
    roles_match: str = "any",
    scopes_match: str = "all",
    request: HTTPRequest | None = None,
    now: float | None = None,
) -> Report:
    """Check ``token`` as ``validator`` would, reporting each step.

    :param roles: roles the token must carry, ``roles_match`` (``"any"``, the
        default, or ``"all"``) of them, as ``@require_roles(..., match=...)``.
    :param scopes: scopes the token must carry, ``scopes_match`` (``"all"``,
        the default, or ``"any"``) of them.
    :param request: the request description for the ``binding`` step.
    """
    required = _Required(tuple(roles), tuple(scopes), roles_match, scopes_match)
    run = _Report(validator, token, required, request, time.time() if now is None else now)
    try:
        run.check()
    except Exception as exc:  # a bug in a check must not end in a traceback
        log.debug("flask_ccguard: check-token failed unexpectedly", exc_info=True)
        run.add("internal", "FAIL", f"check-token could not finish ({type(exc).__name__}); see 'validate'")
    run.final()
    return Report(run.header, run.payload, run.checks)


class _Required(NamedTuple):
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    roles_match: str
    scopes_match: str


class _Report:
    """One report being written."""

    def __init__(
        self,
        validator: TokenValidator,
        token: str,
        required: _Required,
        request: HTTPRequest | None,
        now: float,
    ) -> None:
        self.validator, self.token, self.required, self.now = validator, token, required, now
        self.pipeline = validator.pipeline
        self.run = Run(token, now, request)
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
                self.verdict = (self.validator.validate(self.token, self.run.request), None)
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
        pipe, run = self.pipeline, self.run
        try:  # step "parse"
            parse(pipe, run)
        except CCGuardError as exc:
            self.add("format", "FAIL", exc.description)
            self.skip_rest("the token cannot be read")
            return
        if run.opaque:
            self.add("format", "PASS", "opaque token (not a compact JWS): checked by RFC 7662 introspection")
            self.introspected()
            return
        parsed = run.parsed
        assert parsed is not None
        self.header, self.payload = parsed.header, parsed.payload
        entry = pipe.registry.select(parsed.payload)
        if entry is not None and entry.introspector is not None and entry.introspector.all_tokens:
            # Step "issuer" would introspect here; the verdict below asks the endpoint once.
            self.add("format", "PASS", f"compact JWS; {entry.rules.issuer} introspects all its tokens (RFC 7662)")
            self.introspected()
            return
        selected = True
        try:  # step "issuer"
            select_issuer(pipe, run)
        except CCGuardError:
            configured = self.validator.issuers
            if len(configured) != 1:
                self.add("format", "PASS", "compact JWS")
                self.add(
                    "iss", "FAIL", f"{parsed.payload.get('iss')!r} is none of the configured issuers {list(configured)}"
                )
                self.skip_rest("the token's issuer is not configured")
                return
            # One issuer: check the rest against it, so the report shows all that is wrong.
            run.entry, selected = pipe.registry.entry(configured[0]), False
        self.jws(parsed, selected=selected)

    def jws(self, parsed: ParsedToken, *, selected: bool) -> None:
        """The remaining steps with the selected issuer's settings; ``selected`` is False
        when the validator would pick no issuer for this token (so ``iss`` fails)."""
        pipe, run = self.pipeline, self.run
        entry = run.entry
        assert entry is not None
        header, payload, issuer = parsed.header, parsed.payload, entry.rules.issuer
        # Step "header": its two rules, each on its own line.
        try:
            check_header_rules(header, entry)
            self.add("format", "PASS", f"compact JWS, typ {header.get('typ')!r}")
        except CCGuardError as exc:
            self.add("format", "FAIL", exc.description)
        alg, kid = header.get("alg"), header.get("kid")
        try:
            check_algorithm(header, entry)
            self.add("algorithm", "PASS", f"{alg} is allowed")
            allowed = True
        except CCGuardError:
            self.add("algorithm", "FAIL", f"{alg!r} is not in the allowlist {sorted(entry.algorithms)}")
            allowed = False
        if not allowed:
            self.add("key", "SKIP", "the algorithm is not allowed")
        else:
            try:  # step "key"
                find_key(pipe, run)
                shown = f"kid {kid!r}" if kid is not None else f"{len(run.candidates)} key(s) for {alg}"
                self.add("key", "PASS", f"{shown} found at {issuer}")
            except CCGuardError as exc:
                detail = f"the key id {kid!r} is not a string" if exc.reason == "malformed" else exc.description
                self.add("key", "FAIL", f"{detail} (keys fetched from {issuer} only)")
        if not run.candidates:
            self.add("signature", "SKIP", "no key to verify with")
        else:
            try:  # step "signature"
                verify_signature(pipe, run)
                self.add("signature", "PASS", f"verified with the issuer's {alg} key")
            except CCGuardError as exc:
                self.add("signature", "FAIL", _SIGNATURE_FAILURES.get(exc.reason, exc.description))
        # Step "claims", one line per claim rule.
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
        if results["id_token"].status == "FAIL":
            self.checks.append(results["id_token"])
        passed = all(c.status != "FAIL" for c in self.checks)
        verified = VerifiedToken(payload, header, entry.rules)
        self.binding(verified if passed else None)
        self.permissions(verified.roles, verified.scopes)

    def claim_results(self, claims: Mapping[str, Any], rules: ClaimRules) -> dict[str, Check]:
        results: dict[str, Check] = {}
        for name, check in CLAIM_CHECKS:  # what step "claims" runs (check_claims), rule by rule
            try:
                check(claims, rules, self.now)
                results[name] = Check(name, "PASS", claim_detail(name, claims, self.now))
            except CCGuardError as exc:
                results[name] = Check(name, "FAIL", f"{exc.description} ({claim_detail(name, claims, self.now)})")
        return results

    def binding(self, verified: VerifiedToken | None) -> None:
        """Step "binding": shown only when a sender constraint is configured; one line
        per constraint the token or request carries (``certificate``: RFC 8705 §3,
        ``dpop``: RFC 9449 §4.3), then the step's verdict."""
        if not self.pipeline.bindings:
            return
        if verified is None:
            self.add("binding", "SKIP", "the token failed an earlier check")
            return
        # The validator's own verdict runs the step (once: a proof's jti is burned by
        # it, RFC 9449 §11.1); every earlier line passed, so a refusal is the step's.
        self.checks.extend(binding_lines(verified, self.run.request, self.validate()[1]))

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
        self.binding(verified)
        self.permissions(verified.roles, verified.scopes)

    def permissions(self, have_roles: frozenset[str], have_scopes: frozenset[str]) -> None:
        """Step "authorization": the decorators' rule (:func:`.authorization.lacking`), one line each."""
        req = self.required
        self.permission("roles", "role(s)", have_roles, req.roles, req.roles_match)
        self.permission("scopes", "scope(s)", have_scopes, req.scopes, req.scopes_match)

    def permission(self, line: str, what: str, have: frozenset[str], need: tuple[str, ...], match: str) -> None:
        if not need:
            self.add(line, "SKIP", f"none required (token has {sorted(have)})")
            return
        if lacking(have, need, match, what) is None:
            held = sorted(have.intersection(need))
            shown = f"has {held} (one of {list(need)} needed)" if match == "any" else f"has all of {list(need)}"
            self.add(line, "PASS", shown)
        elif match == "any":
            self.add(line, "FAIL", f"needs one of {list(need)}; token has {sorted(have)}")
        else:
            missing = [n for n in need if n not in have]
            self.add(line, "FAIL", f"missing {missing}; token has {sorted(have)}")


_SIGNATURE_FAILURES = {
    "bad_signature": "the signature does not verify with the issuer's key",
    "key_issuer": "the token's signing key belongs to another issuer",
}


def _expected(entry: IssuerEntry) -> str:
    template = entry.template
    if template is None:
        return repr(entry.rules.issuer)
    tenants = f" among {sorted(template.tenants)}" if template.tenants else ""
    return (
        f"{template.template!r} with {{tenantid}} replaced by the token's 'tid' "
        f"(a GUID{tenants}, the first path segment of iss)"
    )
