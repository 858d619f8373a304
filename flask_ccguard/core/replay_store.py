"""The DPoP replay store and the nonce secret, shared through ``CCGUARD_CACHE``.

A DPoP proof's ``jti`` may be used once (RFC 9449 §11.1): the check is an
atomic set-if-absent with an expiry (``add_if_absent``; Redis ``SET NX PX``)
in a store every worker and host shares. :func:`open_replay_store` gives that
store for a ``CCGUARD_CACHE`` value:

* ``None`` / ``memory://`` -- this process only (a proof replayed to another
  worker is not seen: configure a shared cache when running several);
* ``file:///dir`` -- the workers of one host (``flock``-serialised);
* ``redis://…`` -- every host; keys ``ccguard:dpop:<key>``, each with an expiry.

Unlike the key and introspection caches, which only save work and fail open,
the replay store **fails closed**: when the backend cannot answer, the check
raises :class:`ReplayStoreUnavailable` (503 with ``Retry-After``), because
accepting a proof that cannot be checked would accept its replays. A
deployment that prefers availability passes ``fail_open=True`` (the
``dpop_replay_fail_open`` option); replays are then possible while the store
is down.

The server-nonce secret (RFC 9449 §9) is shared the same way by
:class:`SharedNonceSecret` when none is configured.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable, Protocol

from .errors import Unavailable
from .replay import DEFAULT_MAX_ENTRIES, ReplayMemoryStore
from .store import ByteStore, FailOpen, Guarded, Key, in_process, open_store, redact

__all__ = [
    "NAMESPACE",
    "NONCE_SECRET_SECONDS",
    "DailyNonceSource",
    "FailClosed",
    "ReplayStoreUnavailable",
    "SharedNonceSecret",
    "open_replay_store",
]

log = logging.getLogger("flask_ccguard")

#: The namespace of the replay store (Redis keys ``ccguard:dpop:<key>``).
NAMESPACE = "dpop"
#: How long one nonce secret is used and kept: a secret per UTC day.
NONCE_SECRET_SECONDS = 86400
_RETRY_AFTER = 5
_WARN_EVERY = 60.0


class ReplayStoreUnavailable(Unavailable):
    """The shared DPoP replay store cannot be reached, so a proof cannot be
    checked for replay (RFC 9449 §11.1); 503 with ``Retry-After``."""

    default_description = "The proof cannot be checked for replay now; try again later."
    default_reason = "replay_store_unavailable"


class FailClosed(Guarded):
    """A store whose failures raise :class:`ReplayStoreUnavailable` (logged at
    most once a minute, without the key)."""

    def _fail(self, exc: Exception) -> ReplayStoreUnavailable:
        if self._count_failure():
            log.warning(
                "flask_ccguard: DPoP replay store %s failed (%s); proofs get 503 until it answers",
                self._label,
                type(exc).__name__,
            )
        return ReplayStoreUnavailable(retry_after=_RETRY_AFTER)

    def get(self, key: Key) -> bytes | None:
        try:
            return self.inner.get(key)
        except Exception as exc:
            raise self._fail(exc) from None

    def set(self, key: Key, value: bytes, ttl: float) -> None:
        try:
            self.inner.set(key, value, ttl)
        except Exception as exc:
            raise self._fail(exc) from None

    def add_if_absent(self, key: Key, value: bytes, ttl: float) -> bool:
        try:
            return self.inner.add_if_absent(key, value, ttl)
        except Exception as exc:
            raise self._fail(exc) from None

    def delete(self, key: Key) -> None:
        try:
            self.inner.delete(key)
        except Exception as exc:
            raise self._fail(exc) from None


def open_replay_store(spec: str | None, *, fail_open: bool = False, name: str = "cache") -> ByteStore:
    """The DPoP replay store for a ``CCGUARD_CACHE`` value ``spec``.

    :param spec: ``None``/``""``/``"memory://"`` (this process: a
        :class:`~.replay.ReplayMemoryStore`, which refuses new proofs when full
        rather than forget a live one), ``"file:///dir"`` or ``"redis://…"``
        (namespace ``dpop``).
    :param fail_open: a shared store's failure reads as "not seen" (replays
        possible during an outage) instead of :class:`ReplayStoreUnavailable`.
    :raises ConfigurationError: for a bad ``spec`` (naming ``name``).
    """
    if in_process(spec):
        return ReplayMemoryStore()  # cannot fail
    # (The bounds are those of an in-process store, which this spec is not.)
    store = open_store(spec, NAMESPACE, max_entries=DEFAULT_MAX_ENTRIES, max_bytes=DEFAULT_MAX_ENTRIES << 10, name=name)
    label = redact(spec or "")
    return FailOpen(store, label) if fail_open else FailClosed(store, label)


class SharedNonceSecret:
    """The HMAC secret of DPoP server nonces, the same in every process that
    shares ``store`` (e.g. the replay store): one random 32-byte secret per UTC
    day under ``nonce-secret:<day>``, created by the first process to ask
    (``add_if_absent``) and kept :data:`NONCE_SECRET_SECONDS`. Each process
    reads it once a day. At midnight nonces of the previous day's secret stop
    being valid: a client then gets one ``use_dpop_nonce`` answer and retries.
    A configured secret (``CCGUARD_DPOP_NONCE_SECRET``) avoids even that.

    :raises ReplayStoreUnavailable: from :meth:`get` when a fail-closed store is down.
    """

    def __init__(self, store: ByteStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._day = -1
        self._secret = b""

    def get(self) -> bytes:
        """Today's secret (32 bytes)."""
        day = int(self._clock() // NONCE_SECRET_SECONDS)
        with self._lock:
            if day == self._day:
                return self._secret
        key = f"nonce-secret:{day}"
        secret = self._store.get(key)
        if secret is None:
            self._store.add_if_absent(key, os.urandom(32), NONCE_SECRET_SECONDS)
            # Read back: another process may have won the race.
            secret = self._store.get(key)
        if secret is None or len(secret) < 32:
            # A store that keeps nothing (fail-open and down): this process's own.
            raise ReplayStoreUnavailable(retry_after=_RETRY_AFTER)
        with self._lock:
            self._day, self._secret = day, secret
        return secret


class _NonceSource(Protocol):
    def current(self) -> str: ...

    def is_valid(self, nonce: str) -> bool: ...


class DailyNonceSource:
    """A nonce source (``current`` / ``is_valid``, as
    :class:`~flask_ccguard.core.dpop_nonce.HmacNonceSource`) over the day's
    :class:`SharedNonceSecret`, so every worker issues and accepts the same
    nonces; yesterday's source still validates, so midnight costs no retry.

    :param secret: the shared secret.
    :param make: builds a source from a secret, e.g. ``HmacNonceSource``.
    """

    def __init__(self, secret: SharedNonceSecret, make: Callable[[bytes], _NonceSource]) -> None:
        self._secret = secret
        self._make = make
        self._lock = threading.Lock()
        self._key = b""
        self._source: _NonceSource | None = None
        self._previous: _NonceSource | None = None

    def _current_source(self) -> _NonceSource:
        key = self._secret.get()  # cached for the day: no store operation
        with self._lock:
            if key != self._key or self._source is None:
                self._previous, self._source, self._key = self._source, self._make(key), key
            return self._source

    def current(self) -> str:
        return self._current_source().current()

    def is_valid(self, nonce: str) -> bool:
        if self._current_source().is_valid(nonce):
            return True
        previous = self._previous
        return previous is not None and previous.is_valid(nonce)
