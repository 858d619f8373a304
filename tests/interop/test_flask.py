"""Flask views protected by the decorators, fed oidc-provider's tokens (RFC 6750 §3 responses).

The API below validates tokens from panva's certified ``oidc-provider`` over
real loopback HTTP, and its answers are checked to the byte: status,
``WWW-Authenticate`` challenge and JSON body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient

from flask_ccguard import CCGuard, current_token, require_roles, require_scopes, require_token
from tests.challenges import MISSING, assert_challenge
from tests.conftest import bearer, flip_signature, with_claims, with_header

if TYPE_CHECKING:  # fixtures come from conftest.py; no runtime import of it
    from .conftest import OidcProvider

ADMIN = "archivist_administrator"
ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]
REALM = "assets-api"


def make_api(provider: OidcProvider, audience: str | list[str]) -> Flask:
    """An asset API: one view per kind of requirement, plus a protected blueprint."""
    app = Flask("assets_api")
    app.config.update(
        CCGUARD_ISSUER=provider.issuer,
        CCGUARD_AUDIENCE=audience,
        CCGUARD_ALGORITHMS=ALGORITHMS,
        CCGUARD_REALM=REALM,
    )
    guard = CCGuard(app)

    @app.get("/whoami")
    @require_token
    def whoami() -> Any:
        return {
            "client_id": current_token.client_id,
            "subject": current_token.subject,
            "issuer": current_token.issuer,
            "audiences": list(current_token.audiences),
            "scopes": sorted(current_token.scopes),
            "roles": sorted(current_token.roles),
            "alg": current_token.header["alg"],
        }

    @app.get("/assets")
    @require_roles(ADMIN, "guest", match="any")
    def list_assets() -> Any:
        return {"caller": current_token.client_id}

    @app.post("/assets")
    @require_scopes("assets:write")
    def create_asset() -> Any:
        return {"created_by": current_token.client_id}, 201

    @app.delete("/assets/<int:asset_id>")
    @require_roles(ADMIN)
    @require_scopes("assets:read", "assets:write")
    def delete_asset(asset_id: int) -> Any:
        return {"deleted": asset_id, "by": current_token.client_id}

    @app.get("/exports")
    @require_scopes("assets:export", "assets:write", match="any")
    def exports() -> Any:
        return {"caller": current_token.client_id}

    admin = Blueprint("admin", __name__, url_prefix="/admin")

    @admin.get("/audit")
    def audit() -> Any:
        return {"auditor": current_token.client_id}

    guard.protect(admin, roles=[ADMIN])
    app.register_blueprint(admin)
    return app


@pytest.fixture(scope="module")
def api(oidc_provider: OidcProvider) -> FlaskClient:
    """The API accepting every resource of the provider."""
    return make_api(oidc_provider, list(oidc_provider.resources.values())).test_client()


@pytest.fixture(scope="module")
def rs256_api(oidc_provider: OidcProvider) -> FlaskClient:
    """The API whose only audience is ``urn:ccguard:rs256``."""
    return make_api(oidc_provider, oidc_provider.resources["RS256"]).test_client()


@pytest.fixture(scope="module")
def token_for(oidc_provider: OidcProvider) -> Callable[..., str]:
    """``token_for(client_id, alg="RS256", scope=None)``: a provider token, fetched once per module."""
    cache: dict[tuple[str, str, str | None], str] = {}

    def get(client_id: str, alg: str = "RS256", scope: str | None = None) -> str:
        key = (client_id, alg, scope)
        if key not in cache:
            cache[key] = oidc_provider.token(client_id, resource=oidc_provider.resources[alg], scope=scope)
        return cache[key]

    return get


# -- the right client gets in, with the right current_token ------------------------


@pytest.mark.parametrize("alg", ALGORITHMS)
@pytest.mark.parametrize("client_id", ["admin", "basic-client", "reader"])
def test_current_token_is_the_callers_token(
    api: FlaskClient, oidc_provider: OidcProvider, token_for: Callable[..., str], client_id: str, alg: str
) -> None:
    response = api.get("/whoami", headers=bearer(token_for(client_id, alg)))

    assert_challenge(response, 200, realm=REALM)
    assert response.get_json() == {
        "client_id": client_id,
        "subject": client_id,
        "issuer": oidc_provider.issuer,
        "audiences": [oidc_provider.resources[alg]],
        "scopes": sorted(oidc_provider.client_scopes[client_id].split()),
        "roles": sorted(oidc_provider.client_roles[client_id]),
        "alg": alg,
    }


def test_rfc8414_only_provider_protects_views(oidc_provider_no_discovery: OidcProvider) -> None:
    provider = oidc_provider_no_discovery
    api = make_api(provider, provider.resources["EdDSA"]).test_client()

    response = api.get("/whoami", headers=bearer(provider.token("admin", resource=provider.resources["EdDSA"])))

    assert_challenge(response, 200, realm=REALM)
    assert response.get_json()["issuer"] == provider.issuer


# -- 403: valid token, missing roles or scopes -------------------------------------

LACKS_WRITE = "The access token lacks the scope(s) assets:write."
LACKS_ADMIN = f"The access token lacks the role(s) {ADMIN}."

#: (client_id, requested scope (None = all registered), method, path, status, description, scope param)
ACCESS = [
    ("admin", None, "GET", "/assets", 200, None, None),
    ("reader", None, "GET", "/assets", 200, None, None),
    ("admin", None, "POST", "/assets", 201, None, None),
    ("reader", None, "POST", "/assets", 403, LACKS_WRITE, "assets:write"),
    ("basic-client", None, "POST", "/assets", 403, LACKS_WRITE, "assets:write"),
    # The admin client narrowed its own token to read-only: the role stays, the scope is gone.
    ("admin", "assets:read", "POST", "/assets", 403, LACKS_WRITE, "assets:write"),
    ("admin", "", "POST", "/assets", 403, LACKS_WRITE, "assets:write"),
    ("admin", None, "DELETE", "/assets/7", 200, None, None),
    ("reader", None, "DELETE", "/assets/7", 403, LACKS_ADMIN, None),
    # RFC 6750 §3: scope= names every scope the resource needs, not only the missing one.
    ("admin", "assets:read", "DELETE", "/assets/7", 403, LACKS_WRITE, "assets:read assets:write"),
    ("admin", "assets:write", "GET", "/exports", 200, None, None),
    (
        "reader",
        None,
        "GET",
        "/exports",
        403,
        "The access token has none of the scope(s) assets:export, assets:write.",
        "assets:export assets:write",
    ),
    ("admin", "", "GET", "/admin/audit", 200, None, None),
    ("reader", None, "GET", "/admin/audit", 403, LACKS_ADMIN, None),
]


@pytest.mark.parametrize(
    ("client_id", "scope", "method", "path", "status", "description", "scope_param"),
    ACCESS,
    ids=[f"{row[0]}[{row[1]}]-{row[2]}-{row[3]}" for row in ACCESS],
)
def test_roles_and_scopes_decide_access(
    api: FlaskClient,
    token_for: Callable[..., str],
    client_id: str,
    scope: str | None,
    method: str,
    path: str,
    status: int,
    description: str | None,
    scope_param: str | None,
) -> None:
    response = api.open(path, method=method, headers=bearer(token_for(client_id, "ES256", scope)))

    if status < 400:
        assert_challenge(response, status, realm=REALM)
        assert client_id in response.get_json().values()
    else:
        assert_challenge(response, status, "insufficient_scope", description, scope_param, realm=REALM)


# -- 401: no token, or one that is not valid here ----------------------------------

BAD_SIGNATURE = "The token's signature is invalid."

#: (label, forge(token) -> token, error_description)
TAMPERED: list[tuple[str, Callable[[str], str], str]] = [
    ("roles elevated", lambda t: with_claims(t, roles=[ADMIN]), BAD_SIGNATURE),
    ("scope widened", lambda t: with_claims(t, scope="assets:read assets:write"), BAD_SIGNATURE),
    ("signature bit flipped", flip_signature, BAD_SIGNATURE),
    (
        "kid of no key",
        lambda t: with_header(t, kid="not-a-provider-kid"),
        "The token's key id is not one of the issuer's keys.",
    ),
    ("alg none", lambda t: with_header(t, alg="none"), "The token's signing algorithm is not allowed."),
]


@pytest.mark.parametrize("alg", ALGORITHMS)
@pytest.mark.parametrize(("label", "forge", "description"), TAMPERED, ids=[row[0] for row in TAMPERED])
def test_tampered_token_is_401(
    api: FlaskClient,
    token_for: Callable[..., str],
    alg: str,
    label: str,
    forge: Callable[[str], str],
    description: str,
) -> None:
    token = token_for("reader", alg)
    assert_challenge(api.get("/assets", headers=bearer(token)), 200, realm=REALM)

    response = api.get("/assets", headers=bearer(forge(token)))

    assert_challenge(response, 401, "invalid_token", description, realm=REALM)


@pytest.mark.parametrize("alg", ["PS256", "ES256", "EdDSA"])
def test_token_for_another_resource_is_401(rs256_api: FlaskClient, token_for: Callable[..., str], alg: str) -> None:
    # A genuine admin token, but minted for another resource server (RFC 8707).
    response = rs256_api.get("/whoami", headers=bearer(token_for("admin", alg)))

    assert_challenge(response, 401, "invalid_token", "The access token is meant for another audience.", realm=REALM)


def test_token_for_this_resource_passes_the_narrow_api(rs256_api: FlaskClient, token_for: Callable[..., str]) -> None:
    assert_challenge(rs256_api.get("/whoami", headers=bearer(token_for("admin", "RS256"))), 200, realm=REALM)


def test_token_of_another_provider_is_401(api: FlaskClient, oidc_provider_no_discovery: OidcProvider) -> None:
    token = oidc_provider_no_discovery.token("admin", resource=oidc_provider_no_discovery.resources["RS256"])

    response = api.get("/whoami", headers=bearer(token))

    assert_challenge(response, 401, "invalid_token", "The access token is from an unexpected issuer.", realm=REALM)


@pytest.mark.parametrize("path", ["/whoami", "/assets", "/admin/audit"])
def test_request_without_token_is_401_with_bare_challenge(api: FlaskClient, path: str) -> None:
    response = api.get(path)

    assert_challenge(response, 401, realm=REALM)
    assert response.get_json()["error_description"] == MISSING
