"""What every issuer profile shares: extra routes, shaped tokens, opaque tokens and RFC 7662 introspection.

A profile is a :class:`~flask_ccguard.testing.TestIssuer` subclass. It adds
routes (exact paths mapped to endpoint names), reshapes the header and claims
of every token it mints, can hand out opaque tokens instead of JWTs, and
answers ``POST`` introspection requests (RFC 7662 §2) for the tokens it
issued, authenticating the resource server by HTTP Basic or form post.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qs

from ...core.fetch.basic_auth import parse_basic_authorization
from ..issuer import TestIssuer
from ..minting import Default, b64url_decode, json_bytes
from ..server import Response

__all__ = ["ProfileIssuer"]

_MAX_ISSUED = 10000


def _payload(jwt: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(b64url_decode(jwt.split(".")[1]))
    return decoded


class ProfileIssuer(TestIssuer):
    """A :class:`TestIssuer` that looks like one identity provider.

    :param audience: default ``aud`` (each profile has its own default).
    :param clients: client_id -> secret; by default the profile's typical
        client id (:attr:`client_id`) with the secret ``test-secret``.
    :param introspection_clients: name -> secret the introspection endpoint
        accepts (the resource server's own credentials).

    Switches: :attr:`introspection_status`, :attr:`opaque_tokens`.
    """

    profile_name: ClassVar[str] = ""
    #: The issuer's path under the server's base URL.
    issuer_path: ClassVar[str] = ""
    #: Serve ``{issuer}/.well-known/openid-configuration``.
    openid: ClassVar[bool] = True
    #: The header ``typ`` (None: absent).
    typ: ClassVar[str | None] = "at+jwt"
    #: Put ``kid`` in token headers and JWKs.
    with_kid: ClassVar[bool] = True
    #: The client id of the default client.
    default_client_id: ClassVar[str] = "test-client"
    default_audience: ClassVar[str] = "https://api.example.com"
    default_lifetime: ClassVar[int] = 3600
    default_introspection_clients: ClassVar[Mapping[str, str]] = {"resource-server": "rs-secret"}
    #: Hand out opaque tokens (with introspection) unless told otherwise.
    opaque_by_default: ClassVar[bool] = False

    def __init__(
        self,
        *,
        audience: str | None = None,
        clients: Mapping[str, str] | None = None,
        introspection_clients: Mapping[str, str] | None = None,
        start: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("token_lifetime", self.default_lifetime)
        kwargs.pop("path", None)  # the profile decides
        super().__init__(
            audience=audience or self.default_audience,
            path=self.issuer_path,
            openid_configuration=self.openid,
            oauth_metadata=False,
            clients=clients if clients is not None else {self.default_client_id: "test-secret"},
            start=False,
            **kwargs,
        )
        #: The default client's id (its secret is ``test-secret``).
        self.client_id = self.default_client_id
        #: name -> secret accepted at the introspection endpoint.
        self.introspection_clients = dict(introspection_clients or self.default_introspection_clients)
        #: != 200: the introspection endpoint answers this status.
        self.introspection_status = 200
        #: Mint opaque tokens (True) or JWTs (False) unless ``mint(opaque=...)`` says.
        self.opaque_tokens = self.opaque_by_default
        #: The RFC 7662 endpoint, for profiles that have one.
        self.introspection_endpoint: str | None = None
        self._routes: dict[str, str] = {}
        self._issued: dict[str, dict[str, Any]] = {}
        self._revoked: set[str] = set()
        self._setup()
        if start:
            self.start()

    def _setup(self) -> None:
        """Set the profile's URLs and routes once the port is known."""

    def _route(self, path: str, endpoint: str) -> str:
        self._routes[path] = endpoint
        return self.base_url + path

    # -- tokens ----------------------------------------------------------------------

    def _shape(self, claims: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Header members and claims (None removes one) of this provider's tokens."""
        return {}, claims

    def _opaque_token(self) -> str:
        raise NotImplementedError(f"the {self.profile_name} profile issues no opaque tokens")

    def mint(
        self,
        *,
        alg: str = "RS256",
        kid: Any = Default.KID,
        headers: Mapping[str, Any] | None = None,
        expires_in: int | None = None,
        opaque: bool | None = None,
        **claims: Any,
    ) -> str:
        """A token shaped like this provider's: a JWT, or with ``opaque=True``
        (the default for opaque-token providers) a random string whose claims
        only the introspection endpoint knows.

        Other parameters as :meth:`TestIssuer.mint`.
        """
        extra, payload = self._shape(dict(claims))
        header: dict[str, Any] = {"typ": self.typ, **extra, **(headers or {})}
        if kid is Default.KID and not self.with_kid:
            kid = None
        jwt = super().mint(alg=alg, kid=kid, headers=header, expires_in=expires_in, **payload)
        token = self._opaque_token() if (self.opaque_tokens if opaque is None else opaque) else jwt
        with self._lock:
            self._issued[token] = _payload(jwt)
            if len(self._issued) > _MAX_ISSUED:
                del self._issued[next(iter(self._issued))]
        return token

    def revoke(self, token: str) -> None:
        """Make the introspection endpoint call ``token`` inactive from now on."""
        with self._lock:
            self._revoked.add(token)

    def claims_of(self, token: str) -> dict[str, Any]:
        """The claims behind a token this issuer minted (opaque or not)."""
        with self._lock:
            return dict(self._issued[token])

    def _issue(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        response = super()._issue(headers, body)
        return self._word_token_answer(response)

    def _word_token_answer(self, response: dict[str, Any]) -> dict[str, Any]:
        """The token endpoint's answer as this provider words it."""
        return response

    # -- HTTP ------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        doc = super().jwks()
        for jwk in doc["keys"]:
            self._shape_jwk(jwk)
        return doc

    def _shape_jwk(self, jwk: dict[str, Any]) -> None:
        if not self.with_kid:
            jwk.pop("kid", None)

    def _endpoint(self, path: str) -> str:
        return self._routes.get(path) or super()._endpoint(path)

    def _respond(self, endpoint: str, method: str, headers: Mapping[str, str], body: bytes) -> Response:
        if endpoint == "introspect":
            return self._introspect(method, headers, body)
        return super()._respond(endpoint, method, headers, body)

    def _introspect(self, method: str, headers: Mapping[str, str], body: bytes) -> Response:
        no_store = [("Cache-Control", "no-store")]
        if method != "POST":  # RFC 7662 §2.1: POST only
            return 405, [("Allow", "POST")], json_bytes({"error": "invalid_request"})
        if self.introspection_status != 200:
            return self.introspection_status, no_store, json_bytes({"error": "server_error"})
        params = parse_qs(body.decode("utf-8", "replace"))
        caller = self._caller(headers.get("Authorization", ""), params)
        if caller is None:
            # RFC 7662 §2.1: the endpoint MUST require authorization.
            return 401, [("WWW-Authenticate", 'Basic realm="introspect"')], json_bytes({"error": "invalid_client"})
        tokens = params.get("token", [])
        if len(tokens) != 1 or not tokens[0]:
            return 400, no_store, json_bytes({"error": "invalid_request"})
        token = tokens[0]
        with self._lock:
            claims = self._issued.get(token)
            revoked = token in self._revoked
        active = (
            claims is not None
            and not revoked
            and time.time() < claims.get("exp", float("inf"))
            and self._may_see(caller, claims)
        )
        answer = self._answer(dict(claims)) if active and claims is not None else {"active": False}
        return 200, no_store, json_bytes(answer)

    def _caller(self, authorization: str, params: Mapping[str, list[str]]) -> str | None:
        try:
            basic = parse_basic_authorization(authorization)
        except ValueError:
            return None
        if basic is not None:
            name, secret = basic
        else:
            name = (params.get("client_id") or [""])[0]
            secret = (params.get("client_secret") or [""])[0]
        known = self.introspection_clients.get(name)
        if known is None or not hmac.compare_digest(known.encode(), secret.encode()):
            return None
        return name

    def _may_see(self, caller: str, claims: Mapping[str, Any]) -> bool:
        """Whether the authenticated resource server may learn about this token."""
        return True

    def _answer(self, claims: dict[str, Any]) -> dict[str, Any]:
        """The RFC 7662 §2.2 answer for an active token."""
        scope = claims.get("scope")
        if isinstance(scope, list):
            claims["scope"] = " ".join(scope)
        return {"active": True, **claims}
