"""Counters for operators: validations by outcome and reason, key fetches, cache use.

Counting sits on the validation hot path, so it is one dict increment under
an uncontended lock per validation (CPython's ``+=`` on a dict item is not
atomic across threads, and free-threaded builds make that plain). The key
set and HTTP counters are only touched when something is fetched and are
read, not copied, when :func:`snapshot` builds the report.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .fetch.http import HTTPClient
    from .jwks import KeySet

__all__ = ["CACHE_HIT", "KEY_SET_COUNTERS", "OUTCOMES", "ValidationCounter", "snapshot"]

#: Outcomes of a validation: a token accepted, refused (401/400), or no keys (503).
OUTCOMES = ("accepted", "rejected", "unavailable")

#: The reason of an accepted token answered from the token cache ("ok" for the others).
CACHE_HIT = "cached"

#: :class:`KeySet` attribute → name in the report.
KEY_SET_COUNTERS = {
    "fetches": "key_fetches",
    "fetch_failures": "key_fetch_failures",
    "refetches": "unknown_kid_refetches",
    "cooldown_refusals": "cooldown_refusals",
    "stale_served": "stale_keys_served",
    "cache_hits": "key_set_cache_hits",
}


class ValidationCounter:
    """Thread-safe counts of (outcome, reason) pairs."""

    __slots__ = ("_counts", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, outcome: str, reason: str) -> None:
        """Count one validation; ``reason`` is ``"ok"`` for accepted tokens."""
        with self._lock:
            self._counts[outcome, reason] += 1

    def cache_hits(self) -> int:
        """Tokens accepted from the token cache."""
        with self._lock:
            return self._counts["accepted", CACHE_HIT]

    def items(self) -> list[tuple[tuple[str, str], int]]:
        with self._lock:
            return list(self._counts.items())


def snapshot(counter: ValidationCounter, http: HTTPClient, key_sets: Iterable[KeySet]) -> dict[str, Any]:
    """The report of :meth:`TokenValidator.stats`; a new dict each call.

    ``validations`` maps each outcome to its count (``token_cache_hits`` of
    the accepted ones answered from the token cache); ``reasons`` maps each
    ``reason`` of refused tokens (``expired``, ``bad_signature``,
    ``unknown_kid``, ``keys_unavailable``…) to its count; the key set
    counters are summed over issuers and also given per issuer.
    """
    validations = dict.fromkeys(OUTCOMES, 0)
    reasons: dict[str, int] = {}
    for (outcome, reason), count in counter.items():
        validations[outcome] = validations.get(outcome, 0) + count
        if outcome != "accepted":
            reasons[reason] = reasons.get(reason, 0) + count
    totals = dict.fromkeys(KEY_SET_COUNTERS.values(), 0)
    issuers: dict[str, dict[str, int]] = {}
    for keys in key_sets:
        per = {name: int(getattr(keys, attr)) for attr, name in KEY_SET_COUNTERS.items()}
        issuers[keys.issuer] = per
        for name, value in per.items():
            totals[name] += value
    return {
        "validations": validations,
        "reasons": dict(sorted(reasons.items())),
        "token_cache_hits": counter.cache_hits(),
        **totals,
        # Every metadata and key-set GET: answered by the HTTP cache, or sent to an issuer.
        "cache_hits": http.cache_hits,
        "issuer_requests": http.network_fetches,
        "issuers": issuers,
    }
