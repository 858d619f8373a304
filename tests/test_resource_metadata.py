"""Issue 17: protected resource metadata (RFC 9728), challenges naming it, the audience by default, scope hierarchies."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask

from flask_ccguard import CCGuard, ConfigurationError, require_scopes, require_token
from flask_ccguard.core.dpop import DEFAULT_DPOP_ALGORITHMS
from flask_ccguard.testing import TestIssuer
from tests.challenges import MISSING, assert_challenge
from tests.conftest import bearer

RESOURCE = "https://api.example.com"
WELL_KNOWN = "/.well-known/oauth-protected-resource"


def _app(issuer: TestIssuer, resource: str | None = RESOURCE, **config: Any) -> tuple[Flask, CCGuard]:
    app = Flask("meta")
    app.config.update(CCGUARD_ISSUER=issuer.issuer, **config)
    if resource is not None:
        app.config["CCGUARD_RESOURCE"] = resource
    guard = CCGuard(app)

    @app.get("/assets")
    @require_scopes("assets:read")
    def assets() -> Any:
        return {"ok": True}

    @app.post("/assets")
    @require_scopes("assets:write")
    def create() -> Any:
        return {"ok": True}

    @app.get("/me")
    @require_token
    def me() -> Any:
        return {"ok": True}

    return app, guard


# -- item 1: the document -------------------------------------------------------------------------


def test_i17_01_app_document(ccguard_issuer: TestIssuer) -> None:
    app, _ = _app(
        ccguard_issuer,
        CCGUARD_RESOURCE_NAME="Asset API",
        CCGUARD_RESOURCE_DOCUMENTATION="https://docs.example.com/api",
        CCGUARD_ALLOW_FORM_TOKEN=True,
    )
    resp = app.test_client().get(WELL_KNOWN)
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.get_json() == {
        "resource": RESOURCE,
        "authorization_servers": [ccguard_issuer.issuer],
        "scopes_supported": ["assets:read", "assets:write"],
        "bearer_methods_supported": ["header", "body"],
        "resource_name": "Asset API",
        "resource_documentation": "https://docs.example.com/api",
        # DPoP is allowed by default (RFC 9728 §2, RFC 9449 §5.1)
        "dpop_signing_alg_values_supported": sorted(DEFAULT_DPOP_ALGORITHMS),
        "dpop_bound_access_tokens_required": False,
    }
    assert "resource_signing_alg_values_supported" not in resp.get_json()


def test_i17_01_cors_preflight(ccguard_issuer: TestIssuer) -> None:
    app, _ = _app(ccguard_issuer)
    resp = app.test_client().options(
        WELL_KNOWN, headers={"Origin": "https://client.example", "Access-Control-Request-Method": "GET"}
    )
    assert resp.status_code == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in resp.headers["Access-Control-Allow-Methods"]


def test_i17_01_path_suffixed_url(ccguard_issuer: TestIssuer) -> None:
    app, _ = _app(ccguard_issuer, "https://api.example.com/v2")
    client = app.test_client()
    assert client.get(WELL_KNOWN + "/v2").get_json()["resource"] == "https://api.example.com/v2"
    assert client.get(WELL_KNOWN).status_code == 404
    assert client.get(WELL_KNOWN + "/v3").status_code == 404


def test_i17_01_no_resource_no_document(ccguard_issuer: TestIssuer) -> None:
    app, _ = _app(ccguard_issuer, None, CCGUARD_AUDIENCE=ccguard_issuer.audience)
    assert app.test_client().get(WELL_KNOWN).status_code == 404
    assert_challenge(app.test_client().get("/me"), 401, realm="meta", description=MISSING)


def test_i17_01_blueprint_resource(ccguard_issuer: TestIssuer) -> None:
    app, guard = _app(ccguard_issuer)
    reports = Blueprint("reports", __name__)
    guard.protect(reports, scopes=["reports:read"], resource="https://api.example.com/reports")

    @reports.get("/summary")
    def summary() -> Any:
        return {"ok": True}

    app.register_blueprint(reports, url_prefix="/reports")
    client = app.test_client()
    own = client.get(WELL_KNOWN + "/reports").get_json()
    assert own["resource"] == "https://api.example.com/reports"
    assert own["scopes_supported"] == ["reports:read"]
    assert client.get(WELL_KNOWN).get_json()["scopes_supported"] == ["assets:read", "assets:write"]
    assert_challenge(
        client.get("/reports/summary"),
        401,
        realm="meta",
        description=MISSING,
        params={"resource_metadata": "https://api.example.com" + WELL_KNOWN + "/reports"},
    )


def test_i17_01_document_public_under_protect_app(ccguard_issuer: TestIssuer) -> None:
    app, guard = _app(ccguard_issuer)
    guard.protect(app)
    client = app.test_client()
    assert client.get(WELL_KNOWN).status_code == 200
    assert client.get("/me").status_code == 401


def test_i17_01_consistency_one_document_per_path(ccguard_issuer: TestIssuer) -> None:
    app, guard = _app(ccguard_issuer)
    other = Blueprint("other", __name__)
    # Another host, the same (empty) path: its document would be served at the app's URL.
    guard.protect(other, resource="https://other.example.com")
    with pytest.raises(ConfigurationError, match="share the metadata URL path"):
        app.register_blueprint(other)


@pytest.mark.parametrize(
    "resource",
    [
        pytest.param("HTTPS://api.example.com", id="upper-scheme"),
        pytest.param("https://API.example.com", id="upper-host"),
        pytest.param("https://api.example.com#x", id="fragment"),
        pytest.param("https://api.example.com?x=1", id="query"),
        pytest.param("http://api.example.com", id="http-not-loopback"),
        pytest.param("api.example.com", id="relative"),
        pytest.param(["https://a.example", "https://b.example"], id="list"),
    ],
)
def test_i17_01_resource_must_be_canonical(ccguard_issuer: TestIssuer, resource: Any) -> None:
    app = Flask("meta")
    app.config.update(CCGUARD_ISSUER=ccguard_issuer.issuer, CCGUARD_RESOURCE=resource)
    with pytest.raises(ConfigurationError, match="CCGUARD_RESOURCE"):
        CCGuard(app)


# -- item 2: challenges -----------------------------------------------------------------------------

METADATA = {"resource_metadata": RESOURCE + WELL_KNOWN}


def test_i17_02_every_challenge_names_the_metadata(ccguard_issuer: TestIssuer) -> None:
    app, _ = _app(ccguard_issuer)
    client = app.test_client()
    assert_challenge(client.get("/me"), 401, realm="meta", description=MISSING, params=METADATA)
    assert_challenge(
        client.get("/me", headers=bearer("not-a-jwt")),
        401,
        "invalid_token",
        "The access token is malformed: it does not have three segments.",
        realm="meta",
        params=METADATA,
    )
    token = ccguard_issuer.mint(scope="other")
    assert_challenge(
        client.get("/assets", headers=bearer(token)),
        403,
        "insufficient_scope",
        "The access token lacks the scope(s) assets:read.",
        "assets:read",
        realm="meta",
        params=METADATA,
    )


def test_i17_02_insufficient_scope_lists_all_scopes(ccguard_issuer: TestIssuer) -> None:
    app, guard = _app(ccguard_issuer)
    bp = Blueprint("admin", __name__)
    guard.protect(bp, scopes=["admin"])

    @bp.get("/purge")
    @require_scopes("assets:write", "assets:purge")
    def purge() -> Any:
        return {"ok": True}

    app.register_blueprint(bp, url_prefix="/admin")
    token = ccguard_issuer.mint(scope="admin assets:write")
    assert_challenge(
        app.test_client().get("/admin/purge", headers=bearer(token)),
        403,
        "insufficient_scope",
        "The access token lacks the scope(s) assets:purge.",
        "admin assets:write assets:purge",
        realm="meta",
        params=METADATA,
    )


# -- item 3: audience by default --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "aud"),
    [
        pytest.param("https://api.example.com", "https://api.example.com", id="exact"),
        pytest.param("https://api.example.com", "https://API.Example.com", id="host-case"),
        pytest.param("https://api.example.com", "HTTPS://api.example.com", id="scheme-case"),
        pytest.param("https://api.example.com", "https://api.example.com/", id="trailing-slash"),
        pytest.param("https://api.example.com/", "https://api.example.com", id="configured-trailing-slash"),
        pytest.param("https://api.example.com", "https://api.example.com:443", id="default-port"),
        pytest.param("https://api.example.com/v2", ["urn:other", "https://api.example.com/v2/"], id="list"),
    ],
)
def test_i17_03_audience_is_the_resource_compared_canonically(
    ccguard_issuer: TestIssuer, resource: str, aud: Any
) -> None:
    app, _ = _app(ccguard_issuer, resource)
    resp = app.test_client().get("/me", headers=bearer(ccguard_issuer.mint(aud=aud)))
    assert resp.status_code == 200, resp.get_json()


@pytest.mark.parametrize(
    "aud",
    [
        pytest.param("https://api.example.com:8443", id="other-port"),
        pytest.param("https://api.example.com/v2", id="other-path"),
        pytest.param("http://api.example.com", id="other-scheme"),
        pytest.param("https://api.example.com.evil", id="other-host"),
        pytest.param("https://api.example.com#x", id="fragment"),
        pytest.param(None, id="no-aud"),
    ],
)
def test_i17_03_other_audiences_refused(ccguard_issuer: TestIssuer, aud: Any) -> None:
    app, _ = _app(ccguard_issuer)
    resp = app.test_client().get("/me", headers=bearer(ccguard_issuer.mint(aud=aud)))
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_token"


def test_i17_03_explicit_audience_still_wins(ccguard_issuer: TestIssuer) -> None:
    app, _ = _app(ccguard_issuer, CCGUARD_AUDIENCE="api://assets")
    client = app.test_client()
    assert client.get("/me", headers=bearer(ccguard_issuer.mint(aud="api://assets"))).status_code == 200
    assert client.get("/me", headers=bearer(ccguard_issuer.mint(aud=RESOURCE))).status_code == 401


# -- item 4: scope hierarchies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "hierarchy",
    [
        pytest.param({"assets": ["assets:read", "assets:write"], "admin": ["assets"]}, id="mapping"),
        pytest.param(
            lambda s: {"assets": ["assets:read", "assets:write"], "admin": ["assets"]}.get(s, []), id="callable"
        ),
    ],
)
def test_i17_04_scope_hierarchy(ccguard_issuer: TestIssuer, hierarchy: Any) -> None:
    app, _ = _app(ccguard_issuer, CCGUARD_SCOPE_HIERARCHY=hierarchy)
    client = app.test_client()
    for scope in ("assets:read", "assets", "admin"):
        assert client.get("/assets", headers=bearer(ccguard_issuer.mint(scope=scope))).status_code == 200, scope
    assert client.get("/assets", headers=bearer(ccguard_issuer.mint(scope="assets:write"))).status_code == 403
    assert client.get("/assets", headers=bearer(ccguard_issuer.mint(scope="assetsx"))).status_code == 403


def test_i17_04_scopes_supported_expanded(ccguard_issuer: TestIssuer) -> None:
    app, _ = _app(ccguard_issuer, CCGUARD_SCOPE_HIERARCHY={"assets:write": ["assets:write:draft"]})
    doc = app.test_client().get(WELL_KNOWN).get_json()
    assert doc["scopes_supported"] == ["assets:read", "assets:write", "assets:write:draft"]


def test_i17_04_bad_hierarchy_refused(ccguard_issuer: TestIssuer) -> None:
    app = Flask("meta")
    app.config.update(CCGUARD_ISSUER=ccguard_issuer.issuer, CCGUARD_RESOURCE=RESOURCE, CCGUARD_SCOPE_HIERARCHY=["a"])
    with pytest.raises(ConfigurationError, match="CCGUARD_SCOPE_HIERARCHY must be a mapping"):
        CCGuard(app)


def test_i17_04_cyclic_hierarchy_terminates(ccguard_issuer: TestIssuer) -> None:
    app, _ = _app(ccguard_issuer, CCGUARD_SCOPE_HIERARCHY={"a": ["b"], "b": ["a", "assets:read"]})
    assert app.test_client().get("/assets", headers=bearer(ccguard_issuer.mint(scope="a"))).status_code == 200


def test_i17_03_blueprint_resource_is_its_endpoints_audience(ccguard_issuer: TestIssuer) -> None:
    app, guard = _app(ccguard_issuer)
    reports = Blueprint("reports", __name__)
    guard.protect(reports, resource="https://api.example.com/reports")

    @reports.get("/summary")
    def summary() -> Any:
        return {"ok": True}

    app.register_blueprint(reports, url_prefix="/reports")
    client = app.test_client()
    for_reports = bearer(ccguard_issuer.mint(aud="https://api.example.com/reports/"))
    for_app = bearer(ccguard_issuer.mint(aud=RESOURCE))
    assert client.get("/reports/summary", headers=for_reports).status_code == 200
    # A token for one resource of the app is no token for another (RFC 8707 §2).
    assert client.get("/me", headers=for_reports).status_code == 401
    assert client.get("/reports/summary", headers=for_app).status_code == 401
    assert client.get("/me", headers=for_app).status_code == 200
