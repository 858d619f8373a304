"""One-time use of DPoP proofs: a byte store that records a key once per window (RFC 9449 §11.1).

The replay store is any :class:`~flask_ccguard.core.store.ByteStore`
(namespace ``dpop``); its atomic ``add_if_absent`` is the whole check. The
default is :class:`ReplayMemoryStore`, a :class:`~flask_ccguard.core.store.MemoryStore`
that refuses a new key when full instead of forgetting a live one (forgetting
would let that proof be replayed within its window). The store sees only
fixed-size hashes chosen by the verifier, never raw request input.
"""

from __future__ import annotations

import time
from typing import Callable

from .store import Key, MemoryStore, _bytes, clamp_ttl

__all__ = ["DEFAULT_MAX_ENTRIES", "ReplayMemoryStore", "ReplayStoreFull"]

#: Entries kept by :class:`ReplayMemoryStore`: ~200 bytes each (32-byte key,
#: expiry, ordered-dict slot), 100 000 entries ~ 20 MB; a 70 s window holds
#: them at ~1 400 accepted proofs per second per process.
DEFAULT_MAX_ENTRIES = 100_000


class ReplayStoreFull(Exception):
    """Every slot holds a key that has not yet expired; the proof is refused (fail closed)."""


class ReplayMemoryStore(MemoryStore):
    """This process's replay store: at most ``max_entries`` live keys, refusing when full.

    Only one process sees it: with several workers, a proof can be replayed
    once per worker (Spring Security #18120) unless ``CCGUARD_CACHE`` names a
    shared store.

    :raises ReplayStoreFull: from :meth:`add_if_absent` when every entry is live.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        super().__init__(max_entries, max_bytes=max_entries * 1024, clock=clock)

    def add_if_absent(self, key: Key, value: bytes, ttl: float) -> bool:
        k = _bytes(key)
        with self.lock:
            now = self._clock()
            if k in self.data and now < self._expiry[k]:
                return False
            # Keys are never read back, so the order is insertion order and the
            # TTLs differ by at most the iat window: purging from the head is
            # enough, never a full scan a flood could turn into O(n) per request.
            while self.data:
                head = next(iter(self.data))
                if self._expiry[head] > now:
                    break
                self._drop(head)
            if k not in self.data and len(self.data) >= self.max_entries:
                raise ReplayStoreFull("the DPoP replay store is full")
            if clamp_ttl(ttl) <= 0:
                return True
            return self._put(k, value, ttl)
