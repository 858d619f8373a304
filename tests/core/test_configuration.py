"""Configuration mistakes fail at construction, naming the option and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from flask_ccguard import ConfigurationError, TokenValidator

GOOD: dict[str, Any] = {"issuer": "https://idp.example/t", "audience": "https://api.example.com"}

BAD = [
    pytest.param({"issuer": None}, "issuer is required", id="issuer-missing"),
    pytest.param({"issuer": []}, "issuer is required", id="issuer-empty-list"),
    pytest.param({"issuer": ""}, "issuer must be the issuer identifier", id="issuer-empty"),
    pytest.param({"issuer": "http://idp.example"}, "cannot be discovered", id="issuer-plain-http-remote"),
    pytest.param({"issuer": ["https://a.example", "https://a.example"]}, "configured twice", id="issuer-twice"),
    pytest.param(
        {"issuer": [{"issuer": "https://a.example", "colour": 1}]}, "unknown setting", id="issuer-dict-unknown-key"
    ),
    pytest.param({"audience": None}, "audience is required to check the 'aud' claim", id="audience-missing"),
    pytest.param({"audience": ["ok", ""]}, "audience is required", id="audience-empty-entry"),
    pytest.param({"algorithms": []}, "algorithms must be a non-empty list", id="algorithms-empty"),
    pytest.param({"algorithms": ["HS256"]}, "HMAC tokens are refused", id="algorithms-hmac"),
    pytest.param({"leeway": -1}, "leeway must be a number of seconds", id="leeway-negative"),
    pytest.param({"leeway": 3600}, "defeats 'exp'", id="leeway-huge"),
    pytest.param({"leeway": "60"}, "leeway must be a number", id="leeway-string"),
    pytest.param({"require_iat": "yes"}, "require_iat must be True or False", id="require-iat-string"),
    pytest.param(
        {"jwks_uri": "http://keys.example/jwks"},
        "jwks_uri 'http://keys.example/jwks' is not allowed",
        id="jwks-uri-http",
    ),
    pytest.param({"http_timeout": 0}, "http_timeout must be more than 0", id="timeout-zero"),
    pytest.param({"max_token_bytes": 0}, "max_token_bytes must be a whole number", id="max-bytes-zero"),
    pytest.param({"token_types": []}, "token_types must be None or a list", id="token-types-empty"),
    pytest.param({"roles_claim": ""}, "roles_claim must be a claim name", id="roles-claim-empty"),
    pytest.param({"jwks_refresh_cooldown": float("nan")}, "jwks_refresh_cooldown must be a number", id="cooldown-nan"),
]


@pytest.mark.parametrize(("options", "message"), BAD)
def test_bad_option_names_itself_and_the_fix(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        TokenValidator(**{**GOOD, **options})
    assert message in str(caught.value)


def test_option_labels_can_be_config_keys() -> None:
    with pytest.raises(ConfigurationError) as caught:
        TokenValidator("https://idp.example", None, option_name=lambda o: "CCGUARD_" + o.upper())
    assert str(caught.value).startswith("CCGUARD_AUDIENCE is required to check the 'aud' claim")


def test_per_issuer_settings_are_named_by_position() -> None:
    issuers: list[dict[str, Any]] = [{"issuer": "https://a.example"}, {"issuer": "https://b.example", "audience": []}]
    with pytest.raises(ConfigurationError) as caught:
        TokenValidator(issuers, "api")
    assert str(caught.value).startswith("issuer[1]['audience'] is required")


def test_valid_configuration_contacts_nobody() -> None:
    validator = TokenValidator(**GOOD)  # an unroutable issuer: construction must not fetch
    assert validator.issuers == ("https://idp.example/t",)
