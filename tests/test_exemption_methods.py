"""Outside review: ``@public`` on one method of a class-based view ("public read, protected write").

``@public`` on ``MethodView.get`` under ``guard.protect()`` was silently
ignored (GET answered 401); it now opens exactly the requests that method
serves, and ``flask ccguard routes`` says so per method. Every case sends real
requests through ``app.test_client()``, with and without a token, and checks
that the routes map agrees with each answer.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from flask import Blueprint, Flask
from flask.views import MethodView, View

from flask_ccguard import CCGuard, ConfigurationError, public, require_scopes, require_token
from flask_ccguard.cli import flask_group
from flask_ccguard.protection import declared_scopes
from flask_ccguard.protection_map import protection_map
from flask_ccguard.testing import TestIssuer
from tests.conftest import bearer, make_app

Build = Callable[[Flask, CCGuard], str]


def _guard(app: Flask) -> CCGuard:
    guard: CCGuard = app.extensions["ccguard"].guard
    return guard


# -- the views, each routed by a builder that returns its URL ------------------------------------


class Assets(MethodView):
    """Public read, protected write."""

    @public
    def get(self) -> Any:
        return {"assets": []}

    def post(self) -> Any:
        return {"created": True}

    def delete(self) -> Any:
        return {"deleted": True}


class AssetsOwnHead(Assets):
    """``head()`` of its own is not ``@public``: HEAD stays protected."""

    def head(self) -> Any:
        return ""


class AssetsPublicHead(MethodView):
    """Only ``head()`` is public: HEAD opens, GET does not."""

    def get(self) -> Any:
        return {"assets": []}

    @public
    def head(self) -> Any:
        return ""


class AssetsScoped(MethodView):
    """``@public`` read beside a scoped write."""

    @public
    def get(self) -> Any:
        return {"assets": []}

    @require_scopes("assets:write")
    def post(self) -> Any:
        return {"created": True}


class Health(View):
    """A plain View: ``@public`` on ``dispatch_request`` opens every method."""

    methods = ["GET", "POST"]

    @public
    def dispatch_request(self) -> Any:
        return {"ok": True}


def _protected_app(cls: type[View]) -> Build:
    def build(app: Flask, guard: CCGuard) -> str:
        guard.protect(app)
        app.add_url_rule("/assets", view_func=cls.as_view("assets"))
        return "/assets"

    return build


def _protected_blueprint(app: Flask, guard: CCGuard) -> str:
    bp = Blueprint("shop", __name__, url_prefix="/shop")
    guard.protect(bp)
    bp.add_url_rule("/assets", view_func=Assets.as_view("assets"))
    app.register_blueprint(bp)
    return "/shop/assets"


def _scoped_under_protect(app: Flask, guard: CCGuard) -> str:
    guard.protect(app, scopes=["assets:read"])
    app.add_url_rule("/assets", view_func=AssetsScoped.as_view("assets"))
    return "/assets"


# (method, token claims or None for no token, expected status)
Request = tuple[str, "dict[str, Any] | None", int]
ANY: dict[str, Any] = {}

CASES: list[Any] = [
    pytest.param(
        _protected_app(Assets),
        [
            *[("GET", None, 200), ("HEAD", None, 200), ("POST", None, 401), ("DELETE", None, 401)],
            *[("GET", ANY, 200), ("POST", ANY, 200), ("DELETE", ANY, 200)],
        ],
        id="get_open_post_delete_protected_app",
    ),
    pytest.param(
        _protected_blueprint,
        [("GET", None, 200), ("HEAD", None, 200), ("POST", None, 401), ("POST", ANY, 200)],
        id="protected_blueprint",
    ),
    pytest.param(
        _protected_app(AssetsOwnHead),
        [("GET", None, 200), ("HEAD", None, 401), ("HEAD", ANY, 200), ("POST", None, 401)],
        id="own_head_stays_protected",
    ),
    pytest.param(
        _protected_app(AssetsPublicHead),
        [("HEAD", None, 200), ("GET", None, 401), ("GET", ANY, 200)],
        id="public_head_only",
    ),
    pytest.param(
        _scoped_under_protect,
        [
            *[("GET", None, 200), ("POST", None, 401), ("POST", {"scope": "assets:read"}, 403)],
            ("POST", {"scope": "assets:read assets:write"}, 200),
        ],
        id="scoped_write_beside_public_read",
    ),
    pytest.param(
        _protected_app(Health),
        [("GET", None, 200), ("HEAD", None, 200), ("POST", None, 200)],
        id="plain_view_dispatch_request_is_the_whole_view",
    ),
]


def _map_says(app: Flask, endpoint: str, method: str) -> dict[str, Any]:
    """The routes-map row that covers ``method`` of ``endpoint`` (HEAD: its own row, else GET's)."""
    rows = [row for row in protection_map(app) if row["endpoint"] == endpoint]
    for wanted in (method, "GET") if method == "HEAD" else (method,):
        for row in rows:
            if wanted in row["methods"]:
                return row
    raise AssertionError(f"no row for {method} {endpoint}: {rows}")


@pytest.mark.parametrize(("build", "requests"), CASES)
def test_public_method_01_requests_and_map_agree(
    ccguard_issuer: TestIssuer, build: Build, requests: list[Request]
) -> None:
    app = make_app(ccguard_issuer)
    url = build(app, _guard(app))
    endpoint = app.url_map.bind("localhost").match(url)[0]
    client = app.test_client()
    for method, claims, status in requests:
        headers = {} if claims is None else bearer(ccguard_issuer.mint(**claims))
        got = client.open(url, method=method, headers=headers).status_code
        assert got == status, (method, claims, got)
        row = _map_says(app, endpoint, method)
        if claims is None:
            # The map says what an untokened request gets: public rows answer, token rows refuse.
            assert row["public"] == (status == 200), (method, row)
            assert row["token"] == (status == 401), (method, row)


def test_public_method_02_fail_on_open_counts_public_methods_as_public(ccguard_issuer: TestIssuer) -> None:
    # Unprotected app: @public get is deliberate, the bare post()/delete() are open.
    app = make_app(ccguard_issuer)
    app.add_url_rule("/assets", view_func=Assets.as_view("assets"))
    result = app.test_cli_runner().invoke(flask_group, ["routes", "--fail-on-open"])
    assert result.exit_code == 1, result.output
    flagged = [line.split() for line in result.output.split("not declared public:")[1].splitlines()]
    assert ["assets", "DELETE,", "POST", "/assets"] in flagged, result.output
    assert not [line for line in flagged if "GET" in line], result.output
    # Protected: the public get is no longer "open", nothing else is either.
    protected = make_app(ccguard_issuer)
    _protected_app(Assets)(protected, _guard(protected))
    result = protected.test_cli_runner().invoke(flask_group, ["routes", "--fail-on-open"])
    assert result.exit_code == 0, result.output
    assert "GET" in result.output and "public" in result.output
    assert protected.test_client().get("/assets").status_code == 200


def test_public_method_03_scopes_supported_unaffected(ccguard_issuer: TestIssuer) -> None:
    app = make_app(ccguard_issuer)
    _scoped_under_protect(app, _guard(app))
    assert declared_scopes(app) == ("assets:read", "assets:write")
    assert app.test_client().get("/assets").status_code == 200


class _BothOnGet(MethodView):
    @require_token
    @public
    def get(self) -> Any:
        return {}


class _ClassWide(MethodView):
    decorators = [require_token]

    @public
    def get(self) -> Any:
        return {}

    def post(self) -> Any:
        return {}


class _DispatchProtected(MethodView):
    @require_token
    def dispatch_request(self, **kwargs: Any) -> Any:
        return super().dispatch_request(**kwargs)

    @public
    def get(self) -> Any:
        return {}


@pytest.mark.parametrize(
    ("cls", "says"),
    [
        pytest.param(_BothOnGet, "'_BothOnGet.get'", id="public_and_require_token_on_get"),
        pytest.param(_ClassWide, "'decorators' attribute", id="class_decorators_require_token"),
        pytest.param(_DispatchProtected, "'_DispatchProtected.get'", id="protected_dispatch"),
    ],
)
def test_public_method_04_contradiction_refused_at_start_up(
    ccguard_issuer: TestIssuer, cls: type[View], says: str
) -> None:
    app = make_app(ccguard_issuer)
    _protected_app(cls)(app, _guard(app))
    result = app.test_cli_runner().invoke(flask_group, ["routes"])
    assert result.exit_code == 2 and says in result.output, result.output
    app.testing = True  # the first request's check raises instead of answering 500
    with pytest.raises(ConfigurationError, match="endpoint 'assets'"):
        app.test_client().get("/assets")
