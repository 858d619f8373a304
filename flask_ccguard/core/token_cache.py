"""A bounded LRU of verified tokens, so a repeated token skips the signature check (RFC 7519 §7.2).

This cache stays in-process, unlike the HTTP response and introspection
caches (which sit on a :class:`~flask_ccguard.core.store.ByteStore` and can
be shared): it holds Python objects (a :class:`VerifiedToken` and a live
reference to the key set that vouched for it), and a hit must cost a dict
lookup, not a round trip and a deserialisation.

An entry is the :class:`~flask_ccguard.core.claims.VerifiedToken` of a token
string that passed every check, with the time window in which its time
claims (``exp``, ``nbf``, ``iat``, and the maximum token age) still hold. A
hit outside that window is no hit: the caller validates the token in full
and reports exactly what a first sight would.

An entry also remembers the key that verified it by material (its
fingerprint) and the key set's :attr:`~.jwks.KeySet.generation` at the time.
A hit compares that integer with the set's; only when material has been
withdrawn since does it ask the set whether the fingerprint is still
published, and drops the entry if not. So a key that leaves the JWKS, or is
replaced under the same ``kid``, stops vouching for cached tokens as soon as
the set is refetched, at the cost of one integer comparison per hit.

The key is the token string itself: Python caches a string's hash, so a
lookup costs one hash of the token, cheaper than a SHA-256 digest (see the
docs' performance page, ``docs/performance.rst``, for the measured difference in memory).

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
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from .claims import VerifiedToken
    from .jwks import KeySet

__all__ = ["CacheEntry", "TokenCache"]

TokenKey = Union[str, bytes]


class CacheEntry:
    """A verified token, when its time claims hold, and the key set and key material that verified it."""

    __slots__ = ("fingerprint", "generation", "keys", "since", "token", "until")

    def __init__(
        self, token: VerifiedToken, since: float, until: float, keys: KeySet, fingerprint: bytes, generation: int
    ) -> None:
        self.token = token
        self.since = since
        self.until = until
        self.keys = keys
        self.fingerprint = fingerprint
        #: ``keys.generation`` when the material was last known to be published.
        self.generation = generation

    def vouched(self) -> bool:
        """True if the key that verified the token is still published; refreshes :attr:`generation`."""
        keys = self.keys
        generation = keys.generation  # read before the material (see KeySet.generation)
        if generation == self.generation:
            return True
        if not keys.holds(self.fingerprint):
            return False
        self.generation = generation
        return True


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

    def get(self, key: TokenKey, now: float) -> CacheEntry | None:
        """The entry for ``key`` if cached, its time claims hold at ``now`` and its key is still published."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            # The generation test inline: the one check a hit pays for key material.
            if entry.since <= now < entry.until and (entry.generation == entry.keys.generation or entry.vouched()):
                self._entries.move_to_end(key)
                return entry
            # Expired (or the clock went back), or its key withdrawn: the
            # caller's full check says why.
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
        fingerprint: bytes,
        generation: int,
    ) -> None:
        """Remember ``token``, verified with the key of ``keys`` that has ``fingerprint``.

        :param generation: ``keys.generation`` read *before* the token's key
            was looked up; if material was withdrawn since, the first hit
            checks that this key's is not among it.
        """
        entry = CacheEntry(token, since, until, keys, fingerprint, generation)
        with self._lock:
            entries = self._entries
            entries[key] = entry
            if len(entries) > self.maxsize:
                entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._seen.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """True if ``key`` is stored and its key still published (time claims aside)."""
        with self._lock:
            entry = self._entries.get(key)  # type: ignore[call-overload]
            return entry is not None and entry.vouched()
