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
        # key -> (window start, failures in that window); oldest failure first.
        self._table: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def retry_after(self, key: Hashable) -> int:
        """Whole seconds until ``key`` may try again; 0 if it may now."""
        now = self._clock()
        with self._lock:
            entry = self._table.get(key)
            if entry is None:
                return 0
            start, count = entry
            if now - start >= self.window:
                del self._table[key]
                return 0
            return max(1, math.ceil(start + self.window - now)) if count >= self.limit else 0

    def failed(self, key: Hashable) -> None:
        """Count one failure of ``key``."""
        now = self._clock()
        with self._lock:
            start, count = self._table.pop(key, (now, 0))
            if now - start >= self.window:
                start, count = now, 0
            self._table[key] = (start, count + 1)
            while len(self._table) > self.max_keys:
                self._table.popitem(last=False)

    def forget(self, key: Hashable) -> None:
        """Clear ``key``'s failures (after it authenticated)."""
        with self._lock:
            self._table.pop(key, None)


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

    def retry_after(self, client_id: str, address: str) -> int:
        """Seconds to wait before this client, from this address, may try again; 0 if now."""
        return max(self.clients.retry_after(_pair_key(client_id, address)), self.addresses.retry_after(address))

    def failed(self, client_id: str, address: str) -> None:
        self.clients.failed(_pair_key(client_id, address))
        self.addresses.failed(address)

    def succeeded(self, client_id: str, address: str) -> None:
        # The address keeps its count: one good client must not launder
        # another's guessing from the same address.
        self.clients.forget(_pair_key(client_id, address))
