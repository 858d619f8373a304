"""Where fetched metadata and key sets are cached (RFC 9111 §3): ``CCGUARD_CACHE``.

The HTTP session's CacheControl cache decides whether a fetch reaches the
issuer at all. One per process is the default; a ``file://`` or ``redis://``
cache lets every worker of a host, or every host, share what one of them
fetched, so N workers cost the issuer one key-set request per freshness
lifetime instead of N. Our own :class:`~flask_ccguard.core.jwks.KeySet` still
decides *when* to fetch (cooldown, single flight, unknown-``kid`` refetch).

A shared cache is a trust boundary: whoever can write to it can plant keys.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from email.utils import formatdate
from typing import Any, Union
from urllib.parse import urlsplit, urlunsplit

from cachecontrol.cache import BaseCache, DictCache
from cachecontrol.heuristics import BaseHeuristic

from ..errors import ConfigurationError

__all__ = [
    "MEMORY_CACHE_BYTES",
    "MEMORY_CACHE_ENTRIES",
    "CacheSpec",
    "DefaultFreshness",
    "MemoryCache",
    "make_cache",
    "redact",
]

log = logging.getLogger("flask_ccguard")

CacheSpec = Union[str, BaseCache, None]

REDIS_SCHEMES = ("redis", "rediss", "unix")
#: Prefix of our Redis keys, so a database shared with the application stays tidy.
REDIS_PREFIX = "ccguard:"
# A cache that does not answer within this time is treated as a miss: the
# issuer is asked directly rather than a request waiting on a sick Redis.
_REDIS_TIMEOUT = 1.0
_WARN_EVERY = 60.0
#: Bounds of the in-process cache: responses kept, and their total size.
#: The longest any backend keeps an HTTP response (one day, the key set's cap
#: on an issuer's max-age): a stored key set is checked again at least daily.
MAX_STORE_SECONDS = 86400
MEMORY_CACHE_ENTRIES = 512
MEMORY_CACHE_BYTES = 8 << 20  # 8 MiB


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


def make_cache(spec: CacheSpec, name: str = "cache") -> BaseCache:
    """The CacheControl cache for a ``CCGUARD_CACHE`` value.

    :param spec: ``None``, ``""`` or ``"memory://"`` for this process only;
        ``"file:///var/cache/ccguard"`` for a directory shared by the
        workers of one host; ``"redis://host:6379/0"`` (or ``rediss://``,
        ``unix://``) for every host; or a CacheControl cache object.
    :param name: the option's name for error messages.
    :raises ConfigurationError: for an unknown scheme or a missing extra.
    """
    if spec is None or spec == "" or spec == "memory://":
        return MemoryCache()
    if isinstance(spec, BaseCache):
        return spec
    if not isinstance(spec, str):
        raise ConfigurationError(f"{name} must be a cache URL such as 'redis://127.0.0.1:6379/0', or None.")
    scheme = spec.partition("://")[0].lower()
    if scheme == "file":
        return _file_cache(spec, name)
    if scheme in REDIS_SCHEMES:
        return _redis_cache(spec, name)
    raise ConfigurationError(
        f"{name} {redact(spec)!r} is not supported: use None (this process), "
        "'file:///path/to/dir' (the workers of one host) or 'redis://host:port/db' (many hosts)."
    )


def _file_cache(spec: str, name: str) -> BaseCache:
    parts = urlsplit(spec)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise ConfigurationError(f"{name} {spec!r} must name an absolute directory: 'file:///var/cache/ccguard'.")
    try:
        from cachecontrol.caches.file_cache import FileCache
    except ImportError:  # pragma: no cover - cachecontrol always ships it
        raise ConfigurationError(f"{name}: this cachecontrol has no FileCache.") from None
    try:
        # Files 0600 in 0700 directories: the cache holds the keys we trust.
        # (os.makedirs applies a mode to the leaf only, so the top is made here.)
        os.makedirs(parts.path, 0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"{name}: cannot create the directory {parts.path!r} ({exc.strerror}).") from None
    _check_private(parts.path, name)
    try:
        return _Tolerant(FileCache(parts.path, filemode=0o600, dirmode=0o700), redact(spec))
    except ImportError:
        raise ConfigurationError(
            f"{name}: a file cache needs the 'filelock' package: pip install 'cachecontrol[filecache]'."
        ) from None


def _check_private(path: str, name: str) -> None:
    """Refuse a cache directory that another local user could write to.

    Whoever can write there can plant a key set that every worker then trusts,
    so a directory that already existed is checked, not used as it is: it must
    belong to this process's user and be writable by nobody else.
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


def _redis_cache(spec: str, name: str) -> BaseCache:
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
        client = redis.Redis.from_url(spec, **options)
    except ValueError:
        raise ConfigurationError(f"{name} {redact(spec)!r} is not a valid Redis URL.") from None
    return _Tolerant(_PrefixedRedisCache(client), redact(spec))


class _PrefixedRedisCache(BaseCache):
    """CacheControl's RedisCache protocol, with our key prefix (its keys are
    bare URLs) and ``SET ... EX`` instead of the deprecated ``SETEX``."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def get(self, key: str) -> bytes | None:
        value: bytes | None = self._client.get(REDIS_PREFIX + key)
        return value

    def set(self, key: str, value: bytes, expires: int | datetime | None = None) -> None:
        # Every key expires: an issuer's lifetime is bounded (MAX_STORE_SECONDS).
        self._client.set(REDIS_PREFIX + key, value, ex=max(1, int(_seconds(expires))))

    def delete(self, key: str) -> None:
        self._client.delete(REDIS_PREFIX + key)

    def close(self) -> None:
        """Nothing to do: the client's connection pool is shared."""


class _Tolerant(BaseCache):
    """A shared cache that fails open: an unreachable cache is a miss.

    Without this a Redis outage would make every key fetch fail, and so
    turn a cache problem into 503s; the issuer is asked directly instead.
    """

    def __init__(self, inner: BaseCache, label: str) -> None:
        self.inner = inner
        self._label = label
        self._warned = 0.0
        self._lock = threading.Lock()
        self.errors = 0

    def _failed(self, op: str, exc: Exception) -> None:
        with self._lock:
            self.errors += 1
            now = time.monotonic()
            if now - self._warned < _WARN_EVERY:
                return
            self._warned = now
        log.warning("flask_ccguard: cache %s failed (%s: %s); fetching directly", op, self._label, type(exc).__name__)

    def get(self, key: str) -> bytes | None:
        try:
            return self.inner.get(key)
        except Exception as exc:
            self._failed("read", exc)
            return None

    def set(self, key: str, value: bytes, expires: int | datetime | None = None) -> None:
        try:
            self.inner.set(key, value, expires)
        except Exception as exc:
            self._failed("write", exc)

    def delete(self, key: str) -> None:
        try:
            self.inner.delete(key)
        except Exception as exc:
            self._failed("delete", exc)

    def close(self) -> None:
        try:
            self.inner.close()
        except Exception as exc:
            self._failed("close", exc)


class MemoryCache(DictCache):
    """The in-process cache: least recently used entries go first, within fixed bounds.

    CacheControl's ``DictCache`` keeps every entry for ever, and every URL it
    stores is an entry, so an issuer (or whoever answers in its name) that
    redirects each fetch to a fresh URL on its own origin grew it without
    limit. Here at most ``max_entries`` responses totalling ``max_bytes`` are
    kept, and an entry is dropped once its ``expires`` (RFC 9111 §4.2, as
    CacheControl computes it) has passed. A response larger than the whole
    budget is not stored.
    """

    def __init__(self, max_entries: int = MEMORY_CACHE_ENTRIES, max_bytes: int = MEMORY_CACHE_BYTES) -> None:
        super().__init__()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.data: OrderedDict[str, bytes] = OrderedDict()
        self._expiry: dict[str, float] = {}
        #: Total size of the stored keys and values, in bytes.
        self.size = 0

    def get(self, key: str) -> bytes | None:
        with self.lock:
            value = self.data.get(key)
            if value is None:
                return None
            expiry = self._expiry.get(key)
            if expiry is not None and time.monotonic() >= expiry:
                self._drop(key)
                return None
            self.data.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, expires: int | datetime | None = None) -> None:
        cost = len(key) + len(value)
        with self.lock:
            if key in self.data:
                self._drop(key)
            if cost > self.max_bytes:
                return
            self.data[key] = value
            self.size += cost
            self._expiry[key] = time.monotonic() + _seconds(expires)
            while len(self.data) > self.max_entries or self.size > self.max_bytes:
                self._drop(next(iter(self.data)))

    def delete(self, key: str) -> None:
        with self.lock:
            if key in self.data:
                self._drop(key)

    def _drop(self, key: str) -> None:
        value = self.data.pop(key)
        self._expiry.pop(key, None)
        self.size -= len(key) + len(value)


def _seconds(expires: int | datetime | None) -> float:
    """``expires`` as seconds from now (CacheControl passes either form), at
    most :data:`MAX_STORE_SECONDS`: an issuer's ``max-age`` is its own number,
    so a huge one must neither overflow a float nor pin a response for years."""
    if expires is None:
        return MAX_STORE_SECONDS
    if isinstance(expires, datetime):
        now = datetime.now(expires.tzinfo) if expires.tzinfo else datetime.now(timezone.utc).replace(tzinfo=None)
        expires = int((expires - now).total_seconds())
    return float(min(max(expires, 0), MAX_STORE_SECONDS))


class DefaultFreshness(BaseHeuristic):
    """Heuristic freshness (RFC 9111 §4.2.2) for 200 responses that state none.

    An issuer that sends no ``Cache-Control: max-age`` and no ``Expires``
    leaves nothing a cache may share. We then treat its metadata and key
    set as fresh for ``seconds`` (the key set's own refresh interval), so
    with a shared cache the workers still share one fetch. Explicit
    freshness, ``no-store`` and ``no-cache`` are always honoured as sent.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = int(seconds)

    def update_headers(self, response: Any) -> dict[str, str]:
        if self.seconds <= 0 or response.status != 200:
            return {}
        headers = response.headers
        cc = headers.get("cache-control", "").lower()
        if "max-age" in cc or "no-store" in cc or "no-cache" in cc or "expires" in headers:
            return {}
        extra = {"cache-control": f"{cc}, max-age={self.seconds}" if cc else f"max-age={self.seconds}"}
        if "date" not in headers:  # CacheControl stores nothing without a Date
            extra["date"] = formatdate(usegmt=True)
        return extra

    def warning(self, response: Any) -> str | None:
        return None  # RFC 9111 §5.5 warnings are obsolete; nothing to tell the caller
