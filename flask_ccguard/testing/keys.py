"""The key ring of one :class:`~flask_ccguard.testing.TestIssuer`: current keys, published keys, rotation."""

from __future__ import annotations

import threading
from typing import Any

from .minting import SigningKey, check_alg

__all__ = ["KeyRing"]


class KeyRing:
    """One current key per algorithm, the published set (RFC 7517 §5), and the keys lent from the pool.

    Thread-safe: the issuer's request threads read it while a test rotates it.
    """

    def __init__(self, algorithms: tuple[str, ...] | list[str]) -> None:
        self._lock = threading.RLock()
        self._current: dict[str, SigningKey] = {}
        self._published: list[SigningKey] = []
        self._lent: list[SigningKey] = []
        for alg in algorithms:
            check_alg(alg)
        with self._lock:
            for alg in dict.fromkeys(algorithms):
                self._add(alg)

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Algorithms whose current keys are published."""
        with self._lock:
            return tuple(self._current)

    def _add(self, alg: str) -> SigningKey:
        key = SigningKey.lend(alg)
        self._current[alg] = key
        self._published.append(key)
        self._lent.append(key)
        return key

    def key(self, alg: str) -> SigningKey:
        """The current key for ``alg``, added (and published) if there is none yet."""
        check_alg(alg)
        with self._lock:
            key = self._current.get(alg)
            return key if key is not None else self._add(alg)

    def published_jwks(self) -> list[dict[str, Any]]:
        """Copies of the published JWKs, newest keys first."""
        with self._lock:
            return [dict(key.jwk) for key in self._published]

    def rotate(self, *, keep_old: bool) -> None:
        """A new key and kid for every algorithm; ``keep_old`` keeps publishing the old ones after them."""
        with self._lock:
            old = list(self._published)
            self._published = []
            for alg in list(self._current):
                self._add(alg)
            if keep_old:
                self._published.extend(old)

    def release(self) -> None:
        """Give every key lent to this ring back to the pool."""
        with self._lock:
            for key in self._lent:
                key.give_back()
            self._lent.clear()
