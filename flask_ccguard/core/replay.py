"""One-time use of DPoP proofs: a byte store that records a key once per window (RFC 9449 §11.1).

The replay store is any :class:`~flask_ccguard.core.store.ByteStore`
(namespace ``dpop``); its atomic ``add_if_absent`` is the whole check. The
default is :class:`ReplayMemoryStore`, a :class:`~flask_ccguard.core.store.MemoryStore`
that refuses a new key when full instead of forgetting a live one (forgetting
would let that proof be replayed within its window). The store sees only
fixed-size hashes chosen by the verifier, never raw request input.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Callable

from .store import Key, MemoryStore, _bytes, clamp_ttl

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "KEY_QUOTA",
    "QUOTA_TABLE_SIZE",
    "KeyQuota",
    "ReplayMemoryStore",
    "ReplayStoreFull",
]

#: Entries kept by :class:`ReplayMemoryStore`: ~200 bytes each (32-byte key,
#: expiry, ordered-dict slot), 100 000 entries ~ 20 MB; a 70 s window holds
#: them at ~1 400 accepted proofs per second per process.
DEFAULT_MAX_ENTRIES = 100_000
#: Proofs one DPoP key (``jkt``) may have recorded per window (the iat window
#: plus 1 s, 71 s by default) in one process: ~140 accepted proofs per second
#: per key, sustained, which is above what one honest client sends one API
#: process. A tenth of the in-process store, so one key cannot fill it.
KEY_QUOTA = 10_000
#: Keys whose counts :class:`KeyQuota` holds (~150 bytes each, ~2.5 MB).
QUOTA_TABLE_SIZE = 16_384


class ReplayStoreFull(Exception):
    """Every slot holds a key that has not yet expired; the proof is refused (fail closed).

    :ivar retry_after: whole seconds until the oldest entry expires (at least 1).
    """

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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
                wait = self._expiry[next(iter(self.data))] - now
                raise ReplayStoreFull("the DPoP replay store is full", max(1, math.ceil(wait)))
            if clamp_ttl(ttl) <= 0:
                return True
            return self._put(k, value, ttl)


class KeyQuota:
    """At most ``quota`` recorded proofs per DPoP key per ``window`` seconds, in this process.

    Without it one client, with one bound key, fills the in-process replay
    store and every other client's proofs get 503 until its entries expire.
    Counts are per fixed window, so at a window's edge a key may have up to
    twice ``quota`` entries live; concurrent requests may pass a few more.
    The table keeps at most ``max_keys`` keys: expired windows go first (they
    are in start order), then the oldest live one, which only restarts that
    key's count.
    """

    def __init__(
        self,
        quota: int = KEY_QUOTA,
        window: float = 71.0,
        *,
        max_keys: int = QUOTA_TABLE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if quota < 1 or max_keys < 1 or window <= 0:
            raise ValueError("quota, window and max_keys must be positive")
        self.quota = quota
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: OrderedDict[str, list[float]] = OrderedDict()  # key -> [window start, count]

    def _current(self, key: str, now: float) -> list[float] | None:
        entry = self._counts.get(key)
        if entry is not None and now - entry[0] >= self.window:
            del self._counts[key]
            return None
        return entry

    def allows(self, key: str) -> bool:
        """Whether ``key`` may record one more proof now."""
        with self._lock:
            entry = self._current(key, self._clock())
            return entry is None or entry[1] < self.quota

    def record(self, key: str) -> None:
        """Count one recorded proof of ``key``."""
        with self._lock:
            now = self._clock()
            entry = self._current(key, now)
            if entry is not None:
                entry[1] += 1
                return
            while self._counts:
                head = next(iter(self._counts.values()))
                if now - head[0] < self.window and len(self._counts) < self.max_keys:
                    break
                self._counts.popitem(last=False)
            self._counts[key] = [now, 1]
