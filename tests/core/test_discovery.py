"""Issuer metadata: OIDC Discovery first, RFC 8414 fallback, exact issuer match."""

from __future__ import annotations

import logging

import pytest

from flask_ccguard import KeysUnavailable, TokenValidator
from flask_ccguard.core.fetch.discovery import metadata_urls
from flask_ccguard.testing import TestIssuer


@pytest.mark.parametrize(
    ("issuer", "urls"),
    [
        pytest.param(
            "https://idp.example",
            [
                "https://idp.example/.well-known/openid-configuration",
                "https://idp.example/.well-known/oauth-authorization-server",
            ],
            id="no-path",
        ),
        pytest.param(
            "https://idp.example/tenant-1",
            [
                "https://idp.example/tenant-1/.well-known/openid-configuration",
                "https://idp.example/.well-known/oauth-authorization-server/tenant-1",
                "https://idp.example/tenant-1/.well-known/oauth-authorization-server",
            ],
            id="path-inserted-then-appended",
        ),
        pytest.param(
            "https://sts.windows.net/tid/",
            [
                "https://sts.windows.net/tid/.well-known/openid-configuration",
                "https://sts.windows.net/.well-known/oauth-authorization-server/tid",
                "https://sts.windows.net/tid/.well-known/oauth-authorization-server",
            ],
            id="trailing-slash-issuer",
        ),
    ],
)
def test_metadata_urls_in_order(issuer: str, urls: list[str]) -> None:
    assert metadata_urls(issuer) == urls


@pytest.mark.parametrize(
    ("openid", "expected_hits"),
    [
        pytest.param(True, {"openid_configuration": 1, "oauth_metadata": 0}, id="openid-configuration"),
        pytest.param(False, {"openid_configuration": 1, "oauth_metadata": 1}, id="rfc8414-fallback"),
    ],
)
def test_discovery_finds_the_key_set(openid: bool, expected_hits: dict[str, int]) -> None:
    with TestIssuer(path="/tenant-1", openid_configuration=openid) as issuer:
        validator = TokenValidator(issuer.issuer, issuer.audience)
        assert validator.validate(issuer.mint()).issuer == issuer.issuer
        assert {k: issuer.hits[k] for k in expected_hits} == expected_hits
        assert issuer.hits["jwks"] == 1


def test_issuer_mismatch_is_refused_and_nothing_from_it_used(
    ccguard_issuer: TestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    ccguard_issuer.discovery_overrides = {"issuer": "https://evil.example"}
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience)
    with caplog.at_level(logging.WARNING, logger="flask_ccguard"), pytest.raises(KeysUnavailable):
        validator.validate(ccguard_issuer.mint())
    assert ccguard_issuer.hits["jwks"] == 0
    assert "names issuer 'https://evil.example'" in caplog.text


@pytest.mark.parametrize(
    "jwks_uri",
    [pytest.param("http://keys.example/jwks", id="plain-http-remote"), pytest.param(42, id="not-a-string")],
)
def test_metadata_with_unusable_jwks_uri_is_refused(ccguard_issuer: TestIssuer, jwks_uri: object) -> None:
    ccguard_issuer.discovery_overrides = {"jwks_uri": jwks_uri}
    with pytest.raises(KeysUnavailable):
        TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience).validate(ccguard_issuer.mint())
    assert ccguard_issuer.hits["jwks"] == 0


def test_configured_jwks_uri_skips_discovery(ccguard_issuer: TestIssuer) -> None:
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, jwks_uri=ccguard_issuer.jwks_uri)
    validator.validate(ccguard_issuer.mint())
    assert ccguard_issuer.hits["openid_configuration"] + ccguard_issuer.hits["oauth_metadata"] == 0
    assert ccguard_issuer.hits["jwks"] == 1


def test_configured_discovery_url_is_the_only_one_tried() -> None:
    with TestIssuer(path="/t", openid_configuration=False) as issuer:
        url = issuer.base_url + "/.well-known/oauth-authorization-server/t"
        validator = TokenValidator(issuer.issuer, issuer.audience, discovery_url=url)
        validator.validate(issuer.mint())
        assert (issuer.hits["openid_configuration"], issuer.hits["oauth_metadata"]) == (0, 1)


def test_non_url_issuer_works_with_a_jwks_uri(ccguard_issuer: TestIssuer) -> None:
    """Some issuers (RKVST's app registrations) use an identifier and publish only a JWKS URL."""
    validator = TokenValidator("appidpv1", ccguard_issuer.audience, jwks_uri=ccguard_issuer.jwks_uri)
    assert validator.validate(ccguard_issuer.mint(iss="appidpv1")).issuer == "appidpv1"
