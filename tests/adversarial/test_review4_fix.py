"""Review 4 follow-up: class-based views in the routes map and exemptions, token client messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask
from flask.views import MethodView, View

from flask_ccguard import require_scopes, require_token
from flask_ccguard.cli import flask_group
from flask_ccguard.client.credentials import ClientCredentials
from flask_ccguard.client.token_response import TokenRequestError
from flask_ccguard.protection_map import protection_map
from flask_ccguard.testing import TestIssuer
from tests.conftest import guarded_app, send_body, serving


class _GetOnly(MethodView):
    @require_token
    def get(self) -> str:
        return "g"

    def post(self) -> str:
        return "p"


class _Both(MethodView):
    @require_scopes("items:read")
    def get(self) -> str:
        return "g"

    @require_token
    def delete(self) -> str:
        return "d"


class _Decorators(MethodView):
    decorators = [require_token]

    def get(self) -> str:
        return "g"

    def put(self) -> str:
        return "u"


class _Dispatch(View):
    methods = ["GET", "PATCH"]

    @require_token
    def dispatch_request(self) -> str:
        return "d"


_VIEWS: dict[str, type[View]] = {"get_only": _GetOnly, "both": _Both, "decorators": _Decorators, "dispatch": _Dispatch}


def _class_app(issuer: TestIssuer, name: str) -> Flask:
    app, _guard = guarded_app(issuer, "r4fix")
    app.add_url_rule("/things", view_func=_VIEWS[name].as_view(name))
    return app


@pytest.mark.parametrize("name", sorted(_VIEWS))
def test_review4_fix_01_routes_map_agrees_with_class_based_views(issuer: TestIssuer, name: str) -> None:
    app = _class_app(issuer, name)
    rows = [r for r in protection_map(app) if r["endpoint"] == name]
    client = app.test_client()
    seen: set[str] = set()
    for row in rows:
        for method in row["methods"]:
            seen.add(method)
            status = client.open("/things", method=method).status_code
            # The map says a token is needed exactly when a request without one is refused.
            assert (status == 401) == row["token"], (method, status, row)
    assert seen == {m for rule in app.url_map.iter_rules(name) for m in rule.methods or ()} - {"HEAD", "OPTIONS"}


def test_review4_fix_01_routes_map_splits_a_method_view_per_method(issuer: TestIssuer) -> None:
    app = _class_app(issuer, "get_only")
    rows = {tuple(r["methods"]): r for r in protection_map(app) if r["endpoint"] == "get_only"}
    assert rows[("GET",)]["token"] and rows[("GET",)]["requires"] == "token"
    assert not rows[("POST",)]["token"] and rows[("POST",)]["requires"].startswith("OPEN")
    both = {tuple(r["methods"]): r for r in protection_map(_class_app(issuer, "both")) if r["endpoint"] == "both"}
    assert both[("GET",)]["scopes"] == ["items:read"] and both[("DELETE",)]["scopes"] == []


@pytest.mark.parametrize(("name", "code"), [("both", 0), ("decorators", 0), ("dispatch", 0), ("get_only", 1)])
def test_review4_fix_01_fail_on_open_counts_only_really_open_methods(issuer: TestIssuer, name: str, code: int) -> None:
    result = _class_app(issuer, name).test_cli_runner().invoke(flask_group, ["routes", "--fail-on-open"])
    assert result.exit_code == code, result.output
    if code:
        assert "get_only  POST  /things" in result.output


def test_review4_fix_02_exempt_a_class_based_view(issuer: TestIssuer) -> None:
    app, guard = guarded_app(issuer, "r4fix")
    guard.protect(app)

    class Health(MethodView):
        def get(self) -> str:
            return "ok"

    class Sub(Health):
        pass

    assert guard.exempt(Health) is Health
    app.add_url_rule("/health", view_func=Health.as_view("health"))
    app.add_url_rule("/health2", view_func=Health.as_view("health2"))
    app.add_url_rule("/sub", view_func=Sub.as_view("sub"))
    client = app.test_client()
    assert client.get("/health").status_code == 200
    assert client.get("/health2").status_code == 200
    # A subclass is a view of its own: exempting the base does not open it.
    assert client.get("/sub").status_code == 401
    public = {r["endpoint"] for r in protection_map(app) if r["public"]}
    assert {"health", "health2"} <= public and "sub" not in public


def test_review4_fix_02_exempt_refuses_a_class_that_is_no_view(issuer: TestIssuer) -> None:
    _app, guard = guarded_app(issuer, "r4fix")

    class NotAView:
        pass

    with pytest.raises(TypeError, match="View/MethodView class"):
        guard.exempt(NotAView)


def test_review4_fix_02_exempted_class_with_decorated_method_is_a_contradiction(issuer: TestIssuer) -> None:
    app, guard = guarded_app(issuer, "r4fix")

    class Mixed(MethodView):
        @require_token
        def get(self) -> str:
            return "g"

    guard.exempt(Mixed)
    app.add_url_rule("/mixed", view_func=Mixed.as_view("mixed"))
    result = app.test_cli_runner().invoke(flask_group, ["routes"])
    assert result.exit_code == 2 and "'mixed'" in result.output and "cannot be both open and protected" in result.output


@contextmanager
def _token_endpoint(status: int, body: bytes, headers: dict[str, str] | None = None) -> Iterator[str]:
    """A real loopback token endpoint answering every POST with ``status``, ``headers`` and ``body``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            send_body(self, body, status, headers, content_type=None)

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        yield f"{url}/token"


@pytest.mark.parametrize(
    ("token_type", "said"),
    [(1, "a JSON number"), (True, "a JSON boolean"), (["Bearer"], "a JSON array"), ({"x": 1}, "a JSON object")],
)
def test_review4_fix_03_non_string_token_type_is_named_as_such(token_type: Any, said: str) -> None:
    body = json.dumps({"access_token": "abc", "token_type": token_type}).encode()
    with _token_endpoint(200, body) as url, pytest.raises(TokenRequestError) as info:
        ClientCredentials(url, "c", "sekret-123").token()
    text = str(info.value)
    assert f"token_type is {said}, not a string" in text and "RFC 6749 §5.1" in text
    assert "None" not in text and "sekret-123" not in text


def test_review4_fix_03_empty_token_type_is_not_called_none() -> None:
    with (
        _token_endpoint(200, b'{"access_token":"abc","token_type":""}') as url,
        pytest.raises(TokenRequestError) as info,
    ):
        ClientCredentials(url, "c", "sekret-123").token()
    assert "token_type '' (an empty string) is not Bearer" in str(info.value) and "None" not in str(info.value)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_review4_fix_04_token_endpoint_redirect_is_named_without_its_query(status: int) -> None:
    location = "https://user:pw@login.example.com:8443/authorize?client_secret=leak&code=leak2#frag"
    moved = _token_endpoint(status, b"<html>moved</html>", {"Location": location})
    with moved as url, pytest.raises(TokenRequestError) as info:
        ClientCredentials(url, "c", "sekret-123").token()
    text = str(info.value)
    assert "answered a redirect" in text and "to https://login.example.com:8443;" in text
    assert "redirects are not followed" in text and "did not answer JSON" not in text
    assert info.value.status == status
    for secret in ("leak", "authorize", "user", "pw@", "frag", "sekret-123"):
        assert secret not in text


def test_review4_fix_04_redirect_with_a_relative_location_names_the_endpoint_origin() -> None:
    moved = _token_endpoint(302, b"", {"Location": "/elsewhere?x=secret"})
    with moved as url, pytest.raises(TokenRequestError) as info:
        ClientCredentials(url, "c", "sekret-123").token()
    text = str(info.value)
    origin = url.rsplit("/", 1)[0]
    assert f"to {origin};" in text and "secret" not in text.replace("sekret", "")


def _custom_handler_example() -> str:
    """The code block of docs/views.rst's "Custom error handlers" section."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "views.rst").read_text()
    section = text.split("Custom error handlers\n~~~~~~~~~~~~~~~~~~~~~\n", 1)[1]
    block = section.split(".. code-block:: python\n", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines)


def test_review4_fix_05_blueprint_catch_all_handler_keeps_the_challenge_as_documented(issuer: TestIssuer) -> None:
    # Flask asks a blueprint's handlers first: a bare catch-all swallows the 401 (Flask's rule, kept).
    app, _guard = guarded_app(issuer, "r4fix")
    bare = Blueprint("bare", __name__)

    @bare.errorhandler(Exception)
    def swallow(error: Exception) -> tuple[dict[str, str], int]:
        return {"message": "internal error"}, 500

    @bare.get("/bare")
    @require_token
    def bare_view() -> str:
        return "x"

    app.register_blueprint(bare)
    swallowed = app.test_client().get("/bare")
    assert swallowed.status_code == 500 and "WWW-Authenticate" not in swallowed.headers

    # The documented handler hands ccguard's errors back: 401 with the challenge, other errors as before.
    scope: dict[str, Any] = {"__name__": __name__}
    exec(_custom_handler_example(), scope)  # the docs' own example, run as written
    bp: Blueprint = scope["bp"]

    @bp.get("/api")
    @require_token
    def api_view() -> str:
        return "x"

    @bp.get("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    app2, _guard2 = guarded_app(issuer, "r4fix")
    app2.register_blueprint(bp)
    client = app2.test_client()
    refused = client.get("/api")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer realm=")
    assert client.get("/api", headers={"Authorization": f"Bearer {issuer.mint()}"}).data == b"x"
    assert client.get("/boom").status_code == 500 and client.get("/nothing-here").status_code == 404
