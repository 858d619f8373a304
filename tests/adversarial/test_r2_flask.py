"""Hardening round 2, the Flask layer: findings 4 and 5 of issue 13 (RFC 6750 §2-3)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Blueprint, Flask, request
from flask.views import MethodView

from flask_ccguard import (
    CCGuard,
    ConfigurationError,
    require_roles,
    require_scopes,
    require_token,
    verify_token_in_request,
)
from flask_ccguard.testing import TestIssuer
from tests.challenges import assert_challenge

#: Bodies of protected views that ran; a view body must never run unauthenticated.
RAN: list[str] = []


def new_app(issuer: TestIssuer) -> tuple[Flask, CCGuard]:
    app = Flask("assets")
    app.config.update(CCGUARD_ISSUER=issuer.issuer, CCGUARD_AUDIENCE=issuer.audience)
    return app, CCGuard(app)


def view_body() -> Any:
    RAN.append(request.method)
    return "view ran", 200


class Assets(MethodView):
    decorators = [require_token]

    def get(self) -> Any:
        return view_body()

    def options(self) -> Any:
        return view_body()


def automatic(app: Flask, guard: CCGuard) -> None:
    app.add_url_rule("/v", "v", require_token(view_body))


def explicit_options(app: Flask, guard: CCGuard) -> None:
    app.add_url_rule("/v", "v", require_roles("admin")(view_body), methods=["OPTIONS", "GET"])


def explicit_options_async(app: Flask, guard: CCGuard) -> None:
    async def body() -> Any:
        return view_body()

    app.add_url_rule("/v", "v", require_token(body), methods=["OPTIONS", "GET"])


def method_view(app: Flask, guard: CCGuard) -> None:
    app.add_url_rule("/v", view_func=Assets.as_view("v"))


def imperative(app: Flask, guard: CCGuard) -> None:
    def body() -> Any:
        verify_token_in_request()
        return view_body()

    app.add_url_rule("/v", "v", body, methods=["OPTIONS", "GET"])


def protected_blueprint(app: Flask, guard: CCGuard) -> None:
    bp = Blueprint("bp", __name__)
    guard.protect(bp)
    bp.add_url_rule("/v", "v", view_body, methods=["OPTIONS", "GET"])
    bp.add_url_rule("/mv", view_func=Assets.as_view("mv"))
    app.register_blueprint(bp)


def protected_app(app: Flask, guard: CCGuard) -> None:
    guard.protect(app)
    app.add_url_rule("/v", "v", view_body, methods=["OPTIONS", "GET"])


WAYS: dict[str, Callable[[Flask, CCGuard], None]] = {
    "automatic_options": automatic,
    "explicit_methods_options_get": explicit_options,
    "explicit_methods_async": explicit_options_async,
    "method_view_with_options": method_view,
    "verify_token_in_request": imperative,
    "protect_blueprint": protected_blueprint,
    "protect_app": protected_app,
}


@pytest.mark.parametrize("way", WAYS)
def test_r2_04_options_without_a_token_never_runs_the_view(ccguard_issuer: TestIssuer, way: str) -> None:
    app, guard = new_app(ccguard_issuer)
    WAYS[way](app, guard)
    client = app.test_client()
    RAN.clear()
    preflight = client.options("/v", headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "GET"})
    # Flask's own OPTIONS answer: CORS preflights (and flask-cors, which adds
    # its headers to it in after_request) keep working.
    assert_challenge(preflight, 200, realm="assets")
    assert preflight.data == b""
    assert set(preflight.headers["Allow"].split(", ")) >= {"GET", "OPTIONS"}
    assert RAN == []
    assert_challenge(client.get("/v"), 401, realm="assets")
    assert RAN == []


@pytest.mark.parametrize("way", [w for w in WAYS if w != "automatic_options"])
def test_r2_04_options_with_credentials_is_checked_like_any_request(ccguard_issuer: TestIssuer, way: str) -> None:
    app, guard = new_app(ccguard_issuer)
    WAYS[way](app, guard)
    client = app.test_client()
    RAN.clear()
    refused = client.options("/v", headers={"Authorization": "Bearer not.a.jwt"})
    assert refused.status_code == 401
    assert RAN == []
    claims: dict[str, Any] = {"roles": ["admin"]}
    passed = client.options("/v", headers={"Authorization": f"Bearer {ccguard_issuer.mint(**claims)}"})
    assert passed.text == "view ran"
    assert RAN == ["OPTIONS"]


def test_r2_04_options_on_a_protected_blueprints_method_view(ccguard_issuer: TestIssuer) -> None:
    app, guard = new_app(ccguard_issuer)
    protected_blueprint(app, guard)
    RAN.clear()
    resp = app.test_client().options("/mv")
    assert_challenge(resp, 200, realm="assets")
    assert RAN == []


def test_r2_04_protect_app_keeps_404_for_options_on_unknown_urls(ccguard_issuer: TestIssuer) -> None:
    app, guard = new_app(ccguard_issuer)
    protected_app(app, guard)
    assert app.test_client().options("/nowhere").status_code == 404


def test_r2_04_verify_token_in_request_in_before_request_keeps_404_for_options(ccguard_issuer: TestIssuer) -> None:
    app, _ = new_app(ccguard_issuer)

    @app.before_request
    def check() -> None:
        verify_token_in_request()

    app.add_url_rule("/v", "v", view_body, methods=["OPTIONS", "GET"])
    RAN.clear()
    client = app.test_client()
    assert client.options("/nowhere").status_code == 404
    assert_challenge(client.options("/v"), 200, realm="assets")
    assert RAN == []


# -- finding 5: a route decorator below ccguard's serves the bare view ---------------------

#: Wrong order at module level, in a blueprint registered late.
late_bp = Blueprint("late_bp", __name__)


@require_roles("admin", "auditor", match="any")
@late_bp.get("/late")
def late_view() -> Any:
    return view_body()


#: Right order at module level; ``shared`` is also served bare on purpose by one app below.
right_bp = Blueprint("right_bp", __name__)


@right_bp.get("/right")
@require_token
def right_view() -> Any:
    return view_body()


def shared() -> Any:
    return "shared"


def wrong_order_message(name: str, endpoint: str, decorator: str, route: str) -> str:
    return (
        f"The view {name!r} (endpoint {endpoint!r}) is served without its {decorator} check: {decorator} is "
        "written above the route decorator, which had already registered the bare function. Put the route "
        f"decorator on top:\n\n    {route}\n    {decorator}\n    def {name}(...):"
    )


def test_r2_05_route_decorator_inside_fails_the_first_request_showing_the_right_order(
    ccguard_issuer: TestIssuer,
) -> None:
    app, _ = new_app(ccguard_issuer)

    @require_token
    @app.get("/open")
    def opened() -> Any:
        return view_body()

    app.testing = True
    RAN.clear()
    for _ in range(2):  # and every request after, until the order is fixed
        with pytest.raises(ConfigurationError) as info:
            app.test_client().get("/open")
        assert str(info.value) == wrong_order_message("opened", "opened", "@require_token", "@app.route(...)")
    assert RAN == []


def test_r2_05_a_late_registered_blueprint_is_checked_too(ccguard_issuer: TestIssuer) -> None:
    app, _ = new_app(ccguard_issuer)
    app.register_blueprint(late_bp)  # after init_app
    app.testing = True
    with pytest.raises(ConfigurationError) as info:
        app.test_client().get("/late")
    decorator = "@require_roles('admin', 'auditor', match='any')"
    assert str(info.value) == wrong_order_message("late_view", "late_bp.late_view", decorator, "@late_bp.route(...)")
    assert RAN == []


def test_r2_05_views_routed_before_init_app_fail_at_start_up(ccguard_issuer: TestIssuer) -> None:
    app = Flask("assets")
    app.config.update(CCGUARD_ISSUER=ccguard_issuer.issuer, CCGUARD_AUDIENCE=ccguard_issuer.audience)

    @require_scopes("assets:read")
    @app.get("/open")
    def opened() -> Any:
        return view_body()

    with pytest.raises(ConfigurationError) as info:
        CCGuard(app)
    assert str(info.value) == wrong_order_message(
        "opened", "opened", "@require_scopes('assets:read')", "@app.route(...)"
    )
    assert "ccguard" not in app.extensions


def test_r2_05_the_right_order_and_deliberate_open_twins_serve(ccguard_issuer: TestIssuer) -> None:
    first, _ = new_app(ccguard_issuer)
    first.register_blueprint(right_bp)
    first.add_url_rule("/shared", "shared", require_token(shared))
    second, _ = new_app(ccguard_issuer)
    second.add_url_rule("/shared", "shared", shared)  # bare on purpose; wrapped only for the first app

    def nested() -> Any:
        return "nested"

    second.add_url_rule("/nested", "nested", nested)
    second.add_url_rule("/nested-protected", "nested_protected", require_token(nested))
    token = {"Authorization": f"Bearer {ccguard_issuer.mint()}"}
    assert_challenge(first.test_client().get("/right"), 401, realm="assets")
    assert first.test_client().get("/right", headers=token).text == "view ran"
    assert_challenge(first.test_client().get("/shared"), 401, realm="assets")
    assert second.test_client().get("/shared").text == "shared"
    assert second.test_client().get("/nested").text == "nested"
    assert_challenge(second.test_client().get("/nested-protected"), 401, realm="assets")
