"""Profiles of Microsoft Entra ID (Azure AD): v1.0 and v2.0 app-only tokens, per tenant and multi-tenant.

One server plays both ``login.microsoftonline.com`` and ``sts.windows.net``
(loopback has one host): for any tenant GUID, and for ``common`` /
``organizations``, it serves the v1 and v2 metadata
(``/{tenant}[/v2.0]/.well-known/openid-configuration``), the key sets
(``/{tenant}/discovery[/v2.0]/keys``: no ``alg``, ``x5t``, and on v2 an
``issuer`` member, the template on the multi-tenant set), and the token
endpoints (``/{tenant}/oauth2[/v2.0]/token``). The v1 issuer is
``{base}/{tid}/`` and the v2 issuer ``{base}/{tid}/v2.0``, so ``tid`` is the
first path segment of ``iss`` as with the real hosts.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any, ClassVar

from ..minting import json_bytes
from ..server import Response
from .base import ProfileIssuer

__all__ = ["AzureV1Issuer", "AzureV2Issuer"]

_TENANT = r"(?P<t>common|organizations|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
_ROUTES = [
    (re.compile(rf"/{_TENANT}(?P<v>/v2\.0)?/\.well-known/openid-configuration"), "openid_configuration"),
    (re.compile(rf"/{_TENANT}/discovery(?P<v>/v2\.0)?/keys"), "jwks"),
    (re.compile(rf"/{_TENANT}/oauth2(?P<v>/v2\.0)?/token"), "token"),
]
_MULTI = ("common", "organizations")


class _AzureIssuer(ProfileIssuer):
    """Entra ID for one tenant (:attr:`tenant_id`); its API accepts
    :attr:`version` tokens (``requestedAccessTokenVersion``).

    :param tenant_id: the home tenant (a GUID).

    ``mint(ver="1.0")`` / ``mint(ver="2.0")`` choose the token's shape and
    ``mint(tid=...)`` another tenant. Set :attr:`key_issuer` to publish that
    ``issuer`` member on every key instead of Microsoft's.
    """

    version: ClassVar[str] = "2.0"
    typ = "JWT"
    openid = False  # served by the routes below
    default_client_id = "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb"
    default_lifetime = 3599
    #: The App ID URI of the API (v1 ``aud``).
    app_id_uri: ClassVar[str] = "api://ccguard-demo"
    #: The API's application (client) id (v2 ``aud``).
    api_client_id: ClassVar[str] = "eeeeeeee-6666-7777-8888-ffffffffffff"
    #: The calling client's service principal (``oid``, ``sub``).
    object_id: ClassVar[str] = "cccccccc-3333-4444-5555-dddddddddddd"
    default_roles: ClassVar[tuple[str, ...]] = ("Assets.Read", "Assets.Write")

    def __init__(self, *, tenant_id: str = "11111111-2222-3333-4444-555555555555", **kwargs: Any) -> None:
        self.tenant_id = tenant_id
        kwargs.setdefault("audience", self.app_id_uri if self.version == "1.0" else self.api_client_id)
        super().__init__(**kwargs)

    def _setup(self) -> None:
        base, tid = self.base_url, self.tenant_id
        #: Key ``issuer`` member override (None: as Microsoft publishes it).
        self.key_issuer: str | None = None
        self.v1_issuer = self.issuer_for(tid, "1.0")
        self.v2_issuer = self.issuer_for(tid, "2.0")
        self.v1_template = base + "/{tenantid}/"
        self.v2_template = base + "/{tenantid}/v2.0"
        self.v1_discovery_url = f"{base}/{tid}/.well-known/openid-configuration"
        self.v2_discovery_url = f"{base}/{tid}/v2.0/.well-known/openid-configuration"
        self.common_v1_discovery_url = f"{base}/common/.well-known/openid-configuration"
        self.common_v2_discovery_url = f"{base}/common/v2.0/.well-known/openid-configuration"
        self.v1_jwks_uri = f"{base}/{tid}/discovery/keys"
        self.v2_jwks_uri = f"{base}/{tid}/discovery/v2.0/keys"
        v1 = self.version == "1.0"
        self.issuer = self.v1_issuer if v1 else self.v2_issuer
        self.discovery_url = self.v1_discovery_url if v1 else self.v2_discovery_url
        self.jwks_uri = self.v1_jwks_uri if v1 else self.v2_jwks_uri
        self.token_endpoint = f"{base}/{tid}/oauth2/token" if v1 else f"{base}/{tid}/oauth2/v2.0/token"

    def issuer_for(self, tenant: str, ver: str) -> str:
        """The ``iss`` of a tenant's v1.0 or v2.0 tokens."""
        return f"{self.base_url}/{tenant}/" if ver == "1.0" else f"{self.base_url}/{tenant}/v2.0"

    # -- tokens ----------------------------------------------------------------------

    def _shape(self, claims: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        ver = claims.pop("ver", self.version)
        tid = claims.pop("tid", self.tenant_id)
        v1 = ver == "1.0"
        client = claims.pop("client_id", None) or self.client_id
        if claims.get("sub") == client:
            del claims["sub"]  # Entra's sub is the service principal, not the client id
        scope = claims.pop("scope", None)
        if isinstance(scope, str) and scope.endswith("/.default") and "aud" not in claims:
            # v2 endpoint: scope={resource}/.default names the API.
            claims["aud"] = scope[: -len("/.default")] if v1 else self.api_client_id
        elif scope is not None:
            claims["scope"] = scope
        iss = self.issuer_for(tid, ver)
        payload: dict[str, Any] = {
            "iss": iss,
            "aud": self.app_id_uri if v1 else self.api_client_id,
            "aio": secrets.token_urlsafe(24),
            ("appid" if v1 else "azp"): client,
            ("appidacr" if v1 else "azpacr"): "1",
            "idtyp": "app",
            "oid": self.object_id,
            "rh": "0.AX0A" + secrets.token_urlsafe(16),
            "roles": list(self.default_roles),
            "sub": self.object_id,
            "tid": tid,
            "uti": secrets.token_urlsafe(16),
            "ver": ver,
            "client_id": None,
            "jti": None,
        }
        if v1:
            payload["idp"] = iss
        payload.update(claims)
        header: dict[str, Any] = {}
        if v1:  # v1 headers repeat the kid as x5t
            header["x5t"] = self.public_jwk("RS256")["kid"]
        return header, payload

    def _word_token_answer(self, response: dict[str, Any]) -> dict[str, Any]:
        if self.version == "1.0":
            # The v1 endpoint words its numbers as strings.
            response["expires_in"] = str(response["expires_in"])
        return response

    # -- HTTP ------------------------------------------------------------------------

    def _shape_jwk(self, jwk: dict[str, Any]) -> None:
        jwk.pop("alg", None)  # Entra's keys state no alg
        if "kid" in jwk:
            jwk.setdefault("x5t", jwk["kid"])

    def _endpoint(self, path: str) -> str:
        for pattern, name in _ROUTES:
            m = pattern.fullmatch(path)
            if m:
                return f"{name}:{m['t']}:{'2.0' if m['v'] else '1.0'}"
        return super()._endpoint(path)

    def _respond(self, endpoint: str, method: str, headers: Mapping[str, str], body: bytes) -> Response:
        name, _, rest = endpoint.partition(":")
        if not rest:
            return super()._respond(endpoint, method, headers, body)
        tenant, _, ver = rest.partition(":")
        if name == "token":
            if tenant != self.tenant_id:
                return 400, [], json_bytes({"error": "invalid_request", "error_description": "AADSTS90002: tenant"})
            return super()._respond("token", method, headers, body)
        if name == "openid_configuration":
            return 200, [], json_bytes(self._azure_metadata(tenant, ver))
        if self.jwks_status != 200:
            return self.jwks_status, [], json_bytes({"error": "server_error"})
        doc = self.jwks()
        issuer = self.key_issuer
        if issuer is None and ver == "2.0":
            issuer = self.v2_template if tenant in _MULTI else self.issuer_for(tenant, "2.0")
        if issuer is not None:
            for jwk in doc["keys"]:
                jwk.setdefault("issuer", issuer)
        return 200, [], json_bytes(doc)

    def _azure_metadata(self, tenant: str, ver: str) -> dict[str, Any]:
        base, v2 = self.base_url, ver == "2.0"
        template = self.v2_template if v2 else self.v1_template
        issuer = template if tenant in _MULTI else self.issuer_for(tenant, ver)
        doc = {
            "issuer": issuer,
            "jwks_uri": f"{base}/{tenant}/discovery{'/v2.0' if v2 else ''}/keys",
            "token_endpoint": f"{base}/{tenant}/oauth2{'/v2.0' if v2 else ''}/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "ver", "oid"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }
        doc.update(self.discovery_overrides)
        return doc


class AzureV1Issuer(_AzureIssuer):
    """Entra ID whose API takes v1.0 tokens: ``iss`` ``https://sts.windows.net/{tid}/``
    shape, ``aud`` = App ID URI, ``appid``, ``x5t`` header."""

    profile_name = "azure_v1"
    version = "1.0"


class AzureV2Issuer(_AzureIssuer):
    """Entra ID whose API takes v2.0 tokens: ``iss`` ``.../{tid}/v2.0``,
    ``aud`` = the API's client id, ``azp``."""

    profile_name = "azure_v2"
    version = "2.0"
