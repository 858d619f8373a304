"""Issuer metadata: OpenID Connect Discovery 1.0 §4, falling back to RFC 8414 §3.

The document's ``issuer`` must equal the configured issuer exactly (OIDC
Discovery §4.3, RFC 8414 §3.3); a document that names another issuer is
refused whole, so nothing in it (least of all its ``jwks_uri``) is used.

One discovery shares one deadline (the client's timeout): the well-known URLs
are tried one after another, each with only the time left, so a hanging
issuer holds a request for about one timeout, not one per URL.
:class:`EndpointFinder` remembers a failure for a cooldown, so a broken
issuer is not asked again for every token.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from .http import FetchError, HTTPClient, JSONResponse, _url_allowed

__all__ = ["DiscoveryError", "EndpointFinder", "discover", "metadata_urls"]

log = logging.getLogger("flask_ccguard")

OIDC_WELL_KNOWN = "/.well-known/openid-configuration"
OAUTH_WELL_KNOWN = "/.well-known/oauth-authorization-server"


class DiscoveryError(Exception):
    """No usable metadata document; ``str()`` is safe to log."""


def metadata_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may be, in the order they are tried.

    1. OIDC Discovery: ``{issuer}/.well-known/openid-configuration``.
    2. RFC 8414 §3.1: the well-known segment inserted between host and path.
    3. RFC 8414 appended to the issuer, as many OAuth servers publish it.
    """
    base = issuer.rstrip("/")
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    inserted = urlunsplit((parts.scheme, parts.netloc, OAUTH_WELL_KNOWN + path, "", ""))
    urls = [base + OIDC_WELL_KNOWN, inserted, base + OAUTH_WELL_KNOWN]
    return list(dict.fromkeys(urls))


def discover(
    http: HTTPClient,
    issuer: str,
    discovery_url: str | None = None,
    *,
    need: str = "jwks_uri",
    deadline: float | None = None,
) -> dict[str, Any]:
    """Fetch and check the issuer's metadata.

    :param discovery_url: one explicit metadata URL instead of the well-knowns.
    :param need: the endpoint member the caller uses (``jwks_uri`` for the
        validator, ``token_endpoint`` for the token client); it must be an
        https URL (http for loopback only).
    :param deadline: a ``time.monotonic()`` instant by which discovery ends,
        whatever the number of URLs tried; default: one ``http.timeout`` from now.
    :raises DiscoveryError: when no candidate yields a document for ``issuer``
        with a usable ``need``.
    """
    if deadline is None:
        deadline = time.monotonic() + http.timeout
    failures = []
    for url in [discovery_url] if discovery_url else metadata_urls(issuer):
        try:
            doc = _get_json_by(http, url, deadline).data
        except FetchError as exc:
            failures.append(str(exc))
            continue
        if not isinstance(doc, dict):
            failures.append(f"{url!r} is not a JSON object")
            continue
        if doc.get("issuer") != issuer:
            # OIDC Discovery §4.3: the issuer value MUST be identical.
            log.warning(
                "flask_ccguard: metadata at %r names issuer %r, not the configured %r; ignored",
                url,
                str(doc.get("issuer"))[:200],
                issuer,
            )
            failures.append(f"{url!r} names another issuer")
            continue
        endpoint = doc.get(need)
        if not isinstance(endpoint, str) or not _url_allowed(endpoint):
            failures.append(f"{url!r} has no usable https {need}")
            continue
        return doc
    raise DiscoveryError(f"no metadata for issuer {issuer!r}: " + "; ".join(failures))


def _get_json_by(http: HTTPClient, url: str, deadline: float) -> JSONResponse:
    """``http.get_json(url)``, given up at ``deadline``.

    The client's own deadline is one full timeout per fetch; a later candidate
    URL gets only what is left of the discovery's. Past the deadline the fetch
    is abandoned to its worker, which the client itself stops within one
    timeout, so the caller is never held longer.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchError(f"{url!r} not tried: the discovery deadline ({http.timeout:g} s in all) has passed")
    if remaining >= http.timeout:
        return http.get_json(url)
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = http.get_json(url)
        except Exception as exc:  # handed to the caller below
            box["error"] = exc

    worker = threading.Thread(target=work, name="ccguard-discovery", daemon=True)
    worker.start()
    worker.join(remaining)
    if worker.is_alive():
        raise FetchError(f"{url!r}: no answer before the discovery deadline ({http.timeout:g} s in all)")
    if "error" in box:
        exc = box["error"]
        raise exc if isinstance(exc, FetchError) else FetchError(f"fetch failed ({type(exc).__name__})")
    result: JSONResponse = box["result"]
    return result


class EndpointFinder:
    """One endpoint of an issuer's metadata, discovered when first needed.

    A success is kept for good (the issuer's endpoints do not move under a
    running API). A failure is remembered for ``cooldown`` seconds, like a
    failed key fetch: until then every caller gets the same
    :class:`DiscoveryError` at once, so a flood of tokens cannot turn an
    issuer's outage into one discovery per token. One thread discovers at a
    time (single flight); the others wait for its answer, at most one deadline.

    :param need: the metadata member wanted, e.g. ``introspection_endpoint``.
    :param cooldown: seconds between discovery attempts after a failure.
    :param clock: ``time.monotonic`` or a test clock.
    """

    def __init__(
        self,
        http: HTTPClient,
        issuer: str,
        discovery_url: str | None,
        need: str,
        *,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._issuer = issuer
        self._discovery_url = discovery_url
        self._need = need
        self._cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._url: str | None = None
        self._failed_at: float | None = None
        self._error: DiscoveryError | None = None
        #: discoveries started (successful or not), for stats and tests
        self.attempts = 0

    def __call__(self) -> str:
        """The endpoint URL.

        :raises DiscoveryError: discovery failed now or within the cooldown.
        """
        url = self._url
        if url is not None:
            return url
        with self._lock:
            if self._url is not None:
                return self._url
            now = self._clock()
            if self._error is not None and self._failed_at is not None and now - self._failed_at < self._cooldown:
                raise self._error
            self.attempts += 1
            try:
                doc = discover(self._http, self._issuer, self._discovery_url, need=self._need)
            except DiscoveryError as exc:
                self._failed_at, self._error = self._clock(), exc
                log.warning("flask_ccguard: cannot discover the %s of %r: %s", self._need, self._issuer, exc)
                raise
            self._url = str(doc[self._need])
            self._error = None
            return self._url
