"""Default RFC 6750 responses, their replacement by the app, and query/form tokens."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask

from flask_ccguard import CCGuard, CCGuardError, InvalidToken, require_roles, require_token
from flask_ccguard.testing import TestIssuer
from tests.challenges import assert_challenge
from tests.conftest import make_app


def test_challenge_is_exactly_rfc_6750_with_the_import_name_as_default_realm(ccguard_issuer: TestIssuer) -> None:
    client = make_app(ccguard_issuer, "my_api").test_client()
    resp = client.get("/v", headers={"Authorization": f"Bearer {ccguard_issuer.mint(expires_in=-600)}"})
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == (
        'Bearer realm="my_api", error="invalid_token", error_description="The access token has expired."'
    )
    assert resp.get_json() == {"error": "invalid_token", "error_description": "The access token has expired."}
    assert client.get("/v").headers["WWW-Authenticate"] == 'Bearer realm="my_api"'


def test_names_from_the_app_cannot_break_the_challenge(ccguard_issuer: TestIssuer) -> None:
    app = make_app(ccguard_issuer)

    @app.get("/odd")
    @require_roles('adm"in\\', "r\u00f4le")
    def odd() -> str:
        return "x"

    resp = app.test_client().get("/odd", headers={"Authorization": f"Bearer {ccguard_issuer.mint()}"})
    assert resp.headers["WWW-Authenticate"] == (
        'Bearer realm="assets", error="insufficient_scope", '
        'error_description="The access token lacks the role(s) adm?in?, r?le."'
    )


def test_keys_unavailable_is_503_with_retry_after_and_no_challenge(ccguard_issuer: TestIssuer) -> None:
    ccguard_issuer.jwks_status = 500
    resp = (
        make_app(ccguard_issuer).test_client().get("/v", headers={"Authorization": f"Bearer {ccguard_issuer.mint()}"})
    )
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "30"
    assert "WWW-Authenticate" not in resp.headers
    assert resp.get_json() == {
        "error": "temporarily_unavailable",
        "error_description": "The token issuer is unavailable; try again later.",
    }


def own_handler(error: CCGuardError) -> Any:
    return {"problem": error.reason}, error.status


@pytest.mark.parametrize("when", ["before init_app", "after init_app"])
def test_app_errorhandler_replaces_the_default_response(ccguard_issuer: TestIssuer, when: str) -> None:
    app = Flask("assets")
    app.config.update(CCGUARD_ISSUER=ccguard_issuer.issuer, CCGUARD_AUDIENCE=ccguard_issuer.audience)
    if when == "before init_app":
        app.register_error_handler(CCGuardError, own_handler)
    CCGuard(app)
    if when == "after init_app":
        app.register_error_handler(CCGuardError, own_handler)
    app.add_url_rule("/v", "v", require_token(lambda: "ok"))
    resp = app.test_client().get("/v")
    assert (resp.status_code, resp.get_json(), resp.headers.get("WWW-Authenticate")) == (
        401,
        {"problem": "missing"},
        None,
    )


def test_handlers_for_a_subclass_or_a_blueprint_win_over_the_default(ccguard_issuer: TestIssuer) -> None:
    app = make_app(ccguard_issuer)
    app.register_error_handler(InvalidToken, lambda e: ("invalid: " + e.reason, 401))
    bp = Blueprint("bp", __name__)
    bp.register_error_handler(CCGuardError, lambda e: ("bp: " + e.reason, e.status))
    bp.add_url_rule("/bp", "v", require_token(lambda: "ok"))
    app.register_blueprint(bp)
    client = app.test_client()
    expired = {"Authorization": f"Bearer {ccguard_issuer.mint(expires_in=-600)}"}
    assert client.get("/v", headers=expired).text == "invalid: expired"
    assert client.get("/bp").text == "bp: missing"
    assert_challenge(client.get("/v"), 401)  # the default still answers the rest


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("config", "method", "where", "expected"),
    [
        # Still a bare 401; the description says what was found (i14-07).
        (
            {},
            "GET",
            "query",
            (
                401,
                None,
                "A token was sent in the query string, which this API does not accept; "
                "send it in the Authorization header as 'Bearer <token>'.",
            ),
        ),
        (
            {},
            "POST",
            "form",
            (
                401,
                None,
                "A token was sent in the form body, which this API does not accept; "
                "send it in the Authorization header as 'Bearer <token>'.",
            ),
        ),
        ({"CCGUARD_ALLOW_QUERY_TOKEN": True}, "GET", "query", (200, None, None)),
        ({"CCGUARD_ALLOW_FORM_TOKEN": True}, "POST", "form", (200, None, None)),
        ({"CCGUARD_ALLOW_FORM_TOKEN": True}, "POST", "json", (401, None, None)),
        ({"CCGUARD_ALLOW_FORM_TOKEN": True}, "GET", "form", (401, None, None)),
        (
            {"CCGUARD_ALLOW_QUERY_TOKEN": True},
            "GET",
            "query+header",
            (400, "invalid_request", "The access token was sent by more than one method."),
        ),
        (
            {"CCGUARD_ALLOW_FORM_TOKEN": True},
            "POST",
            "form+header",
            (400, "invalid_request", "The access token was sent by more than one method."),
        ),
        (
            {"CCGUARD_ALLOW_QUERY_TOKEN": True},
            "GET",
            "query twice",
            (400, "invalid_request", "The query string carries more than one access_token."),
        ),
    ],
)
def test_query_and_form_tokens_only_when_enabled(
    ccguard_issuer: TestIssuer, config: dict[str, Any], method: str, where: str, expected: tuple[Any, ...]
) -> None:
    client = make_app(ccguard_issuer, **config).test_client()
    token = ccguard_issuer.mint()
    kwargs: dict[str, Any] = {"method": method}
    if where.startswith("query"):
        kwargs["query_string"] = [("access_token", token)] * (2 if where.endswith("twice") else 1)
    if where.startswith("form"):
        kwargs["data"] = {"access_token": token}
        kwargs["content_type"] = FORM
    if where == "json":
        kwargs["json"] = {"access_token": token}
    if where.endswith("header"):
        kwargs["headers"] = {"Authorization": f"Bearer {token}"}
    resp = client.open("/v", **kwargs)
    assert_challenge(resp, *expected)


def test_success_with_a_query_token_is_marked_private(ccguard_issuer: TestIssuer) -> None:
    # RFC 6750 §2.3: so that shared caches do not keep a response to a URL holding a token.
    client = make_app(ccguard_issuer, CCGUARD_ALLOW_QUERY_TOKEN=True).test_client()
    resp = client.get("/v", query_string={"access_token": ccguard_issuer.mint()})
    assert (resp.status_code, resp.headers["Cache-Control"]) == (200, "private")
    resp = client.get("/v", headers={"Authorization": f"Bearer {ccguard_issuer.mint()}"})
    assert "Cache-Control" not in resp.headers
