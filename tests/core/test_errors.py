"""Each error class knows its RFC 6750 §3 status, code and challenge."""

from __future__ import annotations

import pytest

from flask_ccguard import (
    CCGuardError,
    ExpiredToken,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    KeysUnavailable,
    MissingToken,
)

CHALLENGES = [
    pytest.param(MissingToken(), 401, 'Bearer realm="api"', id="missing-token-no-error-code"),
    pytest.param(
        InvalidRequest(),
        400,
        'Bearer realm="api", error="invalid_request", error_description="The request is malformed."',
        id="invalid-request",
    ),
    pytest.param(
        InvalidToken(),
        401,
        'Bearer realm="api", error="invalid_token", error_description="The access token is invalid."',
        id="invalid-token",
    ),
    pytest.param(
        ExpiredToken(),
        401,
        'Bearer realm="api", error="invalid_token", error_description="The access token has expired."',
        id="expired-token",
    ),
    pytest.param(
        InsufficientScope(scopes=["assets:read", "assets:write"]),
        403,
        'Bearer realm="api", error="insufficient_scope", '
        'error_description="The access token lacks the required permissions.", scope="assets:read assets:write"',
        id="insufficient-scope-names-scopes",
    ),
    pytest.param(
        InsufficientScope(roles=["archivist_administrator"]),
        403,
        'Bearer realm="api", error="insufficient_scope", '
        'error_description="The access token lacks the required permissions."',
        id="insufficient-role-no-scope-param",
    ),
    pytest.param(KeysUnavailable(), 503, 'Bearer realm="api"', id="keys-unavailable"),
]


@pytest.mark.parametrize(("error", "status", "challenge"), CHALLENGES)
def test_status_and_challenge(error: CCGuardError, status: int, challenge: str) -> None:
    assert error.status == status
    assert error.challenge("api") == challenge


def test_expired_is_an_invalid_token() -> None:
    assert issubclass(ExpiredToken, InvalidToken)
    assert all(issubclass(c, CCGuardError) for c in (MissingToken, InvalidRequest, InsufficientScope, KeysUnavailable))


@pytest.mark.parametrize(
    ("description", "quoted"),
    [
        pytest.param('say "hi"', '"say ?hi?"', id="quotes"),
        pytest.param("a\r\nSet-Cookie: x=1", '"a??Set-Cookie: x=1"', id="crlf"),
        pytest.param("back\\slash", '"back?slash"', id="backslash"),
        pytest.param("caf\u00e9", '"caf?"', id="non-ascii"),
    ],
)
def test_description_cannot_break_the_header(description: str, quoted: str) -> None:
    challenge = InvalidToken(description).challenge("api")
    assert challenge.endswith("error_description=" + quoted)
    assert "\r" not in challenge and "\n" not in challenge


def test_structured_reason_and_claim() -> None:
    error = InvalidToken("The access token is meant for another audience.", reason="audience", claim="aud")
    assert (error.reason, error.claim) == ("audience", "aud")
    assert error.to_dict() == {"error": "invalid_token", "error_description": error.description}
