"""A bounded LRU of verified tokens, so a repeated token skips the signature check (RFC 7519 §7.2).

An entry is the :class:`~flask_ccguard.core.claims.VerifiedToken` of a token
string that passed every check, with the time window in which its time
claims (``exp``, ``nbf``, ``iat``, and the maximum token age) still hold. A
hit outside that window is no hit: the caller validates the token in full
and reports exactly what a first sight would. Entries signed by a key that
leaves the issuer's JWKS are dropped when the key set notices.

The key is the token string itself: Python caches a string's hash, so a
lookup costs one hash of the token, cheaper than a SHA-256 digest (see the
README's performance section for the measured difference in memory).

A token is stored the second time it is verified, not the first: a
"doorkeeper" remembers only the hashes of tokens seen once. Tokens that are
never repeated then cost no more than a set insertion, and they do not fill
the cache with objects that the garbage collector would have to walk (with a
full cache of one-off tokens, the collector's walks cost more than the cache
saves). A client-credentials client reuses its token until it expires, so a
real token pays one extra signature check and is then served from here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from .claims import VerifiedToken
    from .jwks import KeySet

__all__ = ["CacheEntry", "TokenCache"]

TokenKey = Union[str, bytes]


class CacheEntry:
    """A verified token, when its time claims hold, and the key set and ``kid`` that verified it."""

    __slots__ = ("keys", "kid", "since", "token", "until")

    def __init__(self, token: VerifiedToken, since: float, until: float, keys: KeySet, kid: str) -> None:
        self.token = token
        self.since = since
        self.until = until
        self.keys = keys
        self.kid = kid


class TokenCache:
    """Verified tokens by token string, least recently used dropped first. Thread-safe.

    :param maxsize: the most entries kept; must be at least 1.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._entries: OrderedDict[TokenKey, CacheEntry] = OrderedDict()
        # Hashes (plain ints, which the garbage collector skips) of tokens
        # verified once and not stored yet. A collision only admits a token
        # one verification early.
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._lock = threading.Lock()
        #: Bumped by every :meth:`drop_keys`; an entry checked against an
        #: older key set is not stored (see :meth:`put`).
        self.generation = 0

    def get(self, key: TokenKey, now: float) -> CacheEntry | None:
        """The entry for ``key`` if cached and its time claims hold at ``now``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.since <= now < entry.until:
                self._entries.move_to_end(key)
                return entry
            # Expired (or the clock went back): the caller's full check says why.
            del self._entries[key]
            return None

    def admit(self, key: TokenKey) -> bool:
        """Note that ``key`` was verified; True if it was seen before and should be stored."""
        digest = hash(key)
        with self._lock:
            seen = self._seen
            if digest in seen:
                del seen[digest]
                return True
            seen[digest] = None
            if len(seen) > self.maxsize:
                seen.popitem(last=False)
            return False

    def put(
        self,
        key: TokenKey,
        token: VerifiedToken,
        *,
        since: float,
        until: float,
        keys: KeySet,
        kid: str,
        generation: int,
    ) -> None:
        """Remember ``token``, verified with key ``kid`` of ``keys``.

        :param generation: :attr:`generation` read before the token's key was
            looked up; if keys were dropped since, the token may have been
            verified with one of them and is not stored.
        """
        entry = CacheEntry(token, since, until, keys, kid)
        with self._lock:
            if generation != self.generation:
                return
            entries = self._entries
            entries[key] = entry
            if len(entries) > self.maxsize:
                entries.popitem(last=False)

    def drop_keys(self, keys: KeySet, kids: Collection[str]) -> int:
        """Forget every token verified with one of ``kids`` of ``keys``.

        :returns: how many entries were dropped.
        """
        with self._lock:
            self.generation += 1
            doomed = [k for k, e in self._entries.items() if e.keys is keys and e.kid in kids]
            for k in doomed:
                del self._entries[k]
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()
            self._seen.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
