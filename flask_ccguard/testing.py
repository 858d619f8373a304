"""A real local OpenID issuer over loopback HTTP, and its pytest plugin.

:class:`TestIssuer` serves OpenID Connect Discovery 1.0 §4 and RFC 8414 §3
metadata, a JWKS (RFC 7517 §5) and a client-credentials token endpoint
(RFC 6749 §4.4, errors per §5.2) on ``127.0.0.1`` at an ephemeral port. It
signs its tokens (RFC 7515 compact JWS, RFC 9068 ``at+jwt``) with
``cryptography`` directly and never uses flask_ccguard's own validator, so it
stays an independent check of it.

pytest plugin
-------------
The fixture ``ccguard_issuer`` yields a started :class:`TestIssuer` publishing
RS256, ES256, PS256 and EdDSA keys, and stops it afterwards. Its token
endpoint accepts the client id ``test-client`` with the secret
``test-secret`` (``client_secret_post`` or ``client_secret_basic``); the
tokens it issues carry ``sub`` and ``client_id`` ``test-client``. Configure
the app under test from :meth:`TestIssuer.app_config`, which also turns off
the unknown-``kid`` refetch cooldown so that a token minted after
:meth:`TestIssuer.rotate_keys` is accepted at once::

    def test_list_assets(ccguard_issuer):
        app = create_app(ccguard_issuer.app_config())
        ccguard_issuer.rotate_keys()
        token = ccguard_issuer.mint(roles=["guest"])
        ...

When flask-ccguard is installed, the ``pytest11`` entry point ``ccguard``
registers this module and the fixture is there in every test session.

A checkout run with ``PYTHONPATH=. pytest`` has no entry point, so the
project's ``tests/conftest.py`` imports the fixture instead::

    from flask_ccguard.testing import ccguard_issuer  # noqa: F401

We do *not* use ``pytest_plugins = ["flask_ccguard.testing"]`` there: when the
package is also installed (tox), pytest would register this one module under
two names (``ccguard`` and ``flask_ccguard.testing``) and abort with "Plugin
already registered under a different name". An imported fixture is only a
conftest-level definition of the same function, which works in both cases.

pytest is imported only if it is installed, so this module also works without
it.
"""

from __future__ import annotations

import collections
import enum
import hmac
import http
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from werkzeug.datastructures import EnvironHeaders
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ._testing import token_request
from ._testing.jws import (
    SUPPORTED_ALGORITHMS,
    PrivateKey,
    SigningKey,
    check_alg,
    compact,
    hmac_signer,
    json_bytes,
)
from ._testing.token_request import OAuthError

__all__ = ["SUPPORTED_ALGORITHMS", "RecordedRequest", "TestIssuer"]

_StartResponse = Callable[..., Any]
_Headers = list[tuple[str, str]]


class RecordedRequest(NamedTuple):
    """One request as the issuer received it (``path`` includes the query)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Default(enum.Enum):
    KID = "current key's kid"


class _QuietHandler(WSGIRequestHandler):
    # One request per connection: stop() then leaves no keep-alive
    # connection being served behind the closed listening socket.
    protocol_version = "HTTP/1.0"

    def log(self, type: str, message: str, *args: Any) -> None:
        pass


def _no_signature(data: bytes) -> bytes:
    return b""  # RFC 7518 §3.6: an Unsecured JWS has an empty signature


def _merge(base: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` updated by ``extra``, where a value of None removes the member."""
    for name, value in (extra or {}).items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


class TestIssuer:
    """A local OpenID issuer on ``127.0.0.1`` at an ephemeral port.

    :param audience: default ``aud`` of minted and issued tokens.
    :param algorithms: algorithms whose keys are published from the start;
        :meth:`mint` with another supported algorithm adds a key for it.
    :param path: issuer path, e.g. ``"/tenant-1"``.
    :param openid_configuration: serve ``{issuer}/.well-known/openid-configuration``.
    :param oauth_metadata: serve RFC 8414 metadata both at
        ``/.well-known/oauth-authorization-server{path}`` (RFC 8414 §3.1) and
        at ``{issuer}/.well-known/oauth-authorization-server``.
    :param token_lifetime: ``expires_in`` of issued tokens, and the default
        lifetime of minted ones.
    :param clients: client_id -> secret accepted by the token endpoint.
    :param start: start serving now. The port is bound (and :attr:`issuer`
        known) either way; until :meth:`start` connections wait unanswered.
    :param profile: mimic an identity provider: ``azure_v1``, ``azure_v2``,
        ``rkvst``, ``ibm_verify``, ``aidbox`` or ``duende`` (its discovery
        paths, claims, ``typ``, scope format, and for the opaque-token ones an
        RFC 7662 introspection endpoint); see :mod:`flask_ccguard._profiles`.

    Switches tests may flip at run time (read on every request):
    :attr:`openid_configuration`, :attr:`oauth_metadata`, :attr:`jwks_status`,
    :attr:`jwks_delay`, :attr:`jwks_body`, :attr:`jwks_cache_control`,
    :attr:`discovery_overrides`, :attr:`extra_jwks`, :attr:`token_alg`.

    URLs: :attr:`issuer`, :attr:`base_url`, :attr:`discovery_url`,
    :attr:`oauth_metadata_url` (the RFC 8414 §3.1 inserted form),
    :attr:`jwks_uri`, :attr:`token_endpoint`.

    Example::

        with TestIssuer(clients={"app": "secret"}) as issuer:
            token = issuer.mint(roles=["reader"])
            validator = TokenValidator(issuer=issuer.issuer, audience=issuer.audience)
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    #: How many requests :attr:`requests` keeps.
    max_recorded = 200

    def __new__(cls, *args: Any, profile: str | None = None, **kwargs: Any) -> TestIssuer:
        # TestIssuer(profile="azure_v2") builds the profile's subclass, which
        # mimics that identity provider (see flask_ccguard._profiles).
        if profile is not None and cls is TestIssuer:
            from ._profiles import profile_class

            cls = profile_class(profile)
        return super().__new__(cls)

    def __init__(
        self,
        *,
        profile: str | None = None,
        audience: str = "https://api.example.com",
        algorithms: Sequence[str] = ("RS256",),
        path: str = "",
        openid_configuration: bool = True,
        oauth_metadata: bool = True,
        token_lifetime: int = 300,
        clients: Mapping[str, str] | None = None,
        start: bool = True,
    ) -> None:
        if path and not path.startswith("/"):
            raise ValueError("path must be empty or start with '/', e.g. '/tenant-1'")
        path = path.rstrip("/")
        for alg in algorithms:
            check_alg(alg)
        self.profile = profile
        self.audience = audience
        self.path = path
        self.openid_configuration = openid_configuration
        self.oauth_metadata = oauth_metadata
        self.token_lifetime = token_lifetime
        #: Algorithm of the tokens the token endpoint issues.
        self.token_alg = "RS256"
        #: != 200: the JWKS answers this status with a small JSON error body.
        self.jwks_status = 200
        #: Seconds to wait before answering a JWKS request.
        self.jwks_delay = 0.0
        #: When set, served verbatim as the JWKS body.
        self.jwks_body: bytes | None = None
        #: When set, sent as ``Cache-Control`` of JWKS responses (none by default).
        self.jwks_cache_control: str | None = None
        #: Merged into both metadata documents; a value of None removes a member.
        self.discovery_overrides: dict[str, Any] = {}
        #: Extra JWKs appended to the published set.
        self.extra_jwks: list[dict[str, Any]] = []
        #: Requests per endpoint: openid_configuration, oauth_metadata, jwks,
        #: token, other. A disabled metadata document still counts (as a 404).
        self.hits: collections.Counter[str] = collections.Counter()
        #: The last :attr:`max_recorded` requests, oldest first.
        self.requests: list[RecordedRequest] = []

        self._lock = threading.RLock()
        self._clients: dict[str, tuple[str, dict[str, Any]]] = {}
        for client_id, secret in (clients or {}).items():
            self.add_client(client_id, secret)
        self._current: dict[str, SigningKey] = {}
        self._published: list[SigningKey] = []
        self._lent: list[SigningKey] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

        with self._lock:
            for alg in dict.fromkeys(algorithms):
                self._add_key(alg)
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self.issuer = self.base_url + path
        self.discovery_url = self.issuer + "/.well-known/openid-configuration"
        self.oauth_metadata_url = f"{self.base_url}/.well-known/oauth-authorization-server{path}"
        self.jwks_uri = self.issuer + "/jwks"
        self.token_endpoint = self.issuer + "/token"
        if start:
            self.start()

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Serve requests in a daemon thread (no-op if already serving)."""
        if self._stopped:
            raise RuntimeError("a stopped TestIssuer cannot be restarted")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.02},
                name=f"TestIssuer {self.issuer}",
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the port and give the keys back to the pool."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()  # wakes requests sleeping in jwks_delay
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
        with self._lock:
            for key in self._lent:
                key.give_back()
            self._lent.clear()

    def __enter__(self) -> TestIssuer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<TestIssuer {self.issuer}>"

    # -- keys ----------------------------------------------------------------

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Algorithms whose current keys are published."""
        with self._lock:
            return tuple(self._current)

    def _add_key(self, alg: str) -> SigningKey:
        key = SigningKey.lend(alg)
        self._current[alg] = key
        self._published.append(key)
        self._lent.append(key)
        return key

    def _key(self, alg: str) -> SigningKey:
        check_alg(alg)
        with self._lock:
            key = self._current.get(alg)
            return key if key is not None else self._add_key(alg)

    def key_for(self, alg: str) -> PrivateKey:
        """The current ``cryptography`` private key for ``alg``."""
        return self._key(alg).private

    def public_jwk(self, alg: str) -> dict[str, Any]:
        """The published JWK of the current key for ``alg``."""
        return dict(self._key(alg).jwk)

    def jwks(self) -> dict[str, Any]:
        """The JWK Set as currently published (RFC 7517 §5)."""
        with self._lock:
            keys = [dict(key.jwk) for key in self._published]
            return {"keys": keys + [dict(jwk) for jwk in self.extra_jwks]}

    def rotate_keys(self, *, keep_old: bool = False) -> None:
        """Give every algorithm a new key and kid.

        :param keep_old: keep publishing the previous keys after the new ones
            (a rollover); otherwise they leave the JWKS at once.
        """
        with self._lock:
            old = list(self._published)
            self._published = []
            for alg in list(self._current):
                self._add_key(alg)
            if keep_old:
                self._published.extend(old)

    def app_config(self, **overrides: Any) -> dict[str, Any]:
        """The ``CCGUARD_*`` settings of an app under test that trusts this issuer.

        ``CCGUARD_ISSUER`` and ``CCGUARD_AUDIENCE`` name this issuer,
        ``CCGUARD_ALGORITHMS`` its current algorithms, and
        ``CCGUARD_JWKS_REFRESH_COOLDOWN`` is ``0``: after :meth:`rotate_keys`
        the app then fetches the new keys for the first token that names one,
        where the production default (30 s between refetches for an unknown
        ``kid``) would refuse every new token for 30 seconds.

        :param overrides: more settings, by their full ``CCGUARD_*`` name;
            they win over the ones above.
        """
        config: dict[str, Any] = {
            "CCGUARD_ISSUER": self.issuer,
            "CCGUARD_AUDIENCE": self.audience,
            "CCGUARD_ALGORITHMS": list(self.algorithms),
            "CCGUARD_JWKS_REFRESH_COOLDOWN": 0,
        }
        config.update(overrides)
        return config

    # -- tokens --------------------------------------------------------------

    def sign(
        self,
        header: Mapping[str, Any] | bytes,
        payload: Mapping[str, Any] | bytes,
        *,
        alg: str = "RS256",
        secret: bytes | None = None,
    ) -> str:
        """Sign any header and payload as they are, for adversarial tests.

        Dicts are JSON-encoded compactly, bytes are used verbatim; the header
        is not touched, so the caller controls ``alg`` and ``kid``.

        :param alg: a supported algorithm (the current key for it signs);
            ``"none"`` gives an empty signature; ``HS256``/``HS384``/``HS512``
            sign with ``secret`` (e.g. a public key's bytes, for the
            algorithm-confusion attack).
        """
        header_bytes, payload_bytes = (
            part if isinstance(part, bytes) else json_bytes(dict(part)) for part in (header, payload)
        )
        signer: Callable[[bytes], bytes]
        if alg == "none":
            signer = _no_signature
        elif alg.startswith("HS"):
            if secret is None:
                raise ValueError(f"{alg} needs secret=")
            signer = hmac_signer(alg, secret)
        else:
            signer = self._key(alg).signature
        return compact(header_bytes, payload_bytes, signer)

    def mint(
        self,
        *,
        alg: str = "RS256",
        kid: str | _Default | None = _Default.KID,
        headers: Mapping[str, Any] | None = None,
        expires_in: int | None = None,
        **claims: Any,
    ) -> str:
        """A signed access token (RFC 9068 shape) from this issuer.

        :param alg: signing algorithm; a key for it is added if needed.
        :param kid: None leaves ``kid`` out of the header; a string replaces
            it (the current key for ``alg`` still signs).
        :param headers: merged over the header; None removes a member.
        :param expires_in: seconds until ``exp`` (default ``token_lifetime``).
        :param claims: override the defaults (``iss``, ``aud``, ``sub``,
            ``client_id``, ``iat``, ``nbf``, ``exp``, ``jti``); None leaves
            a claim out.
        """
        key = self._key(alg)
        header: dict[str, Any] = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
        if kid is None:
            del header["kid"]
        elif isinstance(kid, str):
            header["kid"] = kid
        _merge(header, headers)
        lifetime = self.token_lifetime if expires_in is None else expires_in
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "test-client",
            "client_id": "test-client",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        _merge(payload, claims)
        return compact(json_bytes(header), json_bytes(payload), key.signature)

    def add_client(self, client_id: str, secret: str, **claims: Any) -> None:
        """Accept ``client_id``/``secret`` at the token endpoint.

        :param claims: added to every token issued to this client (e.g.
            ``roles=[...]``). A ``scope`` claim also limits the scopes the
            client may request (``invalid_scope`` otherwise).
        """
        with self._lock:
            self._clients[client_id] = (secret, dict(claims))

    # -- HTTP ----------------------------------------------------------------

    def _metadata(self, *, openid: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "token_endpoint": self.token_endpoint,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "client_secret_basic",
            ],
            "response_types_supported": ["token"],
        }
        if openid:
            doc["subject_types_supported"] = ["public"]
            doc["id_token_signing_alg_values_supported"] = list(self.algorithms)
        else:
            doc["token_endpoint_auth_signing_alg_values_supported"] = list(self.algorithms)
        return _merge(doc, self.discovery_overrides)

    def _endpoint(self, path: str) -> str:
        if path == self.path + "/.well-known/openid-configuration":
            return "openid_configuration"
        if path in (
            "/.well-known/oauth-authorization-server" + self.path,
            self.path + "/.well-known/oauth-authorization-server",
        ):
            return "oauth_metadata"
        if path == self.path + "/jwks":
            return "jwks"
        if path == self.path + "/token":
            return "token"
        return "other"

    def _wsgi(self, environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "") or "/"
        query = environ.get("QUERY_STRING", "")
        headers = dict(EnvironHeaders(environ))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        endpoint = self._endpoint(path)
        with self._lock:
            self.hits[endpoint] += 1
            self.requests.append(RecordedRequest(method, path + ("?" + query if query else ""), headers, body))
            del self.requests[: -self.max_recorded]

        status, extra, content = self._respond(endpoint, method, headers, body)
        response_headers: _Headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(content))),
        ]
        response_headers.extend(extra)
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        start_response(f"{status} {phrase}", response_headers)
        return [content]

    def _respond(
        self, endpoint: str, method: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, _Headers, bytes]:
        not_found: tuple[int, _Headers, bytes] = (
            404,
            [],
            json_bytes({"error": "not_found"}),
        )
        if endpoint == "token":
            return self._token_response(method, headers, body)
        if method not in ("GET", "HEAD"):
            return (
                405,
                [("Allow", "GET, HEAD")],
                json_bytes({"error": "method_not_allowed"}),
            )
        if endpoint == "openid_configuration":
            if not self.openid_configuration:
                return not_found
            return 200, [], json_bytes(self._metadata(openid=True))
        if endpoint == "oauth_metadata":
            if not self.oauth_metadata:
                return not_found
            return 200, [], json_bytes(self._metadata(openid=False))
        if endpoint == "jwks":
            return self._jwks_response()
        return not_found

    def _jwks_response(self) -> tuple[int, _Headers, bytes]:
        if self.jwks_delay > 0:
            self._stopping.wait(self.jwks_delay)
        extra: _Headers = []
        if self.jwks_cache_control is not None:
            extra.append(("Cache-Control", self.jwks_cache_control))
        status = self.jwks_status
        if self.jwks_body is not None:
            return status, extra, self.jwks_body
        if status != 200:
            error = {
                "error": "server_error",
                "error_description": f"JWKS status {status}",
            }
            return status, extra, json_bytes(error)
        return 200, extra, json_bytes(self.jwks())

    def _token_response(self, method: str, headers: Mapping[str, str], body: bytes) -> tuple[int, _Headers, bytes]:
        no_store = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
        if method != "POST":
            # RFC 6749 §3.2: the client MUST use POST.
            error = {"error": "invalid_request", "error_description": "use POST"}
            return 405, [("Allow", "POST"), *no_store], json_bytes(error)
        try:
            result = self._issue(headers, body)
        except OAuthError as exc:
            extra = list(no_store)
            if exc.basic_realm is not None:
                extra.append(("WWW-Authenticate", f'Basic realm="{exc.basic_realm}"'))
            error = {"error": exc.error, "error_description": exc.description}
            return exc.status, extra, json_bytes(error)
        return 200, no_store, json_bytes(result)

    def _issue(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        params = token_request.parameters(headers.get("Content-Type", ""), body)
        realm = self.issuer
        basic = token_request.basic_credentials(headers.get("Authorization", ""), realm)

        client_id = token_request.single(params, "client_id")
        secret = token_request.single(params, "client_secret")
        if basic is not None:
            # RFC 6749 §2.3: one authentication method per request.
            if secret is not None:
                raise OAuthError(400, "invalid_request", "client credentials sent by two methods")
            if client_id is not None and client_id != basic[0]:
                raise OAuthError(400, "invalid_request", "client_id differs from Basic")
            client_id, secret = basic
        grant_type = token_request.single(params, "grant_type")
        if grant_type is None:
            raise OAuthError(400, "invalid_request", "grant_type is required")

        with self._lock:
            known = self._clients.get(client_id) if client_id is not None else None
        if known is None or secret is None or not hmac.compare_digest(known[0].encode(), secret.encode()):
            raise OAuthError(
                401,
                "invalid_client",
                "client authentication failed",
                realm if basic is not None else None,
            )
        if grant_type != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "only client_credentials is supported")
        assert client_id is not None
        claims = dict(known[1])

        scope = token_request.single(params, "scope")
        if scope is not None:
            requested = scope.split()
            allowed = claims.get("scope")
            if isinstance(allowed, str) and not set(requested) <= set(allowed.split()):
                raise OAuthError(400, "invalid_scope", "scope not granted to this client")
            claims["scope"] = " ".join(requested)
        # RFC 8707 `resource` (repeatable) and Auth0-style `audience` -> aud.
        audiences = params.get("resource", []) + params.get("audience", [])
        if audiences:
            claims["aud"] = audiences[0] if len(audiences) == 1 else audiences
        claims.setdefault("sub", client_id)
        claims["client_id"] = client_id

        token = self.mint(alg=self.token_alg, expires_in=self.token_lifetime, **claims)
        response: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
        }
        if isinstance(claims.get("scope"), str):
            response["scope"] = claims["scope"]
        return response


try:
    import pytest
except ImportError:  # pragma: no cover - the module works without pytest
    pass
else:

    @pytest.fixture
    def ccguard_issuer() -> Iterator[TestIssuer]:
        """A started :class:`TestIssuer` (RS256, ES256, PS256, EdDSA keys); stopped afterwards.

        Client id ``test-client``, secret ``test-secret``. Configure the app
        under test with ``ccguard_issuer.app_config()`` (issuer, audience,
        algorithms, and no refetch cooldown, so that tokens minted after
        ``rotate_keys()`` are accepted at once).
        """
        with TestIssuer(
            algorithms=("RS256", "ES256", "PS256", "EdDSA"),
            clients={"test-client": "test-secret"},
        ) as issuer:
            yield issuer
