"""Default RFC 6750 responses, their replacement by the app, and query/form tokens."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest
from flask import Blueprint, Flask

from flask_ccguard import CCGuard, CCGuardError, InvalidToken, require_roles, require_token
from flask_ccguard.responses import BEARER, challenges
from flask_ccguard.testing import TestIssuer
from tests.challenges import DPOP as DEFAULT_DPOP
from tests.challenges import assert_challenge
from tests.conftest import make_app


def test_challenge_is_exactly_rfc_6750_with_the_import_name_as_default_realm(ccguard_issuer: TestIssuer) -> None:
    client = make_app(ccguard_issuer, "my_api").test_client()
    resp = client.get("/v", headers={"Authorization": f"Bearer {ccguard_issuer.mint(expires_in=-600)}"})
    assert_challenge(resp, 401, "invalid_token", "The access token has expired.", realm="my_api")
    assert_challenge(client.get("/v"), 401, realm="my_api")


def test_names_from_the_app_cannot_break_the_challenge(ccguard_issuer: TestIssuer) -> None:
    app = make_app(ccguard_issuer)

    @app.get("/odd")
    @require_roles('adm"in\\', "r\u00f4le")
    def odd() -> str:
        return "x"

    resp = app.test_client().get("/odd", headers={"Authorization": f"Bearer {ccguard_issuer.mint()}"})
    raw = 'The access token lacks the role(s) adm"in\\, r\u00f4le.'
    escaped = "The access token lacks the role(s) adm?in?, r?le."
    assert_challenge(resp, 403, "insufficient_scope", raw, realm="assets", escaped=escaped)


def test_keys_unavailable_is_503_with_retry_after_and_no_challenge(ccguard_issuer: TestIssuer) -> None:
    ccguard_issuer.jwks_status = 500
    resp = (
        make_app(ccguard_issuer).test_client().get("/v", headers={"Authorization": f"Bearer {ccguard_issuer.mint()}"})
    )
    assert_challenge(resp, 503, retry_after="30", realm="assets")


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
    assert_challenge(client.get("/v"), 401, realm="assets")  # the default still answers the rest


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
    assert_challenge(resp, *expected, realm="assets")


def test_success_with_a_query_token_is_marked_private(ccguard_issuer: TestIssuer) -> None:
    # RFC 6750 §2.3: so that shared caches do not keep a response to a URL holding a token.
    client = make_app(ccguard_issuer, CCGUARD_ALLOW_QUERY_TOKEN=True).test_client()
    resp = client.get("/v", query_string={"access_token": ccguard_issuer.mint()})
    assert (resp.status_code, resp.headers["Cache-Control"]) == (200, "private")
    resp = client.get("/v", headers={"Authorization": f"Bearer {ccguard_issuer.mint()}"})
    assert "Cache-Control" not in resp.headers


def test_i15_07_the_challenge_helper_has_no_default_realm() -> None:
    realm = inspect.signature(assert_challenge).parameters["realm"]
    assert (realm.kind, realm.default) == (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.empty)


# -- challenges built from the accepted schemes (issue 15 item 5) ---------------------

METADATA = "https://api.example/.well-known/oauth-protected-resource"
DPOP: tuple[str, dict[str, str]] = ("DPoP", {"algs": "ES256 PS256"})


def _offering(app: Flask, **changes: Any) -> Flask:
    # What the DPoP (RFC 9449 §7.1) and RFC 9728 §5.1 work will set in init_app: one value each.
    app.extensions["ccguard"] = dataclasses.replace(app.extensions["ccguard"], **changes)
    return app


def test_i15_05_two_schemes_and_resource_metadata_are_configuration_not_code(ccguard_issuer: TestIssuer) -> None:
    app = _offering(
        make_app(ccguard_issuer), schemes=(("Bearer", {}), DPOP), challenge_params={"resource_metadata": METADATA}
    )
    client = app.test_client()
    resp = client.get("/v", headers={"Authorization": f"Bearer {ccguard_issuer.mint(expires_in=-600)}"})
    expired = 'error="invalid_token", error_description="The access token has expired."'
    assert resp.headers.getlist("WWW-Authenticate") == [
        f'Bearer realm="assets", resource_metadata="{METADATA}", {expired}, '
        f'DPoP realm="assets", resource_metadata="{METADATA}", {expired}, algs="ES256 PS256"'
    ]
    offer: tuple[tuple[str, dict[str, str]], ...] = (("Bearer", {}), DPOP)
    extra = {"resource_metadata": METADATA}
    expired_args = ("invalid_token", "The access token has expired.")
    assert_challenge(resp, 401, *expired_args, realm="assets", schemes=offer, params=extra)
    assert_challenge(client.get("/v"), 401, realm="assets", schemes=offer, params=extra)
    # A 503 stays no challenge, whatever is offered.
    ccguard_issuer.jwks_status = 500
    fresh = _offering(make_app(ccguard_issuer), schemes=(DPOP,), challenge_params={"resource_metadata": METADATA})
    assert_challenge(
        fresh.test_client().get("/v", headers={"Authorization": f"Bearer {ccguard_issuer.mint()}"}), 503, realm="assets"
    )


class _NonceNeeded(InvalidToken):
    # The shape of RFC 9449 §8's use_dpop_nonce answer: its own scheme, code and header.
    error = "use_dpop_nonce"
    scheme = "DPoP"
    default_description = "Resource server requires nonce in DPoP proof."

    def headers(self) -> dict[str, str]:
        return {"DPoP-Nonce": "eyJ7S_zG.eyJH0-Z.HX4w-7v"}


def test_i15_05_an_error_brings_its_scheme_and_headers_without_a_special_case(ccguard_issuer: TestIssuer) -> None:
    app = _offering(make_app(ccguard_issuer), schemes=(DPOP, ("Bearer", {})))

    @app.get("/nonce")
    def nonce() -> Any:
        raise _NonceNeeded()

    resp = app.test_client().get("/nonce")
    assert resp.headers["DPoP-Nonce"] == "eyJ7S_zG.eyJH0-Z.HX4w-7v"
    nonce_error = ("use_dpop_nonce", "Resource server requires nonce in DPoP proof.")
    assert_challenge(resp, 401, *nonce_error, realm="assets", schemes=(DPOP, ("Bearer", {})), error_scheme="DPoP")
    assert challenges(_NonceNeeded(), (DPOP, ("Bearer", {})), {"realm": "r", "scope": None}) == [
        'DPoP realm="r", error="use_dpop_nonce", '
        'error_description="Resource server requires nonce in DPoP proof.", algs="ES256 PS256"',
        'Bearer realm="r"',
    ]


def test_i15_05_the_default_offer_is_bearer_and_dpop(ccguard_issuer: TestIssuer) -> None:
    # Issue 16: CCGUARD_DPOP defaults to "allowed", so DPoP is offered beside Bearer (RFC 9449 §7.1).
    state = make_app(ccguard_issuer).extensions["ccguard"]
    assert (state.schemes, dict(state.challenge_params)) == ((*BEARER, DEFAULT_DPOP), {})
    assert make_app(ccguard_issuer, CCGUARD_DPOP="disabled").extensions["ccguard"].schemes == BEARER
    assert challenges(None) == ["Bearer"]
