"""The map of what each endpoint requires (issue 17): flask_ccguard.protection.requirements()."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from flask_ccguard import require_roles, require_scopes, require_token
from flask_ccguard.protection import declared_scopes, mark_public, requirements
from flask_ccguard.testing import TestIssuer
from flask_ccguard.view_marks import Clause
from tests.conftest import guarded_app


def test_i17_map_decorators_record_their_requirements(ccguard_issuer: TestIssuer) -> None:
    app, _ = guarded_app(ccguard_issuer, "map")

    @app.get("/open")
    def open_view() -> Any:
        return "open"

    @app.get("/token")
    @require_token
    def token_view() -> Any:
        return "t"

    @app.get("/both")
    @require_roles("admin", match="any")
    @require_scopes("assets:read", "assets:write")
    def both() -> Any:
        return "b"

    found = requirements(app)
    assert not found["open_view"].token and not found["open_view"].public
    assert found["token_view"].token and found["token_view"].scopes == ()
    both_ = found["both"]
    assert both_.token and both_.roles == ("admin",) and both_.scopes == ("assets:read", "assets:write")
    assert both_.match == "mixed"
    assert both_.clauses == (Clause(("admin",), (), "any"), Clause((), ("assets:read", "assets:write"), "all"))
    assert found["static"].token is False
    assert declared_scopes(app) == ("assets:read", "assets:write")


def test_i17_map_protect_records_per_app_and_blueprint(ccguard_issuer: TestIssuer) -> None:
    app, guard = guarded_app(ccguard_issuer, "map")
    outer, inner = Blueprint("outer", __name__), Blueprint("inner", __name__)
    guard.protect(outer, scopes=["outer"])
    guard.protect(inner, roles=["reader"], match="any")

    @inner.get("/x")
    @require_scopes("x")
    def x() -> Any:
        return "x"

    @outer.get("/y")
    def y() -> Any:
        return "y"

    outer.register_blueprint(inner, url_prefix="/in")
    app.register_blueprint(outer, url_prefix="/out")
    found = requirements(app)
    assert found["outer.inner.x"].scopes == ("outer", "x") and found["outer.inner.x"].roles == ("reader",)
    assert found["outer.y"].scopes == ("outer",) and found["outer.y"].match == "all"


def test_i17_map_mark_public(ccguard_issuer: TestIssuer) -> None:
    app, guard = guarded_app(ccguard_issuer, "map")
    bp = Blueprint("bp", __name__)
    guard.protect(app)

    @app.get("/health")
    def health() -> Any:
        return "ok"

    @app.get("/named")
    def named() -> Any:
        return "ok"

    @bp.get("/b")
    def b() -> Any:
        return "ok"

    mark_public(health)
    mark_public(bp)
    mark_public("named", guard)
    app.register_blueprint(bp)
    found = requirements(app)
    assert found["health"].public and not found["health"].token
    assert found["named"].public and found["bp.b"].public
    assert not found["static"].public and found["static"].token
