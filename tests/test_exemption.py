"""Issue 17 item 5: ``guard.exempt`` / ``@public``."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask

from flask_ccguard import CCGuard, ConfigurationError, public, require_roles, require_scopes, require_token

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
