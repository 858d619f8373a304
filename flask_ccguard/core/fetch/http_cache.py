"""The cache of HTTP responses -- metadata and key sets (RFC 9111 §3): ``CCGUARD_CACHE``.

The HTTP session's CacheControl cache decides whether a fetch reaches the
issuer at all. One per process is the default; a ``file://`` or ``redis://``
cache lets every worker of a host, or every host, share what one of them
fetched, so N workers cost the issuer one key-set request per freshness
lifetime instead of N. Our own :class:`~flask_ccguard.core.jwks.KeySet` still
decides *when* to fetch (cooldown, single flight, unknown-``kid`` refetch).

A shared cache is a trust boundary: whoever can write to it can plant keys.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import formatdate
from typing import Any, Union

from cachecontrol.cache import BaseCache, DictCache
from cachecontrol.heuristics import BaseHeuristic

from ..errors import ConfigurationError
from ..store import MAX_STORE_SECONDS, REDIS_PREFIX, ByteStore, FailOpen, MemoryStore, in_process, open_store, redact

__all__ = [
    "MAX_STORE_SECONDS",
    "MEMORY_CACHE_BYTES",
    "MEMORY_CACHE_ENTRIES",
    "REDIS_PREFIX",
    "CacheSpec",
    "DefaultFreshness",
    "MemoryCache",
    "ResponseCache",
    "make_cache",
    "redact",
]

CacheSpec = Union[str, BaseCache, None]

#: Bounds of the in-process cache: responses kept, and their total size.
MEMORY_CACHE_ENTRIES = 512
MEMORY_CACHE_BYTES = 8 << 20  # 8 MiB
#: The namespace of HTTP responses in a shared store (Redis keys ``ccguard:http:<url>``).
NAMESPACE = "http"


def make_cache(spec: CacheSpec, name: str = "cache") -> BaseCache:
    """The CacheControl cache for a ``CCGUARD_CACHE`` value.

    :param spec: ``None``, ``""`` or ``"memory://"`` for this process only;
        ``"file:///var/cache/ccguard"`` for a directory shared by the
        workers of one host; ``"redis://host:6379/0"`` (or ``rediss://``,
        ``unix://``) for every host; or a CacheControl cache object.
    :param name: the option's name for error messages.
    :raises ConfigurationError: for an unknown scheme or a missing extra.
    """
    if in_process(spec):
        return MemoryCache()
    if isinstance(spec, BaseCache):
        return spec
    if not isinstance(spec, str):
        raise ConfigurationError(f"{name} must be a cache URL such as 'redis://127.0.0.1:6379/0', or None.")
    store = open_store(spec, NAMESPACE, max_entries=MEMORY_CACHE_ENTRIES, max_bytes=MEMORY_CACHE_BYTES, name=name)
    # A shared cache only saves fetches: when it fails, the issuer is asked directly.
    return ResponseCache(FailOpen(store, redact(spec)))


class ResponseCache(BaseCache):
    """CacheControl's cache of HTTP responses (metadata, key sets) over a
    :class:`~flask_ccguard.core.store.ByteStore`, keyed by URL.

    Every entry expires when CacheControl's ``expires`` (RFC 9111 §4.2) says,
    and at most :data:`MAX_STORE_SECONDS` from now.
    """

    def __init__(self, store: ByteStore) -> None:
        self.store = store

    def get(self, key: str) -> bytes | None:
        return self.store.get(key)

    def set(self, key: str, value: bytes, expires: int | datetime | None = None) -> None:
        self.store.set(key, value, _seconds(expires))

    def delete(self, key: str) -> None:
        self.store.delete(key)

    def close(self) -> None:
        """Nothing to do: a store's connections are shared."""


class MemoryCache(ResponseCache, DictCache):
    """The in-process cache: least recently used entries go first, within fixed bounds.

    CacheControl's ``DictCache`` keeps every entry for ever, and every URL it
    stores is an entry, so an issuer (or whoever answers in its name) that
    redirects each fetch to a fresh URL on its own origin grew it without
    limit. Here at most ``max_entries`` responses totalling ``max_bytes`` are
    kept (a :class:`~flask_ccguard.core.store.MemoryStore`), and an entry is
    dropped once its ``expires`` has passed. A response larger than the whole
    budget is not stored.
    """

    def __init__(self, max_entries: int = MEMORY_CACHE_ENTRIES, max_bytes: int = MEMORY_CACHE_BYTES) -> None:
        self.memory = MemoryStore(max_entries, max_bytes)
        ResponseCache.__init__(self, self.memory)
        # DictCache's attributes, for code that reads them: the store's own.
        self.lock = self.memory.lock
        self.data = self.memory.data  # type: ignore[assignment]

    @property
    def size(self) -> int:
        """Total size of the stored keys and values, in bytes."""
        return self.memory.size


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
