"""Issue 17 items 5 and 6: ``guard.exempt`` / ``@public`` and ``flask ccguard routes``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask

from example_app import create_app
from flask_ccguard import CCGuard, ConfigurationError, public, require_roles, require_scopes, require_token
from flask_ccguard.cli import flask_group

ISSUER = "https://idp.example.com/tenant-1"
API = "https://api.example.com"


def _app(name: str = "api", static: bool = False) -> tuple[Flask, CCGuard]:
    app = Flask(name, static_folder="static" if static else None)
    app.config.update(CCGUARD_ISSUER=ISSUER, CCGUARD_AUDIENCE=API)
    return app, CCGuard(app)


def _status(app: Flask, path: str) -> int:
    return app.test_client().get(path).status_code


# -- item 5: exemption --------------------------------------------------------------


def test_i17_05_exempt_view_of_a_protected_app() -> None:
    app, guard = _app()
    guard.protect(app)

    @app.get("/health")
    @guard.exempt
    def health() -> Any:
        return {"ok": True}

    @app.get("/data")
    def data() -> Any:
        return {"data": 1}

    assert _status(app, "/health") == 200
    assert _status(app, "/data") == 401
    assert _status(app, "/nowhere") == 401  # protect(app) still answers unknown URLs first


def test_i17_05_public_view_of_a_protected_blueprint() -> None:
    app, guard = _app()
    bp = Blueprint("assets", __name__, url_prefix="/assets")
    guard.protect(bp, roles=["guest"])

    @bp.get("/health")
    @public
    def health() -> Any:
        return {"ok": True}

    @bp.get("")
    def list_assets() -> Any:
        return []

    app.register_blueprint(bp)
    assert _status(app, "/assets/health") == 200
    assert _status(app, "/assets") == 401


def test_i17_05_exempt_blueprint_from_app_wide_protection() -> None:
    app, guard = _app()
    guard.protect(app)
    docs = guard.exempt(Blueprint("docs", __name__, url_prefix="/docs"))
    docs.add_url_rule("/index", "index", lambda: "docs")
    app.add_url_rule("/private", "private", lambda: "private")
    app.register_blueprint(docs)
    assert _status(app, "/docs/index") == 200
    assert _status(app, "/private") == 401


def test_i17_05_exempt_endpoint_name_registered_later_in_every_app() -> None:
    # A module-level guard and blueprint, an app factory: the exemption by
    # name is made before the blueprint is registered, and holds on each app.
    guard = CCGuard()
    bp = Blueprint("api", __name__)
    guard.protect(bp)
    bp.add_url_rule("/health", "health", lambda: "ok")
    bp.add_url_rule("/data", "data", lambda: "data")
    guard.exempt("api.health")

    def factory(name: str) -> Flask:
        app = Flask(name)
        app.config.update(CCGUARD_ISSUER=ISSUER, CCGUARD_AUDIENCE=API)
        guard.init_app(app)
        guard.protect(bp)  # repeated per app, harmless
        app.register_blueprint(bp)
        return app

    for app in (factory("one"), factory("two")):
        assert _status(app, "/health") == 200
        assert _status(app, "/data") == 401


def test_i17_05_exemption_by_name_belongs_to_its_guard() -> None:
    bp = Blueprint("api", __name__)
    bp.add_url_rule("/health", "health", lambda: "ok")
    app, guard = _app()
    guard.protect(bp)
    CCGuard().exempt("api.health")  # another guard, not this app's
    app.register_blueprint(bp)
    assert _status(app, "/health") == 401


def test_i17_05_exempt_refuses_an_app() -> None:
    app, guard = _app()
    with pytest.raises(TypeError, match=r"do not call guard\.protect"):
        guard.exempt(app)


def test_i17_05_public_above_require_token_is_refused_naming_the_view() -> None:
    with pytest.raises(ConfigurationError, match=r"'report'.*both open and protected"):

        @public
        @require_token
        def report() -> Any:
            return "r"


def test_i17_05_require_token_above_public_is_refused_at_start_up() -> None:
    app = Flask("api")
    app.config.update(CCGUARD_ISSUER=ISSUER, CCGUARD_AUDIENCE=API)

    @app.get("/report")
    @require_scopes("reports:read")
    @public
    def report() -> Any:
        return "r"

    with pytest.raises(ConfigurationError, match=r"'report' \(endpoint 'report'\).*both open and protected"):
        CCGuard(app)


def test_i17_05_exempt_name_of_a_decorated_view_fails_before_the_first_request() -> None:
    app, guard = _app()
    guard.exempt("api.report")
    bp = Blueprint("api", __name__)

    @bp.get("/report")
    @require_roles("admin")
    def report() -> Any:
        return "r"

    app.register_blueprint(bp)  # after init_app: checked at the first request
    app.testing = True
    with pytest.raises(ConfigurationError, match=r"'api\.report'"):
        app.test_client().get("/report")


# -- item 6: flask ccguard routes ---------------------------------------------------


def _small_app() -> Flask:
    app, guard = _app("small", static=True)
    bp = Blueprint("assets", __name__, url_prefix="/assets")
    guard.protect(bp, roles=["guest", "admin"], match="any")

    @bp.get("")
    def list_assets() -> Any:
        return []

    @bp.post("")
    @require_scopes("assets:write")
    def create_asset() -> Any:
        return {}

    @bp.get("/health")
    @public
    def health() -> Any:
        return "ok"

    app.register_blueprint(bp)

    @app.get("/me")
    @require_token
    def me() -> Any:
        return {}

    return app


def _open_view(app: Flask) -> None:
    @app.route("/legacy", methods=["GET", "POST"])
    def legacy() -> Any:
        return "anyone"


TABLE = """\
Endpoint             Methods  Rule                     Requires
-------------------  -------  -----------------------  -----------------------------------------------------
assets.create_asset  POST     /assets                  token; roles any of guest, admin; scopes assets:write
assets.health        GET      /assets/health           public
assets.list_assets   GET      /assets                  token; roles any of guest, admin
me                   GET      /me                      token
static               GET      /static/<path:filename>  public (static files)
"""


def test_i17_06_routes_table() -> None:
    result = _small_app().test_cli_runner().invoke(flask_group, ["routes"])
    assert result.exit_code == 0, result.output
    assert result.output == TABLE


def test_i17_06_routes_json() -> None:
    result = _small_app().test_cli_runner().invoke(flask_group, ["routes", "--json"])
    assert result.exit_code == 0, result.output
    common = {"binding": None}
    assert json.loads(result.output) == [
        {
            "endpoint": "assets.create_asset",
            "methods": ["POST"],
            "rule": "/assets",
            "public": False,
            "token": True,
            "roles": ["guest", "admin"],
            "scopes": ["assets:write"],
            "match": "mixed",
            **common,
        },
        {
            "endpoint": "assets.health",
            "methods": ["GET"],
            "rule": "/assets/health",
            "public": True,
            "token": False,
            "roles": [],
            "scopes": [],
            "match": "all",
            **common,
        },
        {
            "endpoint": "assets.list_assets",
            "methods": ["GET"],
            "rule": "/assets",
            "public": False,
            "token": True,
            "roles": ["guest", "admin"],
            "scopes": [],
            "match": "any",
            **common,
        },
        {
            "endpoint": "me",
            "methods": ["GET"],
            "rule": "/me",
            "public": False,
            "token": True,
            "roles": [],
            "scopes": [],
            "match": "all",
            **common,
        },
        {
            "endpoint": "static",
            "methods": ["GET"],
            "rule": "/static/<path:filename>",
            "public": True,
            "token": False,
            "roles": [],
            "scopes": [],
            "match": "all",
            **common,
        },
    ]


def test_i17_06_fail_on_open_passes_when_every_open_endpoint_is_public() -> None:
    result = _small_app().test_cli_runner().invoke(flask_group, ["routes", "--fail-on-open"])
    assert result.exit_code == 0, result.output


def test_i17_06_fail_on_open_lists_open_endpoints_and_exits_1() -> None:
    app = _small_app()
    _open_view(app)
    runner = app.test_cli_runner()
    result = runner.invoke(flask_group, ["routes", "--fail-on-open"])
    assert result.exit_code == 1
    assert "\nlegacy               GET, POST  /legacy                  OPEN (not declared public)\n" in result.output
    assert "1 endpoint(s) need no token and are not declared public:\n  legacy  GET, POST  /legacy\n" in result.output
    # Without the flag, the map is only shown.
    assert runner.invoke(flask_group, ["routes"]).exit_code == 0
    assert runner.invoke(flask_group, ["routes", "--json", "--fail-on-open"]).exit_code == 1


def test_i17_06_static_files_under_app_wide_protection_need_a_token() -> None:
    app, guard = _app("small", static=True)
    guard.protect(app)
    rows = json.loads(app.test_cli_runner().invoke(flask_group, ["routes", "--json"]).output)
    assert rows[0]["endpoint"] == "static" and rows[0]["token"] and not rows[0]["public"]


def test_i17_06_routes_reports_a_contradiction_as_a_usage_error() -> None:
    app, guard = _app()
    guard.exempt("report")

    @app.get("/report")
    @require_token
    def report() -> Any:
        return "r"

    result = app.test_cli_runner().invoke(flask_group, ["routes"])
    assert result.exit_code == 2
    assert "'report' (endpoint 'report')" in result.output


def test_i17_06_routes_without_the_extension_exits_2() -> None:
    result = Flask("bare").test_cli_runner().invoke(flask_group, ["routes"])
    assert result.exit_code == 2
    assert "not set up" in result.output


def test_i17_06_example_app_passes_fail_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CCGUARD_ISSUER", "CCGUARD_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)
    app = create_app({"EXAMPLE_INSTANCE_PATH": str(tmp_path)})
    result = app.test_cli_runner().invoke(flask_group, ["routes", "--fail-on-open"])
    assert result.exit_code == 0, result.output
    assert "OPEN" not in result.output
    listed = json.loads(app.test_cli_runner().invoke(flask_group, ["routes", "--json"]).output)
    rows = {row["endpoint"]: row for row in listed}
    assert all(rows[e]["public"] for e in ("issuer.token", "issuer.jwks", "openapi.openapi_json"))
    assert rows["applications.list_applications"]["roles"] == ["archivist_administrator"]
    assert rows["assets.create_asset"]["roles"] == ["archivist_administrator"]
