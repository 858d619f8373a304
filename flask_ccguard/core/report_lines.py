"""The lines of a check-token report (:class:`Check`, :class:`Report`) and how they show claims and times."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple

__all__ = ["CHECK_NAMES", "Check", "Report", "claim_detail"]

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


def claim_detail(name: str, payload: Mapping[str, Any], now: float) -> str:
    if name not in payload:
        return "absent (optional)"
    value = payload[name]
    return _when(value, now) if name in ("exp", "iat", "nbf") else repr(value)
