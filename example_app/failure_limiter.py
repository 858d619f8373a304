"""A bounded-memory limiter of failed client authentications at the token endpoint.

RFC 6749 §10.10: the authorization server MUST prevent attackers from
guessing client credentials. Failures are counted per remote address and per
(client id, remote address) pair in fixed windows; a key that reached its
limit is answered ``429`` with ``Retry-After`` (RFC 6585 §4) until its window
ends, without its credentials being checked.

Not per client id alone: client ids are public (``sub`` in every token), so a
per-client count would let anyone lock a client out from any address, for
ever, at a few requests a minute - a denial of service, which §10.10 does not
ask for. Nor does it buy anything: a client's secret is 256 random bits, out
of reach of any guessing rate, and the per-address count already bounds how
fast one address may try. The pair count keeps one address's guesses at one
client to the smaller per-client number; the legitimate client, from an
address that is not failing, is never affected.

Each table keeps at most ``max_keys`` entries, dropping the least recently
failed one when full, so the memory is bounded whatever ids and addresses an
attacker sends (client ids are kept as 16-byte digests, not as sent). The
price of the bound: a flood of distinct keys can push an entry out early,
which the other dimension (address or client) still limits.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["FailureLimiter", "TokenEndpointLimits"]


class FailureLimiter:
    """At most ``limit`` failures per key per ``window`` seconds; at most ``max_keys`` keys.

    A check in progress holds a slot (:meth:`reserve`) until it is settled
    (:meth:`settle`): reserved slots count towards the limit, so concurrent
    requests cannot all pass the limit before any of their failures is counted.

    :param clock: a monotonic clock, replaceable in tests.
    """

    def __init__(
        self, limit: int, window: float, max_keys: int = 4096, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or window <= 0 or max_keys < 1:
            raise ValueError("limit and max_keys must be at least 1, window above 0")
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (window start, failures in that window, checks in progress);
        # least recently touched first.
        self._table: OrderedDict[Hashable, tuple[float, int, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def retry_after(self, key: Hashable) -> int:
        """Whole seconds until ``key`` may try again; 0 if it may now.

        Blocked only by checks in progress (no window's worth of failures
        yet), the answer is 1: they end within a request's time.
        """
        now = self._clock()
        with self._lock:
            entry = self._table.get(key)
            if entry is None:
                return 0
            start, failures, pending = entry
            if now - start >= self.window:
                if not pending:
                    del self._table[key]
                    return 0
                start, failures = now, 0
            if failures >= self.limit:
                return max(1, math.ceil(start + self.window - now))
            return 1 if failures + pending >= self.limit else 0

    def _put(self, key: Hashable, entry: tuple[float, int, int]) -> None:
        self._table[key] = entry
        while len(self._table) > self.max_keys:
            self._table.popitem(last=False)

    def _current(self, key: Hashable, now: float) -> tuple[float, int, int]:
        start, failures, pending = self._table.pop(key, (now, 0, 0))
        if now - start >= self.window:
            start, failures = now, 0
        return start, failures, pending

    def reserve(self, key: Hashable) -> None:
        """Hold a slot for a check of ``key`` about to run (call :meth:`settle` after it)."""
        now = self._clock()
        with self._lock:
            start, failures, pending = self._current(key, now)
            self._put(key, (start, failures, pending + 1))

    def settle(self, key: Hashable, failed: bool) -> None:
        """End a check :meth:`reserve` held a slot for; count it if it ``failed``."""
        now = self._clock()
        with self._lock:
            start, failures, pending = self._current(key, now)
            entry = (start, failures + failed, max(0, pending - 1))
            if entry[1:] != (0, 0):
                self._put(key, entry)

    def failed(self, key: Hashable) -> None:
        """Count one failure of ``key``."""
        self.reserve(key)
        self.settle(key, True)

    def forget(self, key: Hashable) -> None:
        """Clear ``key``'s failures (after it authenticated); checks in progress keep their slots."""
        with self._lock:
            entry = self._table.pop(key, None)
            if entry is not None and entry[2]:
                self._table[key] = (entry[0], 0, entry[2])


def _pair_key(client_id: str, address: str) -> bytes:
    # A digest: a client id may be up to a whole request body long. The
    # address (which never holds a NUL) goes first and ends at the first NUL,
    # so no two pairs share an input.
    data = address.encode("utf-8", "surrogatepass") + b"\0" + client_id.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).digest()


class TokenEndpointLimits:
    """The token endpoint's two limiters: per (client id, remote address) and per remote address.

    :param per_client: failures allowed for one client id from one address.
    """

    def __init__(
        self,
        per_client: int,
        per_address: int,
        window: float,
        max_keys: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clients = FailureLimiter(per_client, window, max_keys, clock)
        self.addresses = FailureLimiter(per_address, window, max_keys, clock)
        # Held across both limiters: a check is allowed by both or by neither.
        self._lock = threading.Lock()

    def begin(self, client_id: str, address: str) -> int:
        """Reserve a check of ``client_id``'s credentials from ``address``, or refuse it.

        Atomic (RFC 6749 §10.10): the limits are read and the slots taken
        under one lock, before the check runs, so a burst of concurrent
        requests gets at most the limit's number of checks; the rest are
        answered without one.

        :returns: 0 if the check may run (then call :meth:`end`), else the
            seconds to wait for ``Retry-After``.
        """
        pair = _pair_key(client_id, address)
        with self._lock:
            wait = max(self.clients.retry_after(pair), self.addresses.retry_after(address))
            if not wait:
                self.clients.reserve(pair)
                self.addresses.reserve(address)
            return wait

    def end(self, client_id: str, address: str, outcome: bool | None) -> None:
        """Settle a check :meth:`begin` allowed: ``True`` authenticated, ``False``
        failed, ``None`` did not run (the server was busy)."""
        pair = _pair_key(client_id, address)
        with self._lock:
            self.clients.settle(pair, outcome is False)
            # The address keeps its failures after a success: one good client
            # must not launder another's guessing from the same address.
            self.addresses.settle(address, outcome is False)
            if outcome:
                self.clients.forget(pair)
