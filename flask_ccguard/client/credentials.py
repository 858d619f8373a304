"""Client-credentials token client (RFC 6749 §4.4) that caches its token and is a ``requests`` auth.

One :class:`ClientCredentials` holds one client's token until shortly before
it expires (absolute expiry computed at receipt, as IBM's guide advises);
concurrent callers share one token request; as a ``requests`` auth
(:class:`~.auth.RenewingBearerAuth`) a resource's 401 ``invalid_token``
challenge fetches a fresh token and retries once. The client
secret is never part of ``repr``, log records or exception text.

HTTP Basic credentials are encoded as RFC 6749 §2.3.1 says (form-encoded,
then base64); servers that expect them raw refuse a secret holding ``:``,
``%``, ``+`` or a space. With ``basic_encoding="auto"`` (the default) such a
refusal is answered by one more request with the raw encoding, and what worked
is remembered per token URL.

With ``dpop=True`` (RFC 9449) the client holds a key pair, sends a ``DPoP``
proof with each token request (§5) and one with every request it
authenticates (§7.1); with ``cert=`` it presents a client certificate to the
token endpoint (RFC 8705 §2), which may then bind the token to it (§3).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Callable
from urllib.parse import quote, quote_plus, urlencode

from ..core.errors import ConfigurationError
from ..core.fetch.basic_auth import (
    BASIC_ENCODING_OPTIONS,
    basic_authorization,
    encodings_differ,
    form_encode,
    remember_encoding,
    remembered_encoding,
)
from ..core.fetch.discovery import DiscoveryError, discover
from ..core.fetch.http import FetchError, HTTPClient, JSONResponse, check_url
from ..core.numbers import bounded_number
from .auth import RenewingBearerAuth, origin
from .dpop import DPoPKey
from .token_response import TokenRequestError, parse_token_response

__all__ = [
    "AUTH_METHODS",
    "BASIC_ENCODING_OPTIONS",
    "TLS_AUTH_METHODS",
    "ClientCredentials",
    "TokenRequestError",
    "redact_secret",
]

log = logging.getLogger("flask_ccguard")

#: ``client_secret_post`` and ``client_secret_basic`` (RFC 6749 §2.3.1), and
#: ``json``: every parameter in a JSON body, as Aidbox accepts it.
AUTH_METHODS = ("client_secret_post", "client_secret_basic", "json")
#: RFC 8705 §2: the client authenticates with its TLS certificate (``cert=``);
#: the body carries ``client_id`` and no secret.
TLS_AUTH_METHODS = ("tls_client_auth", "self_signed_tls_client_auth")
_RESERVED = frozenset({"grant_type", "client_id", "client_secret"})


def redact_secret(text: str, client_id: str, secret: str) -> str:
    """``text`` with ``secret`` replaced by ``***`` in every form the token client sends it.

    An endpoint may echo the request in its error description: the body
    (form-encoded, RFC 6749 Appendix B, or JSON), the ``Authorization``
    header (base64 of either Basic encoding, RFC 6749 §2.3.1 / RFC 7617 §2),
    or the pair decoded. Every one of those forms is removed, longest first so
    that no form is cut by a shorter one inside it.
    """
    forms = {
        secret,
        quote_plus(secret),  # urlencode(), the client_secret_post body
        form_encode(secret),  # RFC 6749 Appendix B, in Basic
        quote(secret, safe=""),
        json.dumps(secret)[1:-1],  # the json body
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),  # JSON writers that escape "/"
    }
    for encoding in ("rfc6749", "raw"):
        # The header value as sent; its base64 part carries the secret whole.
        with contextlib.suppress(ValueError):  # raw cannot encode an id holding ":"
            forms.add(basic_authorization(client_id, secret, encoding).partition(" ")[2])
    for form in sorted(forms, key=len, reverse=True):
        if form:
            text = text.replace(form, "***")
    return text


def _client_refused(exc: TokenRequestError) -> bool:
    """An answer that says the client's credentials were not accepted (RFC 6749
    §5.2 ``invalid_client``; glewlwyd answers a bare 401 or 403)."""
    return exc.error == "invalid_client" or (exc.error is None and exc.status in (401, 403))


class _Secret:
    """Holds the client secret; its ``repr`` hides it, so dumps of the
    client's ``__dict__`` (debuggers, error trackers) do not show it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "'***'"


class _Token:
    __slots__ = ("access_token", "refresh_at", "response")

    def __init__(self, access_token: str, response: dict[str, Any], refresh_at: float) -> None:
        self.access_token = access_token
        self.response = response
        self.refresh_at = refresh_at


class _Flight:
    """One token request under way; the threads that wait for it share its outcome."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: _Token | None = None
        self.error: TokenRequestError | None = None


def _strings(value: str | Iterable[str] | None, name: str) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(v, str) and v for v in items):
        raise ConfigurationError(f"{name} must be a non-empty string or a list of them.")
    return items


class ClientCredentials(RenewingBearerAuth):
    """Gets, caches and attaches a client-credentials access token.

    :param token_url: the token endpoint (https; http only for loopback hosts).
    :param scope: requested scope(s), sent space-separated.
    :param resource: RFC 8707 resource indicator(s); Azure AD v1's ``resource``.
    :param audience: requested audience (Aidbox, Auth0).
    :param auth_method: one of :data:`AUTH_METHODS`, or with ``cert`` one of
        :data:`TLS_AUTH_METHODS` (RFC 8705 §2; ``client_secret`` is then None).
    :param basic_encoding: for ``client_secret_basic``, one of
        :data:`BASIC_ENCODING_OPTIONS`: ``rfc6749`` (form-encode, then base64,
        RFC 6749 §2.3.1), ``raw`` (base64 of ``id:secret`` as they are, which
        some servers expect) or ``auto``: ``rfc6749``, and when the client is
        refused and the raw form differs, one more request ``raw``; what got
        a token is used first for that token URL from then on.
    :param extra_params: further token-request parameters.
    :param timeout: seconds for the whole token request.
    :param margin: seconds before expiry at which a token is replaced (at most
        half its lifetime, so short-lived tokens are still reused).
    :param default_lifetime: seconds to keep a token that states neither
        ``expires_in`` nor a JWT ``exp`` (Aidbox opaque tokens).
    :param http: an :class:`HTTPClient` to share; ``timeout`` is then its own.
    :param clock: seconds since the epoch (for tests).
    :param dpop: True to request DPoP-bound tokens (RFC 9449 §5) with a P-256
        key made for this client object (ES256), or a :class:`~.dpop.DPoPKey`
        or ``cryptography`` private key to use instead. The token endpoint
        must answer ``token_type`` ``DPoP``: a ``Bearer`` answer (an issuer
        that ignored the proof) is refused rather than silently used
        unbound. As a ``requests`` auth the client then sends
        ``Authorization: DPoP`` and a fresh proof with every request.
    :param cert: a client certificate for the token request (mutual TLS,
        RFC 8705): a PEM file holding certificate and key, or a
        ``(certfile, keyfile)`` pair, as ``requests``' ``cert=``. A
        ``requests`` auth cannot choose the connection's certificate: pass
        the same ``cert=`` to ``requests`` for calls to the resource.
    :raises ConfigurationError: for a wrong option.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | None,
        *,
        scope: str | Iterable[str] | None = None,
        resource: str | Iterable[str] | None = None,
        audience: str | None = None,
        auth_method: str = "client_secret_post",
        basic_encoding: str = "auto",
        extra_params: Mapping[str, str] | None = None,
        timeout: float = 5,
        margin: float = 30,
        default_lifetime: float = 300,
        http: HTTPClient | None = None,
        clock: Callable[[], float] = time.time,
        dpop: bool | DPoPKey | Any = False,
        cert: str | tuple[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.token_url = check_url(token_url, "token_url")
        if not isinstance(client_id, str) or not client_id:
            raise ConfigurationError("client_id must be the client's non-empty identifier.")
        tls = auth_method in TLS_AUTH_METHODS
        if tls:
            if cert is None:
                raise ConfigurationError(f"auth_method={auth_method!r} needs cert=(certfile, keyfile) (RFC 8705 §2).")
            if client_secret is not None:
                raise ConfigurationError(f"auth_method={auth_method!r} sends no secret: pass client_secret=None.")
        elif not isinstance(client_secret, str) or not client_secret:
            raise ConfigurationError("client_secret must be the client's non-empty secret.")
        elif auth_method not in AUTH_METHODS:
            raise ConfigurationError(
                f"auth_method must be one of {', '.join(AUTH_METHODS + TLS_AUTH_METHODS)} (got {auth_method!r})."
            )
        if cert is not None and not (
            (isinstance(cert, str) and cert)
            or (isinstance(cert, tuple) and len(cert) == 2 and all(isinstance(c, str) and c for c in cert))
        ):
            raise ConfigurationError("cert must be a PEM file name or a (certfile, keyfile) pair.")
        for name in [cert] if isinstance(cert, str) else cert or ():
            if not os.path.isfile(name):
                raise ConfigurationError(f"cert: no such file {name!r} (the client certificate and its key, PEM).")
        if dpop is True:
            self.dpop_key = DPoPKey()
        elif isinstance(dpop, DPoPKey):
            self.dpop_key = dpop
        elif dpop is not False and dpop is not None:
            self.dpop_key = DPoPKey(dpop)  # raises ConfigurationError for anything else
        self.cert = cert
        if basic_encoding not in BASIC_ENCODING_OPTIONS:
            raise ConfigurationError(
                f"basic_encoding must be one of {', '.join(BASIC_ENCODING_OPTIONS)} (got {basic_encoding!r})."
            )
        if basic_encoding == "raw" and ":" in client_id:
            raise ConfigurationError(
                "basic_encoding='raw' cannot send a client_id containing ':' (RFC 7617 §2); use 'rfc6749'."
            )
        if audience is not None and (not isinstance(audience, str) or not audience):
            raise ConfigurationError("audience must be a non-empty string.")
        extra = dict(extra_params or {})
        if _RESERVED & set(extra):
            raise ConfigurationError(f"extra_params may not set {sorted(_RESERVED & set(extra))}; they are arguments.")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
            raise ConfigurationError("extra_params must map parameter names to strings.")
        for value, name in ((timeout, "timeout"), (margin, "margin"), (default_lifetime, "default_lifetime")):
            seconds = bounded_number(value)
            if seconds is None or seconds < 0:
                raise ConfigurationError(f"{name} must be a number of seconds, 0 or more (got {value!r}).")
        if http is None and not timeout > 0:
            raise ConfigurationError("timeout must be more than 0 seconds.")
        self.client_id = client_id
        self._secret = _Secret(client_secret or "")
        self.scope = " ".join(_strings(scope, "scope")) or None
        self.resource = tuple(_strings(resource, "resource"))
        self.audience = audience
        self.auth_method = auth_method
        self.basic_encoding = basic_encoding
        self.extra_params = extra
        self.margin = float(margin)
        self.default_lifetime = float(default_lifetime)
        self._owns_http = http is None
        self._http = http if http is not None else HTTPClient(timeout=timeout)
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: _Token | None = None
        self._flight: _Flight | None = None
        #: token requests sent (successful or not), for stats and tests
        self.requests_sent = 0

    @classmethod
    def from_issuer(
        cls, issuer: str, client_id: str, client_secret: str | None, *, discovery_url: str | None = None, **kw: Any
    ) -> ClientCredentials:
        """A client whose token endpoint comes from the issuer's metadata.

        OIDC Discovery / RFC 8414: the document must name ``issuer`` exactly.

        :raises TokenRequestError: no metadata with a usable ``token_endpoint``.
        """
        check_url(issuer, "issuer")
        http = kw.pop("http", None) or HTTPClient(timeout=kw.get("timeout", 5))
        try:
            # A client goes where its issuer's metadata says (Google's token
            # endpoint is on oauth2.googleapis.com); only never down to http.
            doc = discover(http, issuer, discovery_url, need="token_endpoint", cross_origin=True)
        except DiscoveryError as exc:
            raise TokenRequestError(None, str(exc)) from None
        client = cls(doc["token_endpoint"], client_id, client_secret, http=http, **kw)
        client._owns_http = True
        return client

    def __repr__(self) -> str:
        return (
            f"ClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"auth_method={self.auth_method!r}, dpop={self.dpop_key is not None})"
        )

    def close(self) -> None:
        """Close the HTTP session this client made for itself."""
        if self._owns_http:
            self._http.close()

    # -- tokens ----------------------------------------------------------------------

    def token(self) -> str:
        """The current access token, fetched if there is none or it is about to expire.

        :raises TokenRequestError: the token endpoint refused or did not answer.
        """
        return self._current().access_token

    def token_response(self) -> dict[str, Any]:
        """The token endpoint's whole answer for the current token (a copy)."""
        return dict(self._current().response)

    def invalidate(self, token: str | None = None) -> bool:
        """Forget the cached token (only if it is ``token``, when given), so the
        next :meth:`token` fetches a new one. A token another thread has
        already replaced is left alone, so a burst of 401s costs one request.

        :returns: False when ``token`` was not the cached one (nothing dropped).
        """
        with self._lock:
            if self._cached is not None and (token is None or self._cached.access_token == token):
                self._cached = None
                return True
            return token is None

    def _current(self) -> _Token:
        with self._lock:
            cached = self._cached
            if cached is not None and self._clock() < cached.refresh_at:
                return cached
            flight = self._flight
            leader = flight is None
            if flight is None:
                flight = self._flight = _Flight()
        if not leader:
            # Single flight: wait for the request(s) under way (each ends by its deadline).
            if not flight.done.wait(2 * self._http.timeout + 5):
                raise TokenRequestError(None, "timed out waiting for the token request under way")
            if flight.result is not None:
                return flight.result
            err = flight.error or TokenRequestError(None, "the token request failed")
            raise TokenRequestError(err.error, err.error_description, err.status, hint=err.hint)
        try:
            flight.result = self._fetch()
            return flight.result
        except TokenRequestError as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                if flight.result is not None:
                    self._cached = flight.result
                self._flight = None
            flight.done.set()

    def _encode(self, basic_encoding: str | None) -> tuple[bytes, str, dict[str, str]]:
        """The request body, its media type and headers for :attr:`auth_method`."""
        headers: dict[str, str] = {}
        if self.auth_method == "json":
            doc: dict[str, Any] = {
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self._secret.value,
            }
            if self.scope:
                doc["scope"] = self.scope
            if self.resource:
                doc["resource"] = self.resource[0] if len(self.resource) == 1 else list(self.resource)
            if self.audience:
                doc["audience"] = self.audience
            doc.update(self.extra_params)
            return json.dumps(doc, separators=(",", ":")).encode("utf-8"), "application/json", headers
        params = [("grant_type", "client_credentials")]
        if self.auth_method in TLS_AUTH_METHODS:
            params.append(("client_id", self.client_id))  # RFC 8705 §2: the certificate authenticates
        elif self.auth_method == "client_secret_basic":
            headers["Authorization"] = basic_authorization(
                self.client_id, self._secret.value, basic_encoding or "rfc6749"
            )
        else:
            params += [("client_id", self.client_id), ("client_secret", self._secret.value)]
        if self.scope:
            params.append(("scope", self.scope))
        params += [("resource", r) for r in self.resource]  # RFC 8707 §2: repeatable
        if self.audience:
            params.append(("audience", self.audience))
        params += list(self.extra_params.items())
        return urlencode(params).encode("ascii"), "application/x-www-form-urlencoded", headers

    def _redact(self, text: str) -> str:
        if not self._secret.value:
            return text
        return redact_secret(text, self.client_id, self._secret.value)

    def _basic_encodings(self) -> list[str | None]:
        """The Basic encodings to try, in order (``[None]`` for other methods)."""
        if self.auth_method != "client_secret_basic":
            return [None]
        if self.basic_encoding != "auto":
            return [self.basic_encoding]
        if not encodings_differ(self.client_id, self._secret.value):
            return ["rfc6749"]  # raw is impossible, or the same bytes: nothing to retry
        return ["raw", "rfc6749"] if remembered_encoding(self.token_url) == "raw" else ["rfc6749", "raw"]

    def _fetch(self) -> _Token:
        encodings = self._basic_encodings()
        for index, encoding in enumerate(encodings):
            try:
                token = self._fetch_once(encoding)
            except TokenRequestError as exc:
                if not _client_refused(exc) or encoding is None:
                    raise
                if index + 1 < len(encodings):
                    log.debug(
                        "flask_ccguard: %r refused the %s Basic encoding; trying the other", self.token_url, encoding
                    )
                    continue
                exc.hint = self._basic_hint(encodings)
                raise
            if encoding is not None and self.basic_encoding == "auto":
                remember_encoding(self.token_url, encoding)
            return token
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    def _basic_hint(self, tried: list[str | None]) -> str | None:
        """What to change when HTTP Basic credentials were refused (see docs/client.rst, "Token client")."""
        if len(tried) == 2:
            return (
                "the client id and secret were refused both RFC 6749-encoded and raw over HTTP Basic: "
                "check them, or try auth_method='client_secret_post'"
            )
        if self.basic_encoding == "auto" or not encodings_differ(self.client_id, self._secret.value):
            return None  # nothing in the credentials for the two encodings to disagree on
        other = "raw" if self.basic_encoding == "rfc6749" else "rfc6749"
        return f"if the secret is right, this server may expect basic_encoding={other!r} (or 'auto')"

    def _fetch_once(self, basic_encoding: str | None) -> _Token:
        body, media_type, headers = self._encode(basic_encoding)
        sent_at = self._clock()  # expiry counts from before the request: never late
        where = origin(self.token_url)
        for attempt in (1, 2):
            if self.dpop_key is not None:
                nonce = self.nonce_for(where)
                headers["DPoP"] = self.dpop_key.proof("POST", self.token_url, nonce=nonce)  # RFC 9449 §5
            self.requests_sent += 1
            answer = self._post(body, media_type, headers)
            if self.dpop_key is None:
                break
            self.remember_nonce(where, answer.headers.get("DPoP-Nonce"))
            # RFC 9449 §8: the server demands a nonce; once more with it, never more.
            data = answer.data
            asked_nonce = answer.status == 400 and isinstance(data, dict) and data.get("error") == "use_dpop_nonce"
            if not (asked_nonce and attempt == 1 and answer.headers.get("DPoP-Nonce")):
                break
        access, data, lifetime = parse_token_response(
            answer.status,
            answer.data,
            sent_at,
            self._redact,
            token_type="DPoP" if self.dpop_key is not None else "Bearer",
        )
        if lifetime is None:
            lifetime = self.default_lifetime
        refresh_at = sent_at + lifetime - min(self.margin, lifetime / 2)
        log.debug("flask_ccguard: got a token from %r for %r, valid %d s", self.token_url, self.client_id, lifetime)
        return _Token(access, data, refresh_at)

    def _post(self, body: bytes, media_type: str, headers: dict[str, str]) -> JSONResponse:
        """POST to the token endpoint within the HTTP client's deadline and size cap,
        with the client certificate if any; its answer's headers carry a DPoP
        ``DPoP-Nonce`` (RFC 9449 §8)."""
        try:
            return self._http.post_body(self.token_url, body, content_type=media_type, headers=headers, cert=self.cert)
        except FetchError as exc:
            raise TokenRequestError(None, str(exc), exc.status) from None
