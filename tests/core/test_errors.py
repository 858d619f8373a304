"""Each error class knows its RFC 6750 §3 status, code and challenge."""

from __future__ import annotations

import pytest

import flask_ccguard
from flask_ccguard import (
    CCGuardBaseError,
    CCGuardError,
    ConfigurationError,
    ExpiredToken,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    KeysUnavailable,
    MissingToken,
)
from flask_ccguard.client import TokenRequestError
from flask_ccguard.core.errors import IntrospectionUnavailable, MetadataUnavailable, Unavailable
from flask_ccguard.core.fetch.discovery import DiscoveryError
from flask_ccguard.core.fetch.http import FetchError

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


def test_i15_05_everything_raised_on_purpose_shares_one_root() -> None:
    roots = (FetchError, DiscoveryError, TokenRequestError, ConfigurationError, CCGuardError, IntrospectionUnavailable)
    assert all(issubclass(c, CCGuardBaseError) for c in roots)
    # ``except CCGuardError`` still means an HTTP refusal (DESIGN §3), nothing else.
    assert not any(issubclass(c, CCGuardError) for c in (FetchError, DiscoveryError, TokenRequestError))
    assert issubclass(ConfigurationError, ValueError)
    assert "CCGuardBaseError" in flask_ccguard.__all__


@pytest.mark.parametrize(
    "cls",
    [KeysUnavailable, MetadataUnavailable, IntrospectionUnavailable],
    ids=["i15_05_keys", "i15_05_metadata", "i15_05_introspection"],
)
def test_i15_05_the_503_family_is_named_for_what_is_unavailable(cls: type[Unavailable]) -> None:
    error = cls(retry_after=7)
    assert issubclass(cls, Unavailable)
    # Each is its own kind: catching the keys' outage does not catch the introspection's.
    assert [c for c in (KeysUnavailable, MetadataUnavailable, IntrospectionUnavailable) if isinstance(error, c)] == [
        cls
    ]
    assert (error.status, error.error, error.has_challenge) == (503, None, False)
    assert error.headers() == {"Retry-After": "7"}
    assert error.reason == cls.__name__.replace("Unavailable", "").lower() + "_unavailable"


def test_i15_05_codes_and_statuses_are_class_attributes_and_name_no_scheme() -> None:
    table = {c: (c.status, c.error) for c in (MissingToken, InvalidRequest, InvalidToken, InsufficientScope)}
    assert table == {
        MissingToken: (401, None),
        InvalidRequest: (400, "invalid_request"),
        InvalidToken: (401, "invalid_token"),
        InsufficientScope: (403, "insufficient_scope"),
    }
    assert all(c.scheme is None and c().headers() == {} for c in table)
