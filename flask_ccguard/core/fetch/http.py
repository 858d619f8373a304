"""Outbound HTTP for metadata and keys: one cached session, hard limits.

Every request made on behalf of the validator goes through :class:`HTTPClient`:
a ``requests`` session wrapped with CacheControl (RFC 9111 caching of
discovery documents and key sets), connect and read timeouts, an overall
deadline that a trickling server cannot stretch, a response-size cap, no
redirect to another origin, and ``https`` for everything but loopback hosts.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from cachecontrol.cache import BaseCache
from cachecontrol.heuristics import BaseHeuristic

from ..._version import __version__
from ..errors import CCGuardBaseError, ConfigurationError
from ..telemetry import NO_TELEMETRY, Telemetry
from .http_cache import MemoryCache
from .transport import Adapter, NotLoopback, Watch, is_loopback_address, watching

__all__ = ["FetchError", "HTTPClient", "JSONResponse", "check_url", "is_loopback", "origin", "url_allowed"]

USER_AGENT = f"flask-ccguard/{__version__}"
DEFAULT_MAX_BYTES = 1 << 20  # 1 MiB: far above any real key set or metadata
_MAX_REDIRECTS = 3
_CHUNK = 16384


class FetchError(CCGuardBaseError):
    """A fetch failed; ``str()`` is safe to log (URL and cause, no secrets)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    """True if ``host`` names this machine's loopback interface only.

    ``localhost`` and loopback addresses (127.0.0.0/8, ``::1``) are; any other
    name (``evil.localhost`` included: RFC 6761 §6.3 asks resolvers to keep
    such names on loopback, but nothing makes them) only if it resolves, and
    every address it resolves to is loopback. Plain ``http`` is allowed to
    these hosts alone, and the connection's peer is checked again once
    connected (:mod:`~flask_ccguard.core.fetch.transport`), since a name may resolve
    differently a moment later.
    """
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    if not host:
        return False
    if is_loopback_address(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return False  # an address, and not a loopback one
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    addresses = {str(info[4][0]) for info in infos}
    return bool(addresses) and all(is_loopback_address(a) for a in addresses)


def check_url(url: str, what: str) -> str:
    """Return ``url`` if it may be fetched, else raise :class:`ConfigurationError`.

    Only ``https`` is allowed, except ``http`` to a loopback host (tests and
    local development); credentials in the URL are refused.
    """
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"{what} must be a non-empty URL string.")
    if not url_allowed(url):
        raise ConfigurationError(
            f"{what} {url!r} is not allowed: use an https:// URL "
            "(plain http is accepted only for loopback hosts such as 127.0.0.1)."
        )
    return url


def url_allowed(url: str) -> bool:
    """True if ``url`` may be fetched: ``https``, or ``http`` to a loopback host
    (:func:`is_loopback`); never with credentials in it."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    if not host or parts.username is not None or parts.password is not None:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and is_loopback(host)


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url`` (RFC 6454 §4), the default port filled in."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def _redirect_target(url: str, resp: requests.Response) -> str:
    """`` to <origin>`` of a redirect's Location, or "": its path and query may
    carry secrets (a code, a signed URL), so only scheme, host and port are shown."""
    location = resp.headers.get("Location")
    if not location:
        return ""
    try:
        parts = urlsplit(urljoin(url, location))
        host, port = parts.hostname, parts.port
    except ValueError:
        return ""
    if not host or parts.scheme not in ("http", "https"):
        return ""
    shown = f"[{host}]" if ":" in host else host
    text = f"{parts.scheme}://{shown}" + (f":{port}" if port is not None else "")
    return " to " + re.sub(r"[^\x21-\x7e]", "?", text)[:200]


class JSONResponse:
    """A fetched JSON object and the freshness lifetime its issuer declared."""

    __slots__ = ("data", "from_cache", "headers", "max_age", "status")

    def __init__(
        self,
        data: Any,
        max_age: int | None,
        status: int,
        from_cache: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.data = data
        self.max_age = max_age
        self.status = status
        #: The answer's headers (the token client reads ``DPoP-Nonce``, RFC 9449 §8).
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        #: True when the HTTP cache answered and the issuer was not contacted
        #: (a ``304`` revalidation contacted it: False).
        self.from_cache = from_cache


def _max_age(headers: Mapping[str, str]) -> int | None:
    cc = headers.get("Cache-Control", "")
    if "no-store" in cc or "no-cache" in cc:
        return None
    for part in cc.split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() == "max-age":
            try:
                # RFC 9111 §1.2.2: a delta-seconds past 2**31 is read as 2**31.
                return min(max(0, int(value.strip('"'))), 1 << 31)
            except ValueError:
                return None
    return None


class HTTPClient:
    """Fetches JSON documents from issuers within fixed limits.

    :param timeout: seconds for connecting and for each read, and the overall
        deadline for one fetch (headers and body together).
    :param max_bytes: the largest body accepted.
    :param cache: a CacheControl cache; a bounded in-process
        :class:`~flask_ccguard.core.fetch.http_cache.MemoryCache` by default.
    :param heuristic: a CacheControl heuristic for responses without caching
        headers (see :class:`~flask_ccguard.core.fetch.http_cache.DefaultFreshness`).
    """

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        cache: BaseCache | None = None,
        heuristic: BaseHeuristic | None = None,
    ) -> None:
        self.timeout = float(timeout)
        self.max_bytes = int(max_bytes)
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        session.headers["Accept"] = "application/json"
        session.trust_env = False  # no proxies or netrc credentials picked up by surprise
        self.cache = cache if cache is not None else MemoryCache()
        adapter = Adapter(self.cache, heuristic=heuristic)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self.session = session
        #: GETs answered by the HTTP cache / by the network, for stats.
        self.cache_hits = 0
        self.network_fetches = 0
        self._count_lock = threading.Lock()
        #: Spans for fetches (:mod:`~flask_ccguard.core.telemetry`); set by the validator.
        self.telemetry: Telemetry = NO_TELEMETRY

    def close(self) -> None:
        self.session.close()

    def forget(self, url: str) -> None:
        """Drop ``url`` from the HTTP cache, e.g. a document that proved unusable,
        so that no other worker sharing the cache is served it."""
        adapter: Any = self.session.get_adapter(url)
        controller = getattr(adapter, "controller", None)
        if controller is not None:
            self.cache.delete(controller.cache_url(url))

    def get_json(self, url: str, *, fresh: bool = False, purpose: str = "document") -> JSONResponse:
        """GET ``url`` and return its JSON body.

        :param fresh: bypass the HTTP cache (``Cache-Control: no-cache``), as
            for a refetch after an unknown key id.
        :param purpose: what is fetched (``metadata``, ``key_set``): names the
            telemetry span ``ccguard.fetch.<purpose>``.
        :raises FetchError: for any failure, with a message safe to log.
        """
        if self.telemetry.active:
            return self._traced(purpose, "GET", url, lambda watch: self._get(url, fresh, watch))
        return self._run_with_deadline(lambda watch: self._get(url, fresh, watch))

    def post_form(
        self,
        url: str,
        data: Mapping[str, str],
        *,
        headers: Mapping[str, str] | None = None,
        purpose: str = "form",
    ) -> JSONResponse:
        """POST a form and return the JSON answer, whatever its status.

        Used for token and introspection endpoints; never cached. ``purpose``
        names the telemetry span, as for :meth:`get_json`.
        """
        return self._post(url, purpose, data=dict(data), headers=dict(headers or {}))

    def post_body(
        self,
        url: str,
        body: bytes,
        *,
        content_type: str,
        headers: Mapping[str, str] | None = None,
        cert: str | tuple[str, str] | None = None,
    ) -> JSONResponse:
        """POST ``body`` verbatim and return the JSON answer, whatever its status.

        The caller encodes the body (a form with repeated names, or JSON), so
        the bytes on the wire are exactly the ones given. Never cached, never
        redirected, within the same deadline and size cap as every fetch.

        :param cert: a client certificate for mutual TLS (RFC 8705 §2), as ``requests``' ``cert=``.
        """
        headers = {**dict(headers or {}), "Content-Type": content_type}
        return self._post(url, None, data=body, headers=headers, cert=cert)

    # -- internals -----------------------------------------------------------------

    def _post(self, url: str, purpose: str | None, **request: Any) -> JSONResponse:
        """POST within the deadline and size cap, never redirected; traced as ``purpose`` unless None."""

        def run(watch: Watch) -> JSONResponse:
            if not url_allowed(url):
                raise FetchError(f"refusing to contact {url!r}: https required")
            resp = self.session.post(
                url, timeout=(self.timeout, self.timeout), allow_redirects=False, stream=True, **request
            )
            return self._read(resp, url, watch, accept_errors=True)

        if purpose is not None and self.telemetry.active:
            return self._traced(purpose, "POST", url, run)
        return self._run_with_deadline(run)

    def _traced(self, purpose: str, method: str, url: str, fn: Any) -> JSONResponse:
        """``_run_with_deadline(fn)`` inside a client span (origin and path only: no query)."""
        with self.telemetry.fetch(purpose, method, url) as found:
            resp = self._run_with_deadline(fn)
            found["http.response.status_code"] = resp.status
            found["ccguard.cache_hit"] = resp.from_cache
            return resp

    def _run_with_deadline(self, fn: Any) -> JSONResponse:
        """Run ``fn`` in a worker so the caller gets an answer by the deadline.

        Per-read timeouts cannot stop a server that sends one byte just before
        each timeout, whether of its headers or its body; when the deadline
        passes every socket of the fetch is shut down (see
        :mod:`~flask_ccguard.core.fetch.transport`), so the worker ends with it.
        """
        watch = Watch(time.monotonic() + self.timeout)
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                with watching(watch):
                    box["result"] = fn(watch)
            except BaseException as exc:  # handed to the caller below
                box["error"] = exc

        worker = threading.Thread(target=work, name="ccguard-fetch", daemon=True)
        worker.start()
        worker.join(self.timeout + 0.05)
        if worker.is_alive():
            watch.abort()
            raise FetchError(f"no complete answer within {self.timeout:g} s")
        if "error" in box:
            exc = box["error"]
            if isinstance(exc, FetchError):
                raise exc
            if isinstance(exc, requests.Timeout):
                raise FetchError(f"timed out after {self.timeout:g} s") from None
            # requests wraps urllib3's MaxRetryError, whose reason is the transport's refusal.
            if isinstance(exc, requests.ConnectionError) and isinstance(
                getattr(exc.args[0] if exc.args else None, "reason", None), NotLoopback
            ):
                raise FetchError("refusing plain http to a host that is not loopback") from None
            if isinstance(exc, requests.RequestException):
                raise FetchError(f"connection failed ({type(exc).__name__})") from None
            raise FetchError(f"fetch failed ({type(exc).__name__})") from None
        result: JSONResponse = box["result"]
        return result

    def _get(self, url: str, fresh: bool, watch: Watch) -> JSONResponse:
        headers = {"Cache-Control": "no-cache"} if fresh else {}
        current = url
        for _ in range(_MAX_REDIRECTS + 1):
            if not url_allowed(current):
                raise FetchError(f"refusing to fetch {current!r}: https required")
            left = watch.deadline - time.monotonic()
            if left <= 0 or watch.aborted:
                raise FetchError(f"{url!r}: no complete answer within {self.timeout:g} s")
            resp = self.session.get(
                current,
                headers=headers,
                timeout=(left, left),
                allow_redirects=False,
                stream=True,
            )
            if resp.is_redirect:
                target = urljoin(current, resp.headers.get("Location", ""))
                resp.close()
                if origin(target) != origin(current):
                    raise FetchError(f"{current!r} redirects to another origin; not followed")
                current = target
                continue
            return self._read(resp, current, watch, accept_errors=False)
        raise FetchError(f"{url!r}: too many redirects")

    def _read(self, resp: requests.Response, url: str, watch: Watch, *, accept_errors: bool) -> JSONResponse:
        # Only a response that never left the cache spares the issuer; a 304
        # revalidation is a request like any other (see _Adapter).
        from_cache = bool(getattr(resp, "from_cache", False)) and not getattr(resp, "ccguard_contacted", True)
        with self._count_lock:
            if from_cache:
                self.cache_hits += 1
            else:
                self.network_fetches += 1
        try:
            if not accept_errors and resp.status_code != 200:
                raise FetchError(f"{url!r} answered HTTP {resp.status_code}", status=resp.status_code)
            if 300 <= resp.status_code < 400:
                # A POST (the token endpoint) is never redirected: say so rather than "not JSON".
                raise FetchError(
                    f"{url!r} answered a redirect (HTTP {resp.status_code}){_redirect_target(url, resp)}; "
                    "redirects are not followed",
                    status=resp.status_code,
                )
            length = resp.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                raise FetchError(f"{url!r}: body larger than {self.max_bytes} bytes")
            body = bytearray()
            for chunk in resp.iter_content(_CHUNK):
                body += chunk
                if len(body) > self.max_bytes:
                    raise FetchError(f"{url!r}: body larger than {self.max_bytes} bytes")
                if time.monotonic() > watch.deadline:
                    raise FetchError(f"{url!r}: no complete answer within {self.timeout:g} s")
        finally:
            resp.close()
        try:
            data = json.loads(bytes(body))
        except (ValueError, RecursionError):
            if resp.request.method == "GET":
                self.forget(url)  # never share garbage through the cache
            raise FetchError(f"{url!r} did not answer JSON", status=resp.status_code) from None
        return JSONResponse(data, _max_age(resp.headers), resp.status_code, from_cache, resp.headers)
