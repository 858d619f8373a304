"""One-time use of DPoP proofs: a store that records a key once per window (RFC 9449 §11.1).

The store sees only fixed-size hashes chosen by the verifier, never raw
request input, so a hostile ``jti`` cannot make keys long or collide them on
purpose.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Protocol

__all__ = ["DEFAULT_MAX_ENTRIES", "MemoryReplayStore", "ReplayStore", "ReplayStoreFull"]

#: Entries kept by :class:`MemoryReplayStore`. Measured ~210 bytes per entry
#: (32-byte key, float, ordered-dict slot): 100 000 entries ~ 21 MB, and a
#: 70 s window holds them at ~1 400 accepted proofs per second per process.
DEFAULT_MAX_ENTRIES = 100_000


class ReplayStoreFull(Exception):
    """Every slot holds a key that has not yet expired.

    The verifier refuses the proof rather than forget a key early: forgetting
    would let that proof be replayed within its window.
    """


class ReplayStore(Protocol):
    """Where accepted proofs are remembered; shared stores (e.g. Redis ``SET NX EX``) fit it."""

    def add_if_absent(self, key: bytes, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; ``False`` if it is already recorded.

        :raises ReplayStoreFull: if the key cannot be recorded.
        """


class MemoryReplayStore:
    """A bounded in-process :class:`ReplayStore`: at most ``max_entries`` keys, each until it expires.

    Only one process sees it: with several workers, a proof can be replayed
    once per worker (Spring Security #18120). Use a shared store there.

    :param max_entries: the size bound; when every entry is still live the
        store raises :class:`ReplayStoreFull` (fail closed).
    :param clock: a monotonic clock, for tests.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        # key -> expiry, in insertion order; the verifier uses nearly the same
        # TTL for every key, so the oldest entries are the first to expire.
        self._entries: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def add_if_absent(self, key: bytes, ttl: float) -> bool:
        now = self._clock()
        with self._lock:
            expiry = self._entries.get(key)
            if expiry is not None and expiry > now:
                return False
            if expiry is not None:
                del self._entries[key]
            self._purge(now)
            if len(self._entries) >= self.max_entries:
                raise ReplayStoreFull("the DPoP replay store is full")
            self._entries[key] = now + max(ttl, 0.0)
            return True

    def _purge(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, expiry = next(iter(entries.items()))
            if expiry > now:
                # TTLs differ by at most the iat window, so an expired entry
                # behind a live head lingers that long at most; no full scan,
                # which a flood would turn into O(n) work per request.
                break
            del entries[key]
