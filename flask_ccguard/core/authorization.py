"""Required roles and scopes: the one rule behind the decorators' ``match=`` and check-token (RFC 6750 §3.1)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MATCHES", "lacking"]

#: The accepted values of ``match``.
MATCHES = ("all", "any")


def lacking(have: frozenset[str], need: Sequence[str], match: str, what: str) -> str | None:
    """Why ``have`` does not satisfy ``need`` under ``match`` (``"all"`` or ``"any"``),
    as a safe description; None when it does (or nothing is needed)."""
    if not need or (match == "all" and have.issuperset(need)):
        return None
    if match == "any":
        return None if not have.isdisjoint(need) else f"The access token has none of the {what} {', '.join(need)}."
    missing = [n for n in need if n not in have]
    return f"The access token lacks the {what} {', '.join(missing)}." if missing else None
