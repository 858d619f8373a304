"""Byte stores: the one small protocol every shared or bounded cache sits on.

A :class:`ByteStore` maps keys to bytes, and every entry expires: ``get``,
``set``, an atomic ``add_if_absent`` (the primitive a replay check needs) and
``delete``. Three backends implement it:

* :class:`MemoryStore` -- this process only; bounded in entries and bytes,
  least recently used first out.
* :class:`FileStore` -- the workers of one host share a private directory
  (mode 0700, files 0600); writes are serialised by a lock file.
* :class:`RedisStore` -- every host; keys are ``ccguard:<namespace>:<key>``
  and always carry an expiry (``SET ... PX``, ``SET ... NX PX``).

The caches are named for what they hold and sit on a store:
:class:`~flask_ccguard.core.fetch.http_cache.ResponseCache` (HTTP responses,
namespace ``http``), the introspection answers in
:mod:`~flask_ccguard.core.introspection` (``introspection``), and later the
DPoP replay store (``dpop``). A backend raises on failure; whether that fails
open (a miss) or closed is the caller's choice: wrap the store in
:class:`FailOpen` for the former.

A shared store is a trust boundary: whoever can write to it can plant what
the cache holds (keys, answers).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import struct
import tempfile
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Protocol, Union
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigurationError

__all__ = [
    "MAX_STORE_SECONDS",
    "REDIS_PREFIX",
    "ByteStore",
    "FailOpen",
    "FileStore",
    "MemoryStore",
    "RedisStore",
    "StoreSpec",
    "check_private",
    "clamp_ttl",
    "in_process",
    "open_store",
    "redact",
]

log = logging.getLogger("flask_ccguard")

Key = Union[bytes, str]

#: The longest any store keeps an entry (one day, the key set's cap on an
#: issuer's max-age): a stored key set is checked again at least daily, and
#: no caller can pin an entry for years with a huge lifetime.
MAX_STORE_SECONDS = 86400
#: Prefix of our Redis keys, so a database shared with the application stays tidy.
REDIS_PREFIX = "ccguard:"
REDIS_SCHEMES = ("redis", "rediss", "unix")
# A Redis that does not answer within this time is treated as failed: a
# request must not wait on a sick cache.
_REDIS_TIMEOUT = 1.0
_WARN_EVERY = 60.0
# A file store sweeps its expired files once per this many writes.
_SWEEP_EVERY = 256

StoreSpec = Union[str, None]


class ByteStore(Protocol):
    """Keys to bytes, every entry with a time to live (seconds, at most
    :data:`MAX_STORE_SECONDS`; 0 or less stores nothing). A key is ``str``
    (UTF-8 encoded) or ``bytes``; the same text in either form is one key."""

    def get(self, key: Key) -> bytes | None:
        """The value stored under ``key``, or None if absent or expired."""

    def set(self, key: Key, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any value."""

    def add_if_absent(self, key: Key, value: bytes, ttl: float) -> bool:
        """Store ``value`` only if ``key`` holds no live entry; atomic across
        every user of the store. True if this call stored it."""

    def delete(self, key: Key) -> None:
        """Forget ``key`` (no error if absent)."""


def clamp_ttl(ttl: float) -> float:
    """``ttl`` within ``[0, MAX_STORE_SECONDS]``: a caller's lifetime (often an
    issuer's ``max-age``) must neither overflow nor pin an entry for years."""
    try:
        seconds = float(ttl)
    except OverflowError:
        seconds = float(MAX_STORE_SECONDS)
    if seconds != seconds:  # NaN
        return 0.0
    return min(max(seconds, 0.0), float(MAX_STORE_SECONDS))


def _bytes(key: Key) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


# -- this process ------------------------------------------------------------------------


class MemoryStore:
    """This process's store: at most ``max_entries`` entries totalling
    ``max_bytes`` (keys and values), least recently used first out; an
    entry larger than the whole budget is not stored.

    :param clock: monotonic seconds (a test may pass its own).
    """

    def __init__(self, max_entries: int, max_bytes: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self.lock = threading.Lock()
        #: key -> value, least recently used first.
        self.data: OrderedDict[bytes, bytes] = OrderedDict()
        self._expiry: dict[bytes, float] = {}
        #: Total size of the stored keys and values, in bytes.
        self.size = 0

    def get(self, key: Key) -> bytes | None:
        k = _bytes(key)
        with self.lock:
            value = self.data.get(k)
            if value is None:
                return None
            if self._clock() >= self._expiry[k]:
                self._drop(k)
                return None
            self.data.move_to_end(k)
            return value

    def set(self, key: Key, value: bytes, ttl: float) -> None:
        k = _bytes(key)
        with self.lock:
            self._put(k, value, ttl)

    def add_if_absent(self, key: Key, value: bytes, ttl: float) -> bool:
        k = _bytes(key)
        with self.lock:
            if k in self.data and self._clock() < self._expiry[k]:
                return False
            return self._put(k, value, ttl)

    def delete(self, key: Key) -> None:
        k = _bytes(key)
        with self.lock:
            if k in self.data:
                self._drop(k)

    def ttl(self, key: Key) -> float | None:
        """Seconds ``key`` has left, or None if absent."""
        k = _bytes(key)
        with self.lock:
            left = self._expiry[k] - self._clock() if k in self.data else 0.0
        return left if left > 0 else None

    def clear(self) -> None:
        """Forget every entry."""
        with self.lock:
            self.data.clear()
            self._expiry.clear()
            self.size = 0

    def _put(self, k: bytes, value: bytes, ttl: float) -> bool:
        """Under the lock. True if stored."""
        if k in self.data:
            self._drop(k)
        seconds = clamp_ttl(ttl)
        cost = len(k) + len(value)
        if seconds <= 0 or cost > self.max_bytes:
            return False
        self.data[k] = value
        self._expiry[k] = self._clock() + seconds
        self.size += cost
        while len(self.data) > self.max_entries or self.size > self.max_bytes:
            self._drop(next(iter(self.data)))
        return True

    def _drop(self, k: bytes) -> None:
        value = self.data.pop(k)
        del self._expiry[k]
        self.size -= len(k) + len(value)


# -- the workers of one host -------------------------------------------------------------

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the threading lock alone (one process)
    fcntl = None  # type: ignore[assignment]

_HEADER = struct.Struct(">d")  # expiry, seconds since the epoch (shared by processes)


class FileStore:
    """A private directory shared by the workers of one host.

    Each entry is a file named by the SHA-256 of its key (in a subdirectory
    per namespace), holding its expiry (wall-clock time, which every process
    shares) and its value; it is replaced by an atomic rename, so a reader
    sees the old or the new entry, never half of one. Writes take an
    exclusive ``flock`` on ``.lock``, which makes ``add_if_absent`` atomic
    across processes; expired files are swept every few hundred writes.

    :raises ConfigurationError: if the directory cannot be created, or another
        user could write to it (:func:`check_private`).
    """

    def __init__(self, directory: str, namespace: str, *, name: str = "cache") -> None:
        try:
            # 0700: the store holds what we trust. (os.makedirs applies a mode
            # to the leaf only, so the top is made here and checked below.)
            os.makedirs(directory, 0o700, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"{name}: cannot create the directory {directory!r} ({exc.strerror}).") from None
        check_private(directory, name)
        self.directory = os.path.join(directory, namespace)
        try:
            os.makedirs(self.directory, 0o700, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"{name}: cannot create the directory {self.directory!r} ({exc.strerror})."
            ) from None
        check_private(self.directory, name)
        self._lock_path = os.path.join(self.directory, ".lock")
        self._thread_lock = threading.Lock()
        self._writes = 0

    def _path(self, key: Key) -> str:
        return os.path.join(self.directory, hashlib.sha256(_bytes(key)).hexdigest())

    @staticmethod
    def _read(path: str) -> tuple[float, bytes] | None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        if len(data) < _HEADER.size:
            return None
        return _HEADER.unpack_from(data)[0], data[_HEADER.size :]

    def get(self, key: Key) -> bytes | None:
        entry = self._read(self._path(key))
        if entry is None or time.time() >= entry[0]:
            return None
        return entry[1]

    def ttl(self, key: Key) -> float | None:
        """Seconds ``key`` has left, or None if absent."""
        entry = self._read(self._path(key))
        left = entry[0] - time.time() if entry is not None else 0.0
        return left if left > 0 else None

    def set(self, key: Key, value: bytes, ttl: float) -> None:
        with self._locked():
            self._write(self._path(key), value, ttl)

    def add_if_absent(self, key: Key, value: bytes, ttl: float) -> bool:
        path = self._path(key)
        with self._locked():
            entry = self._read(path)
            if entry is not None and time.time() < entry[0]:
                return False
            return self._write(path, value, ttl)

    def delete(self, key: Key) -> None:
        with self._locked():
            self._unlink(self._path(key))

    def _write(self, path: str, value: bytes, ttl: float) -> bool:
        """Under the lock. True if stored."""
        seconds = clamp_ttl(ttl)
        if seconds <= 0:
            self._unlink(path)
            return False
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_HEADER.pack(time.time() + seconds) + value)
            os.replace(tmp, path)
        except BaseException:
            self._unlink(tmp)
            raise
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep()
        return True

    def _sweep(self) -> None:
        """Under the lock: delete expired entries, so ever-new keys cannot fill the disk."""
        now = time.time()
        for entry in os.scandir(self.directory):
            if entry.name.startswith("."):
                continue
            found = self._read(entry.path)
            if found is not None and found[0] <= now:
                self._unlink(entry.path)

    @staticmethod
    def _unlink(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def _locked(self) -> _FileLock:
        return _FileLock(self._lock_path, self._thread_lock)


class _FileLock:
    """The thread lock, then an exclusive ``flock`` on the lock file."""

    def __init__(self, path: str, thread_lock: threading.Lock) -> None:
        self._path = path
        self._thread_lock = thread_lock
        self._fd = -1

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            if fcntl is not None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._release()
            raise

    def __exit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing releases the flock
            self._fd = -1
        self._thread_lock.release()


def check_private(path: str, name: str) -> None:
    """Refuse a store directory that another local user could write to.

    Whoever can write there can plant a key set that every worker then trusts,
    so a directory that already existed is checked, not used as it is: it must
    belong to this process's user and be writable by nobody else.

    :raises ConfigurationError: naming ``name`` and the fix.
    """
    info = os.stat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigurationError(f"{name}: {path!r} is not a directory; name a directory for the cache.")
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    if uid is not None and info.st_uid != uid:
        raise ConfigurationError(
            f"{name}: the cache directory {path!r} belongs to another user (uid {info.st_uid}), who could plant "
            f"keys in it; use a directory owned by the user running the API (uid {uid}), "
            f"e.g. a new one it creates itself."
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigurationError(
            f"{name}: the cache directory {path!r} is writable by other users (mode {stat.S_IMODE(info.st_mode):o}), "
            f"who could plant keys in it; run 'chmod 700 {path}' or use a new directory."
        )


# -- every host --------------------------------------------------------------------------


class RedisStore:
    """Redis (``redis-py`` client): keys ``ccguard:<namespace>:<key>``, each
    with an expiry; ``add_if_absent`` is ``SET key value NX PX ttl``, atomic
    on the server. Errors propagate (wrap in :class:`FailOpen` to fail open).
    """

    def __init__(self, client: Any, namespace: str) -> None:
        self.client = client
        self.prefix = f"{REDIS_PREFIX}{namespace}:".encode()

    def get(self, key: Key) -> bytes | None:
        value: bytes | None = self.client.get(self.prefix + _bytes(key))
        return value

    def set(self, key: Key, value: bytes, ttl: float) -> None:
        ms = int(clamp_ttl(ttl) * 1000)
        if ms <= 0:
            self.client.delete(self.prefix + _bytes(key))
            return
        self.client.set(self.prefix + _bytes(key), value, px=ms)

    def add_if_absent(self, key: Key, value: bytes, ttl: float) -> bool:
        ms = int(clamp_ttl(ttl) * 1000)
        if ms <= 0:
            return False
        return bool(self.client.set(self.prefix + _bytes(key), value, px=ms, nx=True))

    def delete(self, key: Key) -> None:
        self.client.delete(self.prefix + _bytes(key))

    def ttl(self, key: Key) -> float | None:
        """Seconds ``key`` has left, or None if absent (or, never here, without expiry)."""
        ms = self.client.pttl(self.prefix + _bytes(key))
        return ms / 1000 if ms > 0 else None


# -- failing open ------------------------------------------------------------------------


class Guarded:
    """The failure bookkeeping of a store wrapper: a count, and a warning at most
    once a minute (never with the key), shared by :class:`FailOpen` and the
    DPoP replay store's fail-closed wrapper."""

    def __init__(self, inner: ByteStore, label: str) -> None:
        self.inner = inner
        self._label = label
        self._warned = -_WARN_EVERY
        self._lock = threading.Lock()
        #: Failed operations so far.
        self.errors = 0

    def _count_failure(self) -> bool:
        """Count one failure; whether it is time to log a warning about it."""
        with self._lock:
            self.errors += 1
            now = time.monotonic()
            if now - self._warned < _WARN_EVERY:
                return False
            self._warned = now
            return True


class FailOpen(Guarded):
    """A store whose failures are misses, logged as a warning at most once a minute.

    For a cache that only saves work (the HTTP cache): without this a Redis
    outage would make every key fetch fail, and so turn a cache problem into
    503s; the issuer is asked directly instead. ``add_if_absent`` then answers
    True (nothing known to be there) -- so a replay check must NOT use this
    wrapper: it should fail closed on the backend's exception.
    """

    def _failed(self, op: str, exc: Exception) -> None:
        if not self._count_failure():
            return
        log.warning("flask_ccguard: cache %s failed (%s: %s); fetching directly", op, self._label, type(exc).__name__)

    def get(self, key: Key) -> bytes | None:
        try:
            return self.inner.get(key)
        except Exception as exc:
            self._failed("read", exc)
            return None

    def set(self, key: Key, value: bytes, ttl: float) -> None:
        try:
            self.inner.set(key, value, ttl)
        except Exception as exc:
            self._failed("write", exc)

    def add_if_absent(self, key: Key, value: bytes, ttl: float) -> bool:
        try:
            return self.inner.add_if_absent(key, value, ttl)
        except Exception as exc:
            self._failed("write", exc)
            return True

    def delete(self, key: Key) -> None:
        try:
            self.inner.delete(key)
        except Exception as exc:
            self._failed("delete", exc)

    def ttl(self, key: Key) -> float | None:
        """The inner store's ``ttl`` (None if it has none or fails)."""
        try:
            left: float | None = getattr(self.inner, "ttl")(key)  # noqa: B009 - optional method
            return left
        except Exception as exc:
            self._failed("read", exc)
            return None


# -- from a setting ----------------------------------------------------------------------


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return "<unparsable URL>"


def in_process(spec: object) -> bool:
    """Whether a ``CCGUARD_CACHE``-style setting keeps its entries in this process
    (``None``, ``""`` or ``"memory://"``) rather than in a store others share."""
    return spec is None or spec == "" or spec == "memory://"


def open_store(spec: StoreSpec, namespace: str, *, max_entries: int, max_bytes: int, name: str = "cache") -> ByteStore:
    """The store a ``CCGUARD_CACHE``-style setting names, for one use.

    :param spec: ``None``, ``""`` or ``"memory://"`` for a :class:`MemoryStore`
        of the given bounds; ``"file:///var/cache/ccguard"`` for a
        :class:`FileStore`; ``"redis://host:6379/0"`` (or ``rediss://``,
        ``unix://``) for a :class:`RedisStore`.
    :param namespace: the use (``http``, ``introspection``, ``dpop``): a
        subdirectory, or the Redis key prefix ``ccguard:<namespace>:``.
    :param name: the option's name for error messages.
    :raises ConfigurationError: for an unknown scheme, a bad directory or a missing extra.
    """
    if in_process(spec):
        return MemoryStore(max_entries, max_bytes)
    if not isinstance(spec, str):
        raise ConfigurationError(f"{name} must be a cache URL such as 'redis://127.0.0.1:6379/0', or None.")
    scheme = spec.partition("://")[0].lower()
    if scheme == "file":
        parts = urlsplit(spec)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigurationError(f"{name} {spec!r} must name an absolute directory: 'file:///var/cache/ccguard'.")
        return FileStore(parts.path, namespace, name=name)
    if scheme in REDIS_SCHEMES:
        return RedisStore(_redis_client(spec, name), namespace)
    raise ConfigurationError(
        f"{name} {redact(spec)!r} is not supported: use None (this process), "
        "'file:///path/to/dir' (the workers of one host) or 'redis://host:port/db' (many hosts)."
    )


def _redis_client(spec: str, name: str) -> Any:
    try:
        import redis
    except ImportError:
        raise ConfigurationError(
            f"{name}: a Redis cache needs the 'redis' package: pip install 'cachecontrol[redis]'."
        ) from None
    options: dict[str, Any] = {}
    if "socket_timeout" not in spec:
        options["socket_timeout"] = _REDIS_TIMEOUT
    if "socket_connect_timeout" not in spec:
        options["socket_connect_timeout"] = _REDIS_TIMEOUT
    try:
        return redis.Redis.from_url(spec, **options)
    except ValueError:
        raise ConfigurationError(f"{name} {redact(spec)!r} is not a valid Redis URL.") from None
