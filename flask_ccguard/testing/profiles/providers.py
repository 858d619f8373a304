"""Profiles of RKVST/DataTrails, IBM Security Verify, Aidbox and Duende IdentityServer (see ``issuers.md``)."""

from __future__ import annotations

import base64
import secrets
import string
import uuid
from typing import Any, ClassVar

from ..minting import json_bytes
from ..server import Response
from .base import ProfileIssuer

__all__ = ["AidboxIssuer", "DuendeIssuer", "IBMVerifyIssuer", "RKVSTIssuer"]

_ALNUM = string.ascii_letters + string.digits


class RKVSTIssuer(ProfileIssuer):
    """RKVST / DataTrails app-registration issuer: ``{base}/appidpv1``, no discovery
    (configure ``jwks_uri``), ``at+jwt`` tokens with ``jit_*`` claims, no ``nbf``,
    no scopes or roles, ``sub == client_id``."""

    profile_name = "rkvst"
    issuer_path = "/appidpv1"
    openid = False
    default_client_id = "b222a12e-03d8-40b0-8d28-b851c2caadd0"
    default_lifetime = 3660

    def _setup(self) -> None:
        if self.audience == self.default_audience:
            self.audience = self.base_url + "/archivist"
        self.token_endpoint = self._route("/archivist/iam/v1/appidp/token", "token")
        #: The tenant of the registrations (``jit_tenant_id``).
        self.tenant_id = f"tenant/{uuid.uuid4()}"

    def _shape(self, claims: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        client = claims.get("client_id", self.client_id)
        payload: dict[str, Any] = {
            "jit_tenant_id": self.tenant_id,
            "jit_tier": "FREE",
            "name": "my-token",
            "jti": secrets.token_urlsafe(15),
            "sub": client,
            "client_id": client,
            "nbf": None,
        }
        payload.update(claims)
        return {}, payload


class IBMVerifyIssuer(ProfileIssuer):
    """IBM Security Verify: issuer ``{base}/oidc/endpoint/default``, endpoints under
    ``/v1.0/endpoint/default/``, opaque 40-character tokens, introspection with
    ``client_secret_post`` (Basic also accepted), 2 h lifetime."""

    profile_name = "ibm_verify"
    issuer_path = "/oidc/endpoint/default"
    default_client_id = "12345678-1234-1234-1234-123456789012"
    default_lifetime = 7200
    opaque_by_default = True

    def _setup(self) -> None:
        root = "/v1.0/endpoint/default"
        self.token_endpoint = self._route(root + "/token", "token")
        self.introspection_endpoint = self._route(root + "/introspect", "introspect")
        self.jwks_uri = self._route(root + "/jwks", "jwks")
        self.discovery_overrides.update(
            {
                "jwks_uri": self.jwks_uri,
                "token_endpoint": self.token_endpoint,
                "introspection_endpoint": self.introspection_endpoint,
                "revocation_endpoint": f"{self.base_url}{root}/revoke",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                    "client_secret_jwt",
                    "private_key_jwt",
                ],
            }
        )

    def _opaque_token(self) -> str:
        return "".join(secrets.choice(_ALNUM) for _ in range(40))

    def _shape(self, claims: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        # Verify's answers name no audience unless one was asked for.
        payload: dict[str, Any] = {"aud": None, "nbf": None, "jti": None, "sub": self.client_id}
        payload["client_id"] = self.client_id
        payload.update(claims)
        return {}, payload

    def _word_token_answer(self, response: dict[str, Any]) -> dict[str, Any]:
        response["grant_id"] = str(uuid.uuid4())
        return response

    def _answer(self, claims: dict[str, Any]) -> dict[str, Any]:
        answer = super()._answer(claims)
        answer.update({"grant_type": "client_credentials", "token_type": "Bearer"})
        return answer


class AidboxIssuer(ProfileIssuer):
    """Aidbox: issuer = base URL, ``/.well-known/smart-configuration`` (no
    openid-configuration), keys at ``/.well-known/jwks.json`` without ``kid`` or
    ``alg``, ``JWT`` headers without ``kid``, ``sub`` = client id, space-separated
    ``scope``, opaque base64-of-UUID tokens by default, ``/auth/introspect``."""

    profile_name = "aidbox"
    openid = False
    typ = "JWT"
    with_kid = False
    default_client_id = "auth-client"
    default_lifetime = 3000
    opaque_by_default = True

    def _setup(self) -> None:
        self.discovery_url = self._route("/.well-known/smart-configuration", "smart_configuration")
        self.jwks_uri = self._route("/.well-known/jwks.json", "jwks")
        self.token_endpoint = self._route("/auth/token", "token")
        self.introspection_endpoint = self._route("/auth/introspect", "introspect")

    def _respond(self, endpoint: str, method: str, headers: Any, body: bytes) -> Response:
        if endpoint == "smart_configuration":
            doc = {
                "issuer": self.issuer,
                "token_endpoint": self.token_endpoint,
                "introspection_endpoint": self.introspection_endpoint,
                "jwks_uri": self.jwks_uri,
                "userinfo_endpoint": self.base_url + "/auth/userinfo",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                    "private_key_jwt",
                ],
                "grant_types_supported": ["client_credentials"],
            }
            doc.update(self.discovery_overrides)
            return 200, [], json_bytes(doc)
        return super()._respond(endpoint, method, headers, body)

    def _opaque_token(self) -> str:
        return base64.b64encode(str(uuid.uuid4()).encode("ascii")).decode("ascii")

    def _shape(self, claims: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        client = claims.pop("client_id", None) or self.client_id
        payload: dict[str, Any] = {"sub": client, "client_id": None, "jti": str(uuid.uuid4()), "nbf": None, "atv": 2}
        payload.update(claims)
        return {}, payload

    def _word_token_answer(self, response: dict[str, Any]) -> dict[str, Any]:
        if self.opaque_tokens:
            response.pop("expires_in", None)  # Aidbox's opaque answers carry none
        return response

    def _shape_jwk(self, jwk: dict[str, Any]) -> None:
        jwk.pop("kid", None)
        jwk.pop("alg", None)  # only in FHIR-compliant mode
        jwk.pop("use", None)

    def _answer(self, claims: dict[str, Any]) -> dict[str, Any]:
        answer = super()._answer(claims)
        answer.setdefault("client_id", claims.get("sub"))
        return answer


class DuendeIssuer(ProfileIssuer):
    """Duende IdentityServer: issuer with a PathBase (``{base}/identity``), keys at
    ``.well-known/openid-configuration/jwks``, ``at+jwt``, ``scope`` as a JSON array
    (:attr:`scopes_as_string` for the option), ``aud`` = API resource name, no
    ``sub``, client claims prefixed ``client_``; reference (opaque) tokens with
    ``mint(opaque=True)`` or :attr:`opaque_tokens`, introspected at
    ``/connect/introspect`` by the API resource with HTTP Basic."""

    profile_name = "duende"
    issuer_path = "/identity"
    default_client_id = "ccguard-daemon"
    default_audience = "assets-api"
    default_introspection_clients: ClassVar[dict[str, str]] = {"assets-api": "api-secret"}
    default_scopes: ClassVar[tuple[str, ...]] = ("assets.read", "assets.write")

    def _setup(self) -> None:
        #: ``EmitScopesAsSpaceDelimitedStringInJwt``.
        self.scopes_as_string = False
        self.jwks_uri = self._route(self.issuer_path + "/.well-known/openid-configuration/jwks", "jwks")
        self.token_endpoint = self._route(self.issuer_path + "/connect/token", "token")
        self.introspection_endpoint = self._route(self.issuer_path + "/connect/introspect", "introspect")
        self.discovery_overrides.update(
            {
                "jwks_uri": self.jwks_uri,
                "token_endpoint": self.token_endpoint,
                "introspection_endpoint": self.introspection_endpoint,
                "revocation_endpoint": self.issuer + "/connect/revocation",
            }
        )

    def _opaque_token(self) -> str:
        return secrets.token_hex(32).upper()

    def _shape(self, claims: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        client = claims.get("client_id", self.client_id)
        if claims.get("sub") == client:
            del claims["sub"]  # client credentials tokens have no sub
        scope = claims.get("scope", list(self.default_scopes))
        if isinstance(scope, str) and not self.scopes_as_string:
            scope = scope.split()
        elif isinstance(scope, list) and self.scopes_as_string:
            scope = " ".join(scope)
        payload: dict[str, Any] = {"sub": None, "client_id": client, "jti": secrets.token_hex(16).upper()}
        payload.update(claims)
        payload["scope"] = scope
        return {}, payload

    def _may_see(self, caller: str, claims: Any) -> bool:
        # An API resource learns only about tokens meant for it.
        aud = claims.get("aud")
        return caller == aud or (isinstance(aud, list) and caller in aud)

    def _answer(self, claims: dict[str, Any]) -> dict[str, Any]:
        answer = super()._answer(claims)
        answer.pop("aud", None)  # as in Duende's documented answer
        answer["token_type"] = "access_token"
        return answer
