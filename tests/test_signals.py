"""token_verified / token_rejected signals and the flask_ccguard log: reasons, never tokens."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from flask_ccguard import CCGuard, require_scopes, token_rejected, token_verified
from flask_ccguard.testing import TestIssuer


@pytest.fixture
def app(ccguard_issuer: TestIssuer) -> Flask:
    app = Flask("assets")
    app.config.update(CCGUARD_ISSUER=ccguard_issuer.issuer, CCGUARD_AUDIENCE=ccguard_issuer.audience)
    CCGuard(app)
    app.add_url_rule("/v", "v", require_scopes("assets:read")(lambda: "ok"))
    return app


@pytest.fixture
def received(app: Flask) -> Iterator[list[tuple[str, Any, Any]]]:
    events: list[tuple[str, Any, Any]] = []

    def verified(sender: Any, token: Any) -> None:
        events.append(("verified", sender, token))

    def rejected(sender: Any, error: Any) -> None:
        events.append(("rejected", sender, error))

    with token_verified.connected_to(verified, app), token_rejected.connected_to(rejected, app):
        yield events


def test_a_passed_request_sends_token_verified_once_with_the_app_as_sender(
    app: Flask, ccguard_issuer: TestIssuer, received: list[tuple[str, Any, Any]]
) -> None:
    token = ccguard_issuer.mint(scope="assets:read", sub="svc-1")
    app.test_client().get("/v", headers={"Authorization": f"Bearer {token}"})
    [(kind, sender, verified)] = received
    assert (kind, sender, verified.subject) == ("verified", app, "svc-1")


@pytest.mark.parametrize(
    ("claims", "headers", "reason", "events"),
    [
        (None, {}, "missing", ["rejected"]),
        ({"expires_in": -600}, None, "expired", ["rejected"]),
        ({"aud": "https://other.example.com"}, None, "audience", ["rejected"]),
        ({}, None, "missing_scope", ["verified", "rejected"]),
    ],
)
def test_a_refused_request_sends_token_rejected_with_its_reason(
    app: Flask,
    ccguard_issuer: TestIssuer,
    received: list[tuple[str, Any, Any]],
    claims: dict[str, Any] | None,
    headers: dict[str, str] | None,
    reason: str,
    events: list[str],
) -> None:
    if headers is None:
        headers = {"Authorization": f"Bearer {ccguard_issuer.mint(**(claims or {}))}"}
    app.test_client().get("/v", headers=headers)
    assert [kind for kind, _, _ in received] == events
    assert received[-1][1] is app
    assert received[-1][2].reason == reason


def test_signals_of_one_app_do_not_reach_subscribers_of_another(
    app: Flask, ccguard_issuer: TestIssuer, received: list[tuple[str, Any, Any]]
) -> None:
    other = Flask("other")
    CCGuard(other, issuer=ccguard_issuer.issuer, audience=ccguard_issuer.audience)
    other.add_url_rule("/v", "v", require_scopes("assets:read")(lambda: "ok"))
    other.test_client().get("/v")
    assert received == []


@pytest.mark.parametrize(
    ("claims", "tamper", "level", "message"),
    [
        (
            {"expires_in": -600},
            False,
            logging.INFO,
            "flask_ccguard: refused GET '/v': ExpiredToken (reason=expired, claim=exp, status=401)",
        ),
        (
            {},
            True,
            logging.INFO,
            "flask_ccguard: refused GET '/v': InvalidToken (reason=bad_signature, claim=None, status=401)",
        ),
        (
            {"scope": "other"},
            False,
            logging.INFO,
            "flask_ccguard: refused GET '/v': InsufficientScope (reason=missing_scope, claim=None, status=403)",
        ),
    ],
)
def test_rejections_are_logged_by_reason_and_never_with_the_token(
    app: Flask,
    ccguard_issuer: TestIssuer,
    caplog: pytest.LogCaptureFixture,
    claims: dict[str, Any],
    tamper: bool,
    level: int,
    message: str,
) -> None:
    token = ccguard_issuer.mint(**claims)
    if tamper:
        head, payload, signature = token.split(".")
        token = f"{head}.{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    with caplog.at_level(logging.DEBUG, logger="flask_ccguard"):
        app.test_client().get("/v", headers={"Authorization": f"Bearer {token}"})
    refusals = [r for r in caplog.records if r.getMessage().startswith("flask_ccguard: refused")]
    assert [(r.levelno, r.getMessage()) for r in refusals] == [(level, message)]
    assert refusals[0].ccguard_reason == message.split("reason=")[1].split(",")[0]  # type: ignore[attr-defined]
    for part in token.split("."):
        assert part not in caplog.text


def test_query_tokens_stay_out_of_the_log_and_unavailable_keys_log_a_warning(
    ccguard_issuer: TestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    app = Flask("assets")
    CCGuard(app, issuer=ccguard_issuer.issuer, audience=ccguard_issuer.audience, allow_query_token=True)
    app.add_url_rule("/v", "v", require_scopes("assets:read")(lambda: "ok"))
    ccguard_issuer.jwks_status = 500
    token = ccguard_issuer.mint(scope="assets:read")
    with caplog.at_level(logging.DEBUG, logger="flask_ccguard"):
        assert app.test_client().get("/v", query_string={"access_token": token}).status_code == 503
    assert (
        logging.WARNING,
        "flask_ccguard: refused GET '/v': KeysUnavailable (reason=keys_unavailable, claim=None, status=503)",
    ) in [(r.levelno, r.getMessage()) for r in caplog.records]
    for part in token.split("."):
        assert part not in caplog.text
