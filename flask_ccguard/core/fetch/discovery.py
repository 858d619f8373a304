"""Issuer metadata: OpenID Connect Discovery 1.0 §4, falling back to RFC 8414 §3.

The document's ``issuer`` must equal the configured issuer exactly (OIDC
Discovery §4.3, RFC 8414 §3.3); a document that names another issuer is
refused whole, so nothing in it (least of all its ``jwks_uri``) is used.

Metadata cannot aim our fetches anywhere (RFC 8414 §6.2 leaves it to us):
an endpoint it names must be ``https`` when the document was read over https,
and on the issuer's origin (or the configured ``discovery_url``'s) unless the
``allow_cross_origin_metadata`` option allows its origin. Endpoints configured
explicitly are the user's choice and are not checked here.

One discovery shares one deadline (the client's timeout): the well-known URLs
are tried one after another, each with only the time left, so a hanging
issuer holds a request for about one timeout, not one per URL.
:class:`EndpointFinder` remembers a failure for a cooldown, so a broken
issuer is not asked again for every token.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from typing import Any, Callable, Union
from urllib.parse import urlsplit, urlunsplit

from ..errors import CCGuardBaseError, ConfigurationError
from .http import FetchError, HTTPClient, JSONResponse, origin, url_allowed
from .transport import is_loopback_address

__all__ = [
    "CrossOrigin",
    "DiscoveryError",
    "EndpointFinder",
    "check_cross_origin",
    "discover",
    "metadata_urls",
]

log = logging.getLogger("flask_ccguard")

OIDC_WELL_KNOWN = "/.well-known/openid-configuration"
OAUTH_WELL_KNOWN = "/.well-known/oauth-authorization-server"


Origin = tuple[str, str, Union[int, None]]
#: Which other origins metadata may send us to: none (False), any https one
#: (True), or these ``(scheme, host, port)`` origins.
CrossOrigin = Union[bool, frozenset[Origin]]

CROSS_ORIGIN_OPTION = "CCGUARD_ALLOW_CROSS_ORIGIN_METADATA"
#: What to configure instead of discovering each member, for messages.
_CONFIGURE = {
    "jwks_uri": "configure jwks_uri (CCGUARD_JWKS_URI)",
    "introspection_endpoint": "configure the issuer's introspection['endpoint']",
    "token_endpoint": "configure the token URL",
}


class DiscoveryError(CCGuardBaseError):
    """No usable metadata document; ``str()`` is safe to log.

    :attr:`dead_end` is True when every candidate gave a definite answer (a
    document without a usable member, another issuer, a 4xx) and none was a
    network failure, timeout or 5xx: the member cannot be had by discovery,
    which is a configuration matter, not an outage.
    """

    def __init__(self, message: str, *, dead_end: bool = False) -> None:
        super().__init__(message)
        self.dead_end = dead_end


def check_cross_origin(value: Any, name: str) -> CrossOrigin:
    """The ``allow_cross_origin_metadata`` option: False, True, or a list of origins.

    :raises ConfigurationError: naming ``name`` and the accepted forms.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        value = [value]
    problem = (
        f"{name} must be False, True (any https origin) or a list of origins such as ['https://www.googleapis.com']"
    )
    if not isinstance(value, (list, tuple, set, frozenset)) or not value:
        raise ConfigurationError(problem + f" (got {value!r}).")
    origins = set()
    for item in value:
        try:
            parts = urlsplit(item) if isinstance(item, str) else None
        except ValueError:
            parts = None
        found = _origin_of(item) if isinstance(item, str) else None
        if found is None or parts is None or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigurationError(problem + f"; {item!r} is not an https origin (scheme://host[:port]).")
        origins.add(found)
    return frozenset(origins)


def _origin_of(url: str) -> Origin | None:
    """The (scheme, host, port) of a URL we may fetch (:func:`url_allowed`), or None."""
    return _named_origin(url) if url_allowed(url) else None


def _configure(need: str) -> str:
    fix = _CONFIGURE.get(need, "configure it")
    return fix[0].upper() + fix[1:]


def _named_origin(url: str) -> Origin | None:
    """The (scheme, host, port) of an http(s) URL without credentials, or None.

    Never resolves a host name: a discovered document is judged in the
    caller's thread, outside any fetch's deadline, and a name an attacker's
    document holds could take the resolver's whole timeout.
    """
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        if parts.username is not None or parts.password is not None:
            return None
        return origin(url)
    except ValueError:  # a bad port
        return None


def _refusal(
    url: str, endpoint: str, need: str, issuer: str, discovery_url: str | None, cross_origin: CrossOrigin
) -> str | None:
    """Why the ``need`` endpoint a document at ``url`` names is not used, or None.

    No host name is resolved here (see :func:`_named_origin`); the fetch of
    the endpoint checks it again, within its deadline.
    """
    target = _named_origin(endpoint)
    if target is None:
        return f"{url!r} has no usable https {need}"
    if urlsplit(url).scheme == "https" and target[0] != "https":
        # Never downgraded: metadata read over https sending us to http (even
        # on loopback) would be a blind request into our own host. Only a
        # plain-http loopback document, configured by the user, names http.
        return f"{url!r} names a plain-http {need}; metadata read over https must name https; not used"
    # The configured URLs passed check_url at start-up: an http one is loopback.
    trusted = {_named_origin(u) for u in (issuer, discovery_url) if u is not None} - {None}
    if (
        target[0] == "http"
        and target not in trusted
        and not (target[1] == "localhost" or is_loopback_address(target[1]))
    ):
        # Plain http on another origin: only to a loopback address or
        # localhost, as written (a name that merely resolves to loopback
        # would need a lookup here).
        return f"{url!r} has no usable https {need}"
    if target in trusted or cross_origin is True or (cross_origin and target in cross_origin):
        return None
    shown = f"{target[0]}://{target[1]}" + (f":{target[2]}" if target[2] not in (None, 80, 443) else "")
    return (
        f"{url!r} names a {need} on another origin ({shown}) than the issuer's; not used. "
        f"{_configure(need)} explicitly, or allow that origin with "
        f"{CROSS_ORIGIN_OPTION} (or 'allow_cross_origin_metadata' in the issuer's dict)"
    )


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


def issuer_near_miss(found: object, configured: str) -> str | None:
    """How ``found`` differs from ``configured`` when it is only by a trailing
    slash or letter case (a common misconfiguration), else None.

    Still a mismatch: issuers compare exactly (OIDC Discovery §4.3, RFC 9068 §4).
    """
    if not isinstance(found, str) or found == configured:
        return None
    if found.rstrip("/") == configured.rstrip("/"):
        return "a trailing slash"
    if found.rstrip("/").lower() == configured.rstrip("/").lower():
        return "letter case" if len(found) == len(configured) else "a trailing slash and letter case"
    return None


def discover(
    http: HTTPClient,
    issuer: str,
    discovery_url: str | None = None,
    *,
    need: str = "jwks_uri",
    deadline: float | None = None,
    cross_origin: CrossOrigin = False,
    fresh: bool = False,
) -> dict[str, Any]:
    """Fetch and check the issuer's metadata.

    :param discovery_url: one explicit metadata URL instead of the well-knowns.
    :param need: the endpoint member the caller uses (``jwks_uri`` for the
        validator, ``token_endpoint`` for the token client); it must be an
        https URL (http for loopback only).
    :param deadline: a ``time.monotonic()`` instant by which discovery ends,
        whatever the number of URLs tried; default: one ``http.timeout`` from now.
    :param cross_origin: the origins, besides the issuer's and the
        ``discovery_url``'s, that the ``need`` endpoint may be on
        (see :func:`check_cross_origin`).
    :param fresh: bypass the HTTP cache, as after a failure that the cached
        document may have caused (a ``jwks_uri`` the issuer has moved).
    :raises DiscoveryError: when no candidate yields a document for ``issuer``
        with a usable ``need``.
    """
    if deadline is None:
        deadline = time.monotonic() + http.timeout
    failures = []
    transient = False  # a failure that may pass: then this is an outage, not a dead end
    for url in [discovery_url] if discovery_url else metadata_urls(issuer):
        try:
            doc = _get_json_by(http, url, deadline, fresh=fresh).data
        except FetchError as exc:
            failures.append(str(exc))
            transient = transient or exc.status is None or not 400 <= exc.status < 500 or exc.status == 429
            continue
        if not isinstance(doc, dict):
            failures.append(f"{url!r} is not a JSON object")
            continue
        if doc.get("issuer") != issuer:
            # OIDC Discovery §4.3: the issuer value MUST be identical.
            near = issuer_near_miss(doc.get("issuer"), issuer)
            log.warning(
                "flask_ccguard: metadata at %r names issuer %r, not the configured %r; ignored%s",
                url,
                str(doc.get("issuer"))[:200],
                issuer,
                f" (they differ only by {near}: configure the issuer exactly as the document names it)" if near else "",
            )
            failures.append(f"{url!r} names another issuer")
            continue
        endpoint = doc.get(need)
        if not isinstance(endpoint, str):
            # The caller's member, not any: an OpenID document without an
            # introspection_endpoint (or an RFC 8414 one without jwks_uri, as
            # opaque-token servers publish) sends us on to the next candidate.
            failures.append(f"{url!r} names no {need}")
            continue
        refusal = _refusal(url, endpoint, need, issuer, discovery_url, cross_origin)
        if refusal is not None:
            failures.append(refusal)
            continue
        return doc
    if not transient:
        failures.append(_CONFIGURE.get(need, "configure it") + " to use this issuer")
    raise DiscoveryError(f"no metadata for issuer {issuer!r}: " + "; ".join(failures), dead_end=not transient)


def _get_json_by(http: HTTPClient, url: str, deadline: float, *, fresh: bool = False) -> JSONResponse:
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
        return http.get_json(url, fresh=fresh, purpose="metadata")
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = http.get_json(url, fresh=fresh, purpose="metadata")
        except Exception as exc:  # handed to the caller below
            box["error"] = exc

    # In a copy of this context, so that the fetch's telemetry span has the caller's as its parent.
    worker = threading.Thread(
        target=contextvars.copy_context().run, args=(work,), name="ccguard-discovery", daemon=True
    )
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
    :param cross_origin: see :func:`discover`.
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
        cross_origin: CrossOrigin = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._cross_origin = cross_origin
        self._issuer = issuer
        self._discovery_url = discovery_url
        self._need = need
        self._cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._url: str | None = None
        self._failed_at: float | None = None
        self._error: DiscoveryError | None = None
        self._dead_end_logged = False
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
                doc = discover(
                    self._http, self._issuer, self._discovery_url, need=self._need, cross_origin=self._cross_origin
                )
            except DiscoveryError as exc:
                self._failed_at, self._error = self._clock(), exc
                if not exc.dead_end:
                    log.warning("flask_ccguard: cannot discover the %s of %r: %s", self._need, self._issuer, exc)
                elif not self._dead_end_logged:
                    # Configuration, not an outage: said once, with the fix.
                    self._dead_end_logged = True
                    log.error(
                        "flask_ccguard: the %s of %r cannot be discovered, a configuration matter "
                        "rather than an outage: %s",
                        self._need,
                        self._issuer,
                        exc,
                    )
                else:
                    log.debug("flask_ccguard: the %s of %r still cannot be discovered", self._need, self._issuer)
                raise
            self._url = str(doc[self._need])
            self._error = None
            return self._url
