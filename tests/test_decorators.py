"""Every way of protecting a view answers the same requests the same way (RFC 6750 §3)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Blueprint, Flask, request
from flask.testing import FlaskClient

from flask_ccguard import (
    CCGuard,
    KeysUnavailable,
    TokenValidator,
    current_token,
    require_roles,
    require_scopes,
    require_token,
    token_verified,
    verify_token_in_request,
)
from flask_ccguard.decorators import Match
from flask_ccguard.testing import TestIssuer
from tests.challenges import assert_challenge
from tests.conftest import bearer, flip_signature

ADMIN = "archivist_administrator"
READ, WRITE = "assets:read", "assets:write"
Requirement = tuple[tuple[str, ...], tuple[str, ...], Match]

#: name -> (roles, scopes, match)
REQUIREMENTS: dict[str, Requirement] = {
    "token": ((), (), "all"),
    "roles_all": ((ADMIN, "auditor"), (), "all"),
    "roles_any": ((ADMIN, "guest"), (), "any"),
    "scopes_all": ((), (READ, WRITE), "all"),
    "scopes_any": ((), (READ, WRITE), "any"),
}
WAYS = ["decorator", "decorator_async", "imperative", "imperative_async", "blueprint", "app"]


def show() -> Any:
    if request.method == "OPTIONS":
        return "", 204
    return {"client_id": current_token.client_id}


async def show_async() -> Any:
    return show()


def decorate(view: Callable[..., Any], roles: tuple[str, ...], scopes: tuple[str, ...], match: Any) -> Any:
    if roles:
        return require_roles(*roles, match=match)(view)
    if scopes:
        return require_scopes(*scopes, match=match)(view)
    return require_token(view)


def imperative(roles: tuple[str, ...], scopes: tuple[str, ...], match: Any, is_async: bool) -> Callable[..., Any]:
    if is_async:

        async def async_view() -> Any:
            verify_token_in_request(roles=roles, scopes=scopes, match=match)
            return show()

        return async_view

    def view() -> Any:
        verify_token_in_request(roles=roles, scopes=scopes, match=match)
        return show()

    return view


def new_app(issuer: TestIssuer) -> tuple[Flask, CCGuard]:
    app = Flask(__name__)
    app.config.update(CCGUARD_ISSUER=issuer.issuer, CCGUARD_AUDIENCE=issuer.audience, CCGUARD_REALM="assets")
    return app, CCGuard(app)


def protected(issuer: TestIssuer, way: str, requirement: str) -> tuple[FlaskClient, str]:
    """A client and the URL of a view protected ``way`` with ``requirement``."""
    roles, scopes, match = REQUIREMENTS[requirement]
    app, guard = new_app(issuer)
    methods = ["GET", "OPTIONS"]
    if way == "decorator":
        app.add_url_rule("/v", "v", decorate(show, roles, scopes, match), methods=methods)
    elif way == "decorator_async":
        app.add_url_rule("/v", "v", decorate(show_async, roles, scopes, match), methods=methods)
    elif way.startswith("imperative"):
        app.add_url_rule("/v", "v", imperative(roles, scopes, match, way.endswith("async")), methods=methods)
    elif way == "blueprint":
        bp = Blueprint("bp", __name__, url_prefix="/bp")
        guard.protect(bp, roles=roles, scopes=scopes, match=match)
        bp.add_url_rule("/v", "v", show, methods=methods)
        app.register_blueprint(bp)
        app.add_url_rule("/open", "open", lambda: "open")
        return app.test_client(), "/bp/v"
    else:
        guard.protect(app, roles=roles, scopes=scopes, match=match)
        app.add_url_rule("/v", "v", show, methods=methods)
    return app.test_client(), "/v"


#: name -> (headers for the issuer, status, error, description)
AUTH_CASES: dict[str, tuple[Callable[[TestIssuer], Any], int, str | None, str | None]] = {
    "no header": (lambda i: {}, 401, None, None),
    "other scheme": (
        lambda i: {"Authorization": "Basic dGVzdC1jbGllbnQ6dGVzdC1zZWNyZXQ="},
        401,
        None,
        "The Authorization header uses the 'Basic' scheme; this API expects 'Bearer <token>'.",
    ),
    # Issue 16: the DPoP scheme is read (CCGUARD_DPOP="allowed"); an unbound token
    # with it is refused before any proof is looked at (RFC 9449 §7.1).
    "dpop scheme": (
        lambda i: {"Authorization": f"DPoP {i.mint()}"},
        401,
        "invalid_token",
        "The access token is not DPoP-bound; send it as a Bearer token.",
    ),
    "malformed header": (
        lambda i: {"Authorization": f"Bearer {i.mint()} extra"},
        400,
        "invalid_request",
        "The Authorization header is malformed; send 'Authorization: Bearer <token>'.",
    ),
    "two headers": (
        lambda i: [("Authorization", f"Bearer {i.mint()}"), ("Authorization", f"Bearer {i.mint()}")],
        400,
        "invalid_request",
        "The request carries more than one Authorization header.",
    ),
    "two tokens in one header": (
        lambda i: {"Authorization": f"Bearer {i.mint()}, Bearer {i.mint()}"},
        400,
        "invalid_request",
        "The request carries more than one Authorization header.",
    ),
    "not a jwt": (
        lambda i: bearer("opaque-token"),
        401,
        "invalid_token",
        "The access token is malformed: it does not have three segments.",
    ),
    "expired": (
        lambda i: bearer(i.mint(expires_in=-3600)),
        401,
        "invalid_token",
        "The access token has expired.",
    ),
    "wrong audience": (
        lambda i: bearer(i.mint(aud="https://other.example.com")),
        401,
        "invalid_token",
        "The access token is meant for another audience.",
    ),
    "wrong issuer": (
        lambda i: bearer(i.mint(iss="https://idp.example.com/tenant-1")),
        401,
        "invalid_token",
        "The access token is from an unexpected issuer.",
    ),
    "tampered signature": (
        lambda i: bearer(flip_signature(i.mint())),
        401,
        "invalid_token",
        "The token's signature is invalid.",
    ),
}


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("case", AUTH_CASES)
def test_bad_credentials_are_refused_before_any_permission_check(
    ccguard_issuer: TestIssuer, way: str, case: str
) -> None:
    headers, status, error, description = AUTH_CASES[case]
    client, url = protected(ccguard_issuer, way, "scopes_all")
    assert_challenge(client.get(url, headers=headers(ccguard_issuer)), status, error, description, realm="assets")


#: token name -> claims minted for it
TOKENS: dict[str, dict[str, Any]] = {
    "admin": {"roles": [ADMIN, "auditor"], "scope": f"{READ} {WRITE}"},
    "guest": {"roles": ["guest"]},
    "reader": {"scope": READ},
    "scp writer": {"roles": [ADMIN], "scp": [WRITE]},
}
SCOPE = f"{READ} {WRITE}"
LACKS_ROLES = "The access token lacks the role(s) archivist_administrator, auditor."
NO_ROLE = "The access token has none of the role(s) archivist_administrator, guest."
LACKS_SCOPES = "The access token lacks the scope(s) assets:read, assets:write."
NO_SCOPE = "The access token has none of the scope(s) assets:read, assets:write."

#: (token, requirement) -> (status, description, scope); absent means 200.
REFUSALS: dict[tuple[str, str], tuple[int, str, str | None]] = {
    ("guest", "roles_all"): (403, LACKS_ROLES, None),
    ("guest", "scopes_all"): (403, LACKS_SCOPES, SCOPE),
    ("guest", "scopes_any"): (403, NO_SCOPE, SCOPE),
    ("reader", "roles_all"): (403, LACKS_ROLES, None),
    ("reader", "roles_any"): (403, NO_ROLE, None),
    ("reader", "scopes_all"): (403, "The access token lacks the scope(s) assets:write.", SCOPE),
    ("scp writer", "roles_all"): (403, "The access token lacks the role(s) auditor.", None),
    ("scp writer", "scopes_all"): (403, "The access token lacks the scope(s) assets:read.", SCOPE),
}


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("requirement", REQUIREMENTS)
@pytest.mark.parametrize("token", TOKENS)
def test_roles_and_scopes_decide_with_403_insufficient_scope(
    ccguard_issuer: TestIssuer, way: str, requirement: str, token: str
) -> None:
    client, url = protected(ccguard_issuer, way, requirement)
    resp = client.get(url, headers=bearer(ccguard_issuer.mint(**TOKENS[token])))
    refusal = REFUSALS.get((token, requirement))
    if refusal is None:
        assert_challenge(resp, 200, realm="assets")
        assert resp.get_json() == {"client_id": "test-client"}
    else:
        status, description, scope = refusal
        assert_challenge(resp, status, "insufficient_scope", description, scope, realm="assets")


@pytest.mark.parametrize("way", WAYS)
def test_options_preflight_gets_flasks_answer_without_running_the_view(ccguard_issuer: TestIssuer, way: str) -> None:
    client, url = protected(ccguard_issuer, way, "roles_all")
    resp = client.options(url)
    # Not the view's 204: a view's own code never runs without a token (r2-04).
    assert_challenge(resp, 200, realm="assets")
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


@pytest.mark.parametrize("way", ["decorator", "blueprint", "app"])
def test_automatic_options_passes_without_a_token(ccguard_issuer: TestIssuer, way: str) -> None:
    app, guard = new_app(ccguard_issuer)
    if way == "blueprint":
        bp = Blueprint("bp", __name__)
        guard.protect(bp)
        bp.add_url_rule("/v", "v", show)
        app.register_blueprint(bp)
    elif way == "app":
        guard.protect(app)
        app.add_url_rule("/v", "v", show)
    else:
        app.add_url_rule("/v", "v", require_token(show))
    resp = app.test_client().options("/v")
    assert_challenge(resp, 200, realm="assets")
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_blueprint_protection_leaves_other_views_open(ccguard_issuer: TestIssuer) -> None:
    client, _ = protected(ccguard_issuer, "blueprint", "roles_all")
    assert client.get("/open").text == "open"


def test_app_protection_refuses_unknown_urls_without_a_token(ccguard_issuer: TestIssuer) -> None:
    client, _ = protected(ccguard_issuer, "app", "token")
    assert_challenge(client.get("/nowhere"), 401, realm="assets")
    assert client.get("/nowhere", headers=bearer(ccguard_issuer.mint())).status_code == 404


@pytest.fixture
def stacked(ccguard_issuer: TestIssuer) -> tuple[FlaskClient, list[Any]]:
    """/stacked: two decorators; /bp/added: blueprint roles plus a view scope."""
    app, guard = new_app(ccguard_issuer)
    verified: list[Any] = []
    token_verified.connect(lambda sender, token: verified.append(token), app, weak=False)

    @app.get("/stacked")
    @require_token
    @require_roles(ADMIN)
    @require_scopes(WRITE)
    @require_token()
    async def stacked_view() -> Any:
        return show()

    bp = Blueprint("bp", __name__, url_prefix="/bp")
    guard.protect(bp, roles=["guest"])

    @bp.get("/added")
    @require_scopes(WRITE)
    def added() -> Any:
        verify_token_in_request(roles=["guest"])
        return show()

    app.register_blueprint(bp)
    return app.test_client(), verified


@pytest.mark.parametrize(
    ("url", "claims", "status", "description", "scope"),
    [
        ("/stacked", {"roles": [ADMIN], "scope": WRITE}, 200, None, None),
        (
            "/stacked",
            {"roles": ["guest"], "scope": WRITE},
            403,
            "The access token lacks the role(s) " + ADMIN + ".",
            None,
        ),
        ("/stacked", {"roles": [ADMIN]}, 403, "The access token lacks the scope(s) assets:write.", WRITE),
        ("/bp/added", {"roles": ["guest"], "scope": WRITE}, 200, None, None),
        ("/bp/added", {"roles": [ADMIN], "scope": WRITE}, 403, "The access token lacks the role(s) guest.", None),
        ("/bp/added", {"roles": ["guest"]}, 403, "The access token lacks the scope(s) assets:write.", WRITE),
    ],
)
def test_stacked_requirements_all_apply_and_the_token_is_validated_once(
    ccguard_issuer: TestIssuer,
    stacked: tuple[FlaskClient, list[Any]],
    url: str,
    claims: dict[str, Any],
    status: int,
    description: str | None,
    scope: str | None,
) -> None:
    client, verified = stacked
    resp = client.get(url, headers=bearer(ccguard_issuer.mint(**claims)))
    assert_challenge(resp, status, description and "insufficient_scope", description, scope, realm="assets")
    assert len(verified) == 1


def test_each_request_validates_its_own_token_even_in_one_app_context(ccguard_issuer: TestIssuer) -> None:
    client, url = protected(ccguard_issuer, "decorator", "token")
    with client.application.app_context():
        assert client.get(url, headers=bearer(ccguard_issuer.mint())).status_code == 200
        # g is shared by both requests here; the first token must not carry over.
        assert_challenge(client.get(url), 401, realm="assets")


def test_current_token_outside_a_protected_view_names_the_decorators(ccguard_issuer: TestIssuer) -> None:
    app, _ = new_app(ccguard_issuer)
    app.add_url_rule("/open", "open", show)
    message = (
        "current_token is only set in a view protected by @require_token, @require_roles, "
        "@require_scopes or guard.protect(), or after verify_token_in_request(); add one of them to this view."
    )
    with pytest.raises(RuntimeError) as info:
        _ = current_token.subject
    assert str(info.value) == message
    app.testing = True
    with pytest.raises(RuntimeError) as info:
        app.test_client().get("/open", headers=bearer(ccguard_issuer.mint()))
    assert str(info.value) == message


def test_current_token_exposes_the_verified_token(ccguard_issuer: TestIssuer) -> None:
    app, _ = new_app(ccguard_issuer)

    @app.get("/me")
    @require_scopes(READ)
    def me() -> Any:
        return {
            "subject": current_token.subject,
            "scopes": sorted(current_token.scopes),
            "roles": sorted(current_token.roles),
            "custom": current_token["custom"],
            "same": verify_token_in_request() is current_token._get_current_object(),  # type: ignore[attr-defined]
        }

    token = ccguard_issuer.mint(sub="svc-42", scope=f"{READ} x", roles=["r"], custom=7)
    assert app.test_client().get("/me", headers=bearer(token)).get_json() == {
        "subject": "svc-42",
        "scopes": [READ, "x"],
        "roles": ["r"],
        "custom": 7,
        "same": True,
    }


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: require_roles(), "require_roles() needs at least one name"),
        (lambda: require_scopes(), "require_scopes() needs at least one name"),
        (
            lambda: require_roles(["a", "b"]),  # type: ignore[arg-type]
            "pass roles as separate arguments",
        ),
        (
            lambda: require_roles("a", match="some"),  # type: ignore[arg-type]
            "match must be 'all' or 'any', not 'some'",
        ),
        (lambda: verify_token_in_request(roles="admin"), "roles must be a list of names"),
    ],
)
def test_misused_decorators_fail_where_they_are_written(make: Callable[[], Any], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=re.escape(message)):
        make()


SEND_BEARER = "send it in the Authorization header as 'Bearer <token>'."
EXPECTS = "this API expects 'Bearer <token>'."


@pytest.mark.parametrize(
    ("request_kwargs", "description"),
    [
        pytest.param(
            {"query_string": {"access_token": "TOKEN"}},
            "A token was sent in the query string, which this API does not accept; " + SEND_BEARER,
            id="i14_07_query_token_off",
        ),
        pytest.param(
            {"method": "POST", "data": {"access_token": "TOKEN"}},
            "A token was sent in the form body, which this API does not accept; " + SEND_BEARER,
            id="i14_07_form_token_off",
        ),
        pytest.param(
            {"headers": {"Authorization": "Token TOKEN"}},
            "The Authorization header uses the 'Token' scheme; " + EXPECTS,
            id="i14_07_token_scheme",
        ),
        pytest.param(
            {"headers": {"Authorization": "TOKEN"}},
            "The Authorization header has no scheme before its credentials; " + EXPECTS,
            id="i14_07_raw_token_without_scheme",
        ),
        pytest.param(
            {"headers": {"Authorization": "TOKEN TOKEN"}},
            "The Authorization header uses an unrecognised scheme; " + EXPECTS,
            id="i14_07_token_where_the_scheme_goes",
        ),
        pytest.param(
            {"headers": {"Authorization": "sk_live_TOKEN TOKEN"}},
            "The Authorization header uses an unrecognised scheme; " + EXPECTS,
            id="i14_07_secret_looking_scheme_unnamed",
        ),
        pytest.param(
            {"headers": {"Authorization": "  "}},
            "The Authorization header is empty; " + EXPECTS,
            id="i14_07_empty_header",
        ),
        pytest.param({}, None, id="i14_07_nothing_sent"),
    ],
)
def test_i14_07_a_request_without_a_bearer_token_is_told_what_was_found(
    ccguard_issuer: TestIssuer, request_kwargs: dict[str, Any], description: str | None
) -> None:
    app, _ = new_app(ccguard_issuer)
    app.add_url_rule("/v", "v", require_token(show), methods=["GET", "POST"])
    token = ccguard_issuer.mint()
    kwargs = {k: v if k == "method" else _with_token(v, token) for k, v in request_kwargs.items()}
    resp = app.test_client().open("/v", **kwargs)
    # Still RFC 6750 §3.1's answer to a request without bearer credentials:
    # 401, no error code; only the description says what was found.
    assert_challenge(resp, 401, None, description, realm="assets")
    assert token not in resp.text
    assert token not in resp.headers["WWW-Authenticate"]


def _with_token(value: Any, token: str) -> Any:
    return {k: v.replace("TOKEN", token) for k, v in value.items()}


@pytest.mark.parametrize(
    ("configured", "near"),
    [
        pytest.param("{issuer}/", "a trailing slash", id="i14_07_iss_trailing_slash"),
        pytest.param("{upper}", "letter case", id="i14_07_iss_case"),
    ],
)
def test_i14_07_an_issuer_that_differs_by_a_slash_or_case_is_named_in_the_log(
    ccguard_issuer: TestIssuer, caplog: pytest.LogCaptureFixture, configured: str, near: str
) -> None:
    issuer = configured.format(issuer=ccguard_issuer.issuer, upper=ccguard_issuer.issuer.upper())
    app = Flask(__name__)
    app.config.update(CCGUARD_ISSUER=issuer, CCGUARD_AUDIENCE=ccguard_issuer.audience, CCGUARD_REALM="assets")
    CCGuard(app)
    app.add_url_rule("/v", "v", require_token(show))
    with caplog.at_level("INFO", logger="flask_ccguard"):
        resp = app.test_client().get("/v", headers=bearer(ccguard_issuer.mint()))
    assert_challenge(resp, 401, "invalid_token", "The access token is from an unexpected issuer.", realm="assets")
    assert f"token iss differs from the configured issuer {issuer!r} only by {near}" in caplog.text


def test_i14_07_discovery_names_an_issuer_that_differs_only_by_a_trailing_slash(
    ccguard_issuer: TestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    issuer = ccguard_issuer.issuer + "/"
    validator = TokenValidator(issuer=issuer, audience=ccguard_issuer.audience)
    with caplog.at_level("INFO", logger="flask_ccguard"), pytest.raises(KeysUnavailable):
        validator.key_set(issuer).refresh_if_due()
    assert (
        f"names issuer {ccguard_issuer.issuer!r}, not the configured {issuer!r}; ignored (they differ only by "
        "a trailing slash: configure the issuer exactly as the document names it)"
    ) in caplog.text
