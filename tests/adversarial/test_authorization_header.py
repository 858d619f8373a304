"""The Authorization header through the Flask layer (RFC 6750 §2, RFC 9110 §11): odd requests get 400/401, never 500."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_ccguard.testing import TestIssuer
from tests.challenges import assert_challenge
from tests.conftest import make_app

Build = Callable[[str], dict[str, Any]]


@pytest.fixture(scope="module")
def good(issuer: TestIssuer) -> str:
    return issuer.mint()


def _app(issuer: TestIssuer, **config: Any) -> Flask:
    return make_app(issuer, __name__, path="/r", CCGUARD_REALM="api", **config)


@pytest.fixture(scope="module")
def client(issuer: TestIssuer) -> Iterator[FlaskClient]:
    with _app(issuer).test_client() as c:
        yield c


def _auth(value: str) -> dict[str, Any]:
    # Straight into the WSGI environ, so werkzeug's client does not clean it.
    return {"environ_overrides": {"HTTP_AUTHORIZATION": value}}


def _a(template: str) -> Build:
    return lambda tok: _auth(template.replace("TOK", tok))


HEADERS: list[tuple[str, Build, int, str | None]] = [
    ("RFC6750-3.1-no-credentials", lambda tok: {}, 401, None),
    ("RFC6750-2.1-bearer-without-token", _a("Bearer"), 400, "invalid_request"),
    ("RFC6750-2.1-bearer-space-only", _a("Bearer "), 400, "invalid_request"),
    ("RFC9110-11.1-scheme-lowercase", _a("bearer TOK"), 200, None),
    ("RFC9110-11.1-scheme-uppercase", _a("BEARER TOK"), 200, None),
    ("RFC6750-2.1-two-spaces", _a("Bearer  TOK"), 200, None),
    ("RFC6750-2.1-tab-separator", _a("Bearer\tTOK"), 400, "invalid_request"),
    ("RFC6750-2.1-trailing-garbage", _a("Bearer TOK extra"), 400, "invalid_request"),
    ("RFC6750-2.1-quoted-token", _a('Bearer "TOK"'), 400, "invalid_request"),
    ("RFC6750-2.1-token-with-comma", _a("Bearer TOK,TOK"), 400, "invalid_request"),
    ("RFC9110-5.3-two-headers-joined", _a("Bearer TOK, Bearer TOK"), 400, "invalid_request"),
    ("RFC9110-5.3-basic-then-bearer", _a("Basic dXNlcjpwYXNz, Bearer TOK"), 400, "invalid_request"),
    ("RFC9110-11.4-basic-scheme-only", _a("Basic dXNlcjpwYXNz"), 401, None),
    ("RFC9449-7.1-dpop-scheme-unbound-token", _a("DPoP TOK"), 401, "invalid_token"),
    ("jwt_tool-scheme-jwt", _a("JWT TOK"), 401, None),
    ("RFC6750-2.1-scheme-glued-with-equals", _a("Bearer=TOK"), 401, None),
    ("CWE-113-crlf-in-header", _a("Bearer TOK\r\nX-Injected: 1"), 400, "invalid_request"),
    ("CWE-158-nul-in-header", _a("Bearer TOK\x00"), 400, "invalid_request"),
    ("RFC9110-5.5-non-ascii-token", _a("Bearer t\u00f6k\u00e9n"), 400, "invalid_request"),
    ("RFC9110-5.5-non-ascii-scheme", _a("B\u00e9arer TOK"), 401, None),
    ("CWE-400-oversized-token", lambda tok: _auth("Bearer " + "A" * 200_000), 401, "invalid_token"),
    ("RFC6750-2.1-b64token-padding-accepted-then-refused", _a("Bearer TOK=="), 401, "invalid_token"),
    ("RFC7516-jwe-shaped-token", _a("Bearer a.b.c.d.e"), 401, "invalid_token"),
    ("CWE-22-path-in-token", _a("Bearer ../../etc/passwd"), 401, "invalid_token"),
    ("RFC6750-2.3-query-token-not-enabled", lambda tok: {"query_string": {"access_token": tok}}, 401, None),
    (
        "RFC6750-2.2-form-token-not-enabled",
        lambda tok: {"method": "POST", "data": {"access_token": tok}},
        401,
        None,
    ),
    (
        "RFC6750-2-header-wins-when-query-disabled",
        lambda tok: {**_auth("Bearer " + tok), "query_string": {"access_token": "x"}},
        200,
        None,
    ),
]


@pytest.mark.parametrize(("build", "status", "error"), [h[1:] for h in HEADERS], ids=[h[0] for h in HEADERS])
def test_authorization_header_is_parsed_strictly(
    client: FlaskClient, good: str, caplog: pytest.LogCaptureFixture, build: Build, status: int, error: str | None
) -> None:
    kwargs = build(good)
    method = kwargs.pop("method", "GET")
    with caplog.at_level(logging.DEBUG, logger="flask_ccguard"):
        response = client.open("/r", method=method, **kwargs)
    assert response.status_code == status
    if status == 200:
        return
    # The header carries exactly the body's description (each case's own text).
    assert_challenge(response, status, error, response.get_json()["error_description"], realm="api")
    challenge = response.headers["WWW-Authenticate"]
    for text in (challenge, response.get_data(as_text=True), caplog.text):
        assert good not in text
        assert "X-Injected" not in text
        assert "\r" not in text
    assert "X-Injected" not in response.headers


@pytest.mark.parametrize(
    "setting",
    ["CCGUARD_ALLOW_QUERY_TOKEN", "CCGUARD_ALLOW_FORM_TOKEN"],
    ids=["RFC6750-2-header-and-query", "RFC6750-2-header-and-form"],
)
def test_a_token_sent_by_two_methods_is_refused(issuer: TestIssuer, good: str, setting: str) -> None:
    with _app(issuer, **{setting: True}).test_client() as c:
        if setting == "CCGUARD_ALLOW_QUERY_TOKEN":
            response = c.get("/r", query_string={"access_token": good}, headers={"Authorization": "Bearer " + good})
        else:
            response = c.post("/r", data={"access_token": good}, headers={"Authorization": "Bearer " + good})
    assert_challenge(
        response, 400, "invalid_request", "The access token was sent by more than one method.", realm="api"
    )


@pytest.mark.parametrize(
    "query",
    [[("access_token", "a"), ("access_token", "b")], [("access_token", "a b")], [("access_token", "")]],
    ids=["RFC6750-2.3-query-token-twice", "RFC6750-2.3-query-token-with-space", "RFC6750-2.3-query-token-empty"],
)
def test_odd_query_tokens_are_refused_when_enabled(issuer: TestIssuer, query: list[tuple[str, str]]) -> None:
    with _app(issuer, CCGUARD_ALLOW_QUERY_TOKEN=True).test_client() as c:
        response = c.get("/r", query_string=query)
    assert response.status_code in (400, 401)
    assert response.status_code != 500
