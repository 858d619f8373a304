"""A Flask API protected by flask_ccguard accepts oidc-provider's tokens and refuses the rest.

The issuer is panva's certified ``oidc-provider`` (independent of this
project), reached over real HTTP through discovery, as a deployed API would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask

from flask_ccguard import CCGuard, current_token, require_roles, require_scopes, require_token
from tests.challenges import assert_challenge

if TYPE_CHECKING:
    from .conftest import OidcProvider

ADMIN = "archivist_administrator"
ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]


def api(provider: OidcProvider, audience: list[str]) -> Flask:
    app = Flask("assets")
    app.config.update(
        CCGUARD_ISSUER=provider.issuer,
        CCGUARD_AUDIENCE=audience,
        CCGUARD_ALGORITHMS=ALGORITHMS,
    )
    CCGuard(app)

    @app.get("/archivist/v2/assets")
    @require_roles(ADMIN, "guest", match="any")
    def list_assets() -> Any:
        return {"caller": current_token.client_id}

    @app.post("/archivist/v2/assets")
    @require_scopes("assets:write")
    def create_asset() -> Any:
        return {"created_by": current_token.client_id}, 201

    @app.get("/admin")
    @require_token
    @require_roles(ADMIN)
    def admin() -> Any:
        return {"ok": True}

    return app


@pytest.fixture(scope="module")
def client(oidc_provider: OidcProvider) -> Any:
    return api(oidc_provider, list(oidc_provider.resources.values())).test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_admin_tokens_of_every_algorithm_pass(client: Any, oidc_provider: OidcProvider, alg: str) -> None:
    headers = bearer(oidc_provider.token("admin", resource=oidc_provider.resources[alg]))
    assert client.get("/archivist/v2/assets", headers=headers).get_json() == {"caller": "admin"}
    assert client.post("/archivist/v2/assets", headers=headers).status_code == 201
    assert client.get("/admin", headers=headers).status_code == 200


def test_a_guest_may_list_but_not_create_or_administer(client: Any, oidc_provider: OidcProvider) -> None:
    headers = bearer(oidc_provider.token("reader"))
    assert_challenge(client.get("/archivist/v2/assets", headers=headers), 200)
    assert_challenge(
        client.post("/archivist/v2/assets", headers=headers),
        403,
        "insufficient_scope",
        "The access token lacks the scope(s) assets:write.",
        "assets:write",
    )
    assert_challenge(
        client.get("/admin", headers=headers),
        403,
        "insufficient_scope",
        f"The access token lacks the role(s) {ADMIN}.",
    )


def test_everything_else_is_refused(oidc_provider: OidcProvider, client: Any) -> None:
    token = oidc_provider.token("admin")
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    assert_challenge(client.get("/archivist/v2/assets"), 401)
    assert_challenge(
        client.get("/archivist/v2/assets", headers=bearer(forged)),
        401,
        "invalid_token",
        "The token's signature is invalid.",
    )
    narrow = api(oidc_provider, [oidc_provider.resources["RS256"]]).test_client()
    other_audience = oidc_provider.token("admin", resource=oidc_provider.resources["ES256"])
    assert_challenge(
        narrow.get("/archivist/v2/assets", headers=bearer(other_audience)),
        401,
        "invalid_token",
        "The access token is meant for another audience.",
    )
