"""The validator's checks one at a time, each with a verdict and a reason (for check-token).

:func:`run_checks` applies the rules a :class:`TokenValidator` enforces
(RFC 7515 format and header, algorithm allowlist, key lookup at the
*configured* issuer, signature, RFC 7519 §4.1 claims) plus required roles and
scopes, and reports every one instead of stopping at the first failure. A
final ``validate`` line runs the validator itself, so the report can never
pass a token the validator would refuse.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple

from .claims import CLAIM_CHECKS, roles_of, scopes_of
from .errors import CCGuardError
from .jws import ParsedToken, parse_compact
from .keys import VerifyingKey
from .validator import TokenValidator

__all__ = ["CHECK_NAMES", "Check", "Report", "run_checks"]

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
    now = time.time() if now is None else now
    roles, scopes = tuple(roles), tuple(scopes)
    checks: list[Check] = []

    def add(name: str, status: str, detail: str) -> None:
        checks.append(Check(name, status, detail))

    def skip_rest(reason: str) -> Report:
        done = {c.name for c in checks}
        for name in CHECK_NAMES:
            if name not in done and name != "validate":
                add(name, "SKIP", reason)
        _final(validator, token, checks)
        return Report(parsed.header if parsed else None, parsed.payload if parsed else None, checks)

    parsed: ParsedToken | None = None
    try:
        parsed = parse_compact(token, validator.max_token_bytes)
    except CCGuardError as exc:
        add("format", "FAIL", exc.description)
        return skip_rest("the token cannot be read")
    header, payload = parsed.header, parsed.payload
    iss = payload.get("iss")
    configured = validator.issuers
    issuer = iss if iss in configured else (configured[0] if len(configured) == 1 else None)
    if issuer is None:
        add("format", "PASS", "compact JWS")
        add("iss", "FAIL", f"{iss!r} is none of the configured issuers {list(configured)}")
        return skip_rest("the token's issuer is not configured")
    settings = validator.issuer_settings(issuer)
    try:
        validator.check_header(header, issuer)
        add("format", "PASS", f"compact JWS, typ {header.get('typ')!r}")
    except CCGuardError as exc:
        add("format", "FAIL", exc.description)

    alg = header.get("alg")
    allowed = sorted(settings.algorithms)
    candidates: tuple[VerifyingKey, ...] = ()
    if isinstance(alg, str) and alg in settings.algorithms:
        add("algorithm", "PASS", f"{alg} is allowed")
        kid = header.get("kid")
        try:
            candidates = settings.keys.candidates(kid if isinstance(kid, str) else None, alg)
            shown = f"kid {kid!r}" if kid is not None else f"{len(candidates)} key(s) for {alg}"
            add("key", "PASS", f"{shown} found at {issuer}")
        except CCGuardError as exc:
            add("key", "FAIL", f"{exc.description} (keys fetched from {issuer} only)")
    else:
        add("algorithm", "FAIL", f"{alg!r} is not in the allowlist {allowed}")
        add("key", "SKIP", "the algorithm is not allowed")
    if not candidates:
        add("signature", "SKIP", "no key to verify with")
    elif any(k.verify(str(alg), parsed.signing_input, parsed.signature) for k in candidates):
        add("signature", "PASS", f"verified with the issuer's {alg} key")
    else:
        add("signature", "FAIL", "the signature does not verify with the issuer's key")

    results: dict[str, Check] = {}
    for name, check in CLAIM_CHECKS:
        try:
            check(payload, settings.rules, now)
            results[name] = Check(name, "PASS", _claim_detail(name, payload, now))
        except CCGuardError as exc:
            results[name] = Check(name, "FAIL", f"{exc.description} ({_claim_detail(name, payload, now)})")
    if results["aud"].status == "FAIL":
        expected = sorted(settings.rules.audiences)
        results["aud"] = results["aud"]._replace(detail=results["aud"].detail + f"; expected one of {expected}")
    if results["iss"].status == "FAIL":
        results["iss"] = results["iss"]._replace(detail=results["iss"].detail + f"; expected {issuer!r}")
    checks.extend(results[name] for name in ("iss", "aud", "exp", "iat", "nbf"))

    have_roles = roles_of(payload, settings.rules.roles_claim, settings.rules.roles_delimiter)
    if not roles:
        add("roles", "SKIP", f"none required (token has {sorted(have_roles)})")
    elif have_roles.intersection(roles):
        add("roles", "PASS", f"has {sorted(have_roles.intersection(roles))} (one of {list(roles)} needed)")
    else:
        add("roles", "FAIL", f"needs one of {list(roles)}; token has {sorted(have_roles)}")
    have_scopes = scopes_of(payload, settings.rules.scopes_claim)
    missing = [s for s in scopes if s not in have_scopes]
    if not scopes:
        add("scopes", "SKIP", f"none required (token has {sorted(have_scopes)})")
    elif missing:
        add("scopes", "FAIL", f"missing {missing}; token has {sorted(have_scopes)}")
    else:
        add("scopes", "PASS", f"has all of {list(scopes)}")
    _final(validator, token, checks)
    return Report(header, payload, checks)


def _final(validator: TokenValidator, token: str, checks: list[Check]) -> None:
    try:
        validator.validate(token)
    except CCGuardError as exc:
        checks.append(Check("validate", "FAIL", f"TokenValidator refuses the token: {exc.description}"))
        return
    checks.append(Check("validate", "PASS", "TokenValidator accepts the token"))
