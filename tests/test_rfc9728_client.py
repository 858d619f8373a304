"""Issue 17: an RFC 9728 client we did not write finds the issuer and the scopes from our 401 alone.

The client is the Model Context Protocol Python SDK's OAuth provider
(``mcp.client.auth``, client-credentials extension): given only the API's URL,
it reads ``resource_metadata`` from our ``401`` challenge (RFC 9728 §5.1),
fetches the document, checks its ``resource`` (§3.3), discovers the
authorization server it lists (RFC 8414), requests a token for the scopes in
``scopes_supported`` with the resource as ``resource`` (RFC 8707), and retries.
The API is a real Flask app on a loopback port; the issuer is the TestIssuer.

``mcp`` needs Python 3.10+: outside CI the test skips without it; in CI
(``CI`` set) on 3.10+ it fails, so the check cannot silently disappear. It
needs no Node, so it lives beside, not in, ``tests/interop``.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from flask_ccguard import CCGuard, current_token, require_scopes
from flask_ccguard.testing import TestIssuer
from tests.interop.ensure_deps import in_ci

try:
    import httpx2
    from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
    from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
except ImportError as error:  # pragma: no cover - depends on the environment
    if in_ci() and sys.version_info >= (3, 10):
        raise
    pytest.skip(f"the MCP SDK is not installed ({error}); pip install 'mcp>=2'", allow_module_level=True)

CLIENT_ID, SECRET = "mcp-client", "mcp-secret-0123456789abcdef"


class _Memory:
    """The SDK's TokenStorage protocol, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class _Served:
    def __init__(self, app: Flask, base: str) -> None:
        self.app, self.base = app, base
        self.paths: list[str] = []


@pytest.fixture
def api(ccguard_issuer: TestIssuer) -> Iterator[_Served]:
    """A Flask API whose resource is its own loopback URL, served on a free port."""
    holder: dict[str, Any] = {}
    served: list[str] = []

    def dispatch(environ: dict[str, Any], start_response: Any) -> Any:
        served.append(environ["PATH_INFO"])
        return holder["app"](environ, start_response)

    server = make_server("127.0.0.1", 0, dispatch, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    app = Flask("rfc9728")
    app.config.update(CCGUARD_ISSUER=ccguard_issuer.issuer, CCGUARD_RESOURCE=base + "/api")

    @app.get("/api/assets")
    @require_scopes("assets:read")
    def assets() -> Any:
        return {"client_id": current_token.client_id, "scopes": sorted(current_token.scopes)}

    @app.post("/api/assets")
    @require_scopes("assets:write")
    def create() -> Any:
        return {"created": True}

    CCGuard(app)
    holder["app"] = app
    ccguard_issuer.add_client(CLIENT_ID, SECRET, scope="assets:read assets:write")
    # The SDK's metadata model demands authorization_endpoint, which RFC 8414 §2
    # leaves out for a server without authorization-endpoint grants; never called here.
    ccguard_issuer.discovery_overrides["authorization_endpoint"] = ccguard_issuer.issuer + "/authorize"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    result = _Served(app, base)
    result.paths = served
    try:
        yield result
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.mark.skipif(sys.version_info < (3, 10), reason="the MCP SDK needs Python 3.10+")
def test_i17_interop_mcp_client_discovers_the_issuer_and_scopes_from_a_401(
    api: _Served, ccguard_issuer: TestIssuer
) -> None:
    provider = ClientCredentialsOAuthProvider(
        server_url=api.base + "/api/assets",
        storage=_Memory(),
        client_id=CLIENT_ID,
        client_secret=SECRET,
        token_endpoint_auth_method="client_secret_post",
        issuer=ccguard_issuer.issuer,
    )

    async def call() -> httpx2.Response:
        async with httpx2.AsyncClient(auth=provider, timeout=10) as client:
            return await client.get(api.base + "/api/assets")

    response = asyncio.run(call())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["client_id"] == CLIENT_ID
    # The scopes came from scopes_supported: nothing told the client but our 401.
    assert body["scopes"] == ["assets:read", "assets:write"]
    # The first request was refused, then the document named by the challenge was read.
    assert api.paths[:2] == ["/api/assets", "/.well-known/oauth-protected-resource/api"]
