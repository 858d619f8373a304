"""Several issuers, Entra ID's v1/v2 issuers and {tenantid} templates, and the JWK issuer check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flask_ccguard import ConfigurationError, InvalidToken, TokenValidator
from flask_ccguard.testing import TestIssuer, profile_issuer

TENANT = "11111111-2222-3333-4444-555555555555"
OTHER_TENANT = "99999999-8888-7777-6666-555555555555"
THIRD_TENANT = "abcdefab-cdef-abcd-efab-cdefabcdefab"


@pytest.fixture
def second_issuer() -> Iterator[TestIssuer]:
    with TestIssuer(path="/second", audience="https://second.example") as issuer:
        yield issuer


@pytest.fixture
def azure() -> Iterator[TestIssuer]:
    with profile_issuer("azure_v2") as issuer:
        yield issuer


def _fetches(*issuers: TestIssuer) -> int:
    return sum(n for issuer in issuers for name, n in issuer.hits.items() if name != "other")


# -- several issuers -----------------------------------------------------------------


def test_each_issuer_checks_its_tokens_with_its_own_settings(
    ccguard_issuer: TestIssuer, second_issuer: TestIssuer
) -> None:
    validator = TokenValidator(
        [
            ccguard_issuer.issuer,
            {"issuer": second_issuer.issuer, "audience": second_issuer.audience, "roles_claim": "realm_access.roles"},
        ],
        audience=ccguard_issuer.audience,
    )
    first = validator.validate(ccguard_issuer.mint(roles=["a"]))
    second = validator.validate(second_issuer.mint(realm_access={"roles": ["b"]}))
    assert (first.issuer, first.roles) == (ccguard_issuer.issuer, frozenset({"a"}))
    assert (second.issuer, second.roles) == (second_issuer.issuer, frozenset({"b"}))
    with pytest.raises(InvalidToken) as caught:  # the second issuer's audience is its own
        validator.validate(second_issuer.mint(aud=ccguard_issuer.audience))
    assert caught.value.reason == "audience"


def test_token_naming_another_configured_issuer_fails_its_signature(
    ccguard_issuer: TestIssuer, second_issuer: TestIssuer
) -> None:
    validator = TokenValidator([ccguard_issuer.issuer, second_issuer.issuer], audience=ccguard_issuer.audience)
    forged = ccguard_issuer.mint(iss=second_issuer.issuer, kid=None)
    with pytest.raises(InvalidToken) as caught:
        validator.validate(forged)
    assert caught.value.reason in {"bad_signature", "no_matching_key"}


UNKNOWN_ISS = [
    pytest.param({"iss": "https://evil.example"}, id="unknown"),
    pytest.param({"iss": None}, id="missing"),
    pytest.param({"iss": ["https://a.example"]}, id="not-a-string"),
    pytest.param({"iss": "{tenantid}"}, id="template-literal"),
    pytest.param({"iss": f"http://127.0.0.1:1/{OTHER_TENANT}/v2.0", "tid": OTHER_TENANT}, id="tenant-not-allowed"),
    pytest.param({"iss": f"http://127.0.0.1:1/{TENANT}/v2.0", "tid": "common"}, id="tid-not-a-guid"),
]


@pytest.mark.parametrize("claims", UNKNOWN_ISS)
def test_unknown_issuer_is_refused_before_any_key_or_network_work(
    ccguard_issuer: TestIssuer, second_issuer: TestIssuer, claims: dict[str, Any]
) -> None:
    validator = TokenValidator(
        [
            ccguard_issuer.issuer,
            second_issuer.issuer,
            {"issuer": "http://127.0.0.1:1/{tenantid}/v2.0", "jwks_uri": second_issuer.jwks_uri, "tenants": [TENANT]},
        ],
        audience=ccguard_issuer.audience,
    )
    before = _fetches(ccguard_issuer, second_issuer)
    with pytest.raises(InvalidToken) as caught:
        validator.validate(ccguard_issuer.mint(**claims))
    assert (caught.value.reason, caught.value.claim) == ("issuer", "iss")
    assert _fetches(ccguard_issuer, second_issuer) == before == 0


# -- templates -----------------------------------------------------------------------


def _template_validator(issuer: TestIssuer, **spec: Any) -> TokenValidator:
    entry = {"issuer": issuer.base_url + "/{tenantid}/v2.0", "jwks_uri": issuer.jwks_uri, **spec}
    return TokenValidator([entry], audience=issuer.audience)


TEMPLATE_CASES = [
    pytest.param(TENANT, "/{tid}/v2.0", None, None, id="any-tenant"),
    pytest.param(TENANT, "/{tid}/v2.0", [TENANT, OTHER_TENANT], None, id="allowed-tenant"),
    pytest.param(TENANT.upper(), "/{tid}/v2.0", [TENANT], None, id="allowlist-case-insensitive"),
    pytest.param(OTHER_TENANT, "/{tid}/v2.0", [TENANT], "issuer", id="tenant-not-in-allowlist"),
    pytest.param(TENANT, f"/{OTHER_TENANT}/v2.0", None, "issuer", id="tid-differs-from-iss"),
    pytest.param("common", "/{tid}/v2.0", None, "issuer", id="tid-not-guid"),
    pytest.param(None, f"/{TENANT}/v2.0", None, "issuer", id="tid-missing"),
    pytest.param(TENANT, "/{tid}/v2.0/", None, "issuer", id="iss-with-extra-slash"),
    pytest.param(TENANT, "/x/{tid}/v2.0", None, "issuer", id="tid-not-first-segment"),
]


@pytest.mark.parametrize(("tid", "path", "tenants", "reason"), TEMPLATE_CASES)
def test_template_issuer_matches_tid_substituted(
    ccguard_issuer: TestIssuer, tid: str | None, path: str, tenants: list[str] | None, reason: str | None
) -> None:
    validator = _template_validator(ccguard_issuer, tenants=tenants)
    iss = ccguard_issuer.base_url + path.replace("{tid}", str(tid))
    token = ccguard_issuer.mint(iss=iss, tid=tid)
    if reason is None:
        assert validator.validate(token).issuer == iss
    else:
        with pytest.raises(InvalidToken) as caught:
            validator.validate(token)
        assert caught.value.reason == reason
        assert ccguard_issuer.hits["jwks"] == 0


def test_fixed_issuer_wins_over_template(ccguard_issuer: TestIssuer) -> None:
    fixed = f"{ccguard_issuer.base_url}/{TENANT}/v2.0"
    validator = TokenValidator(
        [
            {"issuer": fixed, "jwks_uri": ccguard_issuer.jwks_uri, "roles_claim": "fixed_roles"},
            {"issuer": ccguard_issuer.base_url + "/{tenantid}/v2.0", "jwks_uri": ccguard_issuer.jwks_uri},
        ],
        audience=ccguard_issuer.audience,
    )
    token = validator.validate(ccguard_issuer.mint(iss=fixed, tid=TENANT, fixed_roles=["r"]))
    assert token.roles == frozenset({"r"})
    assert validator.issuers[0] == fixed


# -- Entra ID ------------------------------------------------------------------------


def test_v1_and_v2_issuers_of_one_tenant(azure: Any) -> None:
    validator = TokenValidator(
        [
            {"issuer": azure.v1_issuer, "audience": ["api://ccguard-demo", "api://ccguard-demo/"]},
            {"issuer": azure.v2_issuer, "audience": azure.api_client_id},
        ]
    )
    v1 = validator.validate(azure.mint(ver="1.0"))
    v2 = validator.validate(azure.mint(ver="2.0"))
    slash = validator.validate(azure.mint(ver="1.0", aud="api://ccguard-demo/"))
    assert (v1.issuer, v2.issuer, slash.issuer) == (azure.v1_issuer, azure.v2_issuer, azure.v1_issuer)
    assert v1.client_id == v2.client_id == azure.client_id  # appid and azp
    assert "appid" in v1 and "azp" in v2
    with pytest.raises(InvalidToken) as caught:  # a v1 token for the v2 audience
        validator.validate(azure.mint(ver="1.0", aud=azure.api_client_id))
    assert caught.value.reason == "audience"


@pytest.mark.parametrize("ver", ["1.0", "2.0"])
def test_multi_tenant_template_with_common_metadata(azure: Any, ver: str) -> None:
    v1 = ver == "1.0"
    validator = TokenValidator(
        [
            {
                "issuer": azure.v1_template if v1 else azure.v2_template,
                "discovery_url": azure.common_v1_discovery_url if v1 else azure.common_v2_discovery_url,
                "tenants": [TENANT, OTHER_TENANT],
                "audience": "api://ccguard-demo" if v1 else azure.api_client_id,
            }
        ]
    )
    for tid in (TENANT, OTHER_TENANT):
        assert validator.validate(azure.mint(ver=ver, tid=tid)).issuer == azure.issuer_for(tid, ver)
    with pytest.raises(InvalidToken) as caught:
        validator.validate(azure.mint(ver=ver, tid=THIRD_TENANT))
    assert caught.value.reason == "issuer"
    assert validator.key_set(azure.v1_template if v1 else azure.v2_template).fetches == 1  # one set for all tenants


KEY_ISSUERS = [
    pytest.param(None, None, id="microsoft-template"),
    pytest.param("{base}/{{tenantid}}/v2.0", None, id="template-member"),
    pytest.param(f"{{base}}/{TENANT}/v2.0", None, id="fixed-member-same-tenant"),
    pytest.param(f"{{base}}/{OTHER_TENANT}/v2.0", "key_issuer", id="fixed-member-other-tenant"),
    pytest.param("{base}/{{tenantid}}/", "key_issuer", id="template-of-v1"),
    pytest.param("https://login.microsoftonline.com/{{tenantid}}/v2.0", "key_issuer", id="other-host"),
]


@pytest.mark.parametrize(("member", "reason"), KEY_ISSUERS)
def test_jwk_issuer_member_must_match_the_token(azure: Any, member: str | None, reason: str | None) -> None:
    if member is not None:
        azure.key_issuer = member.format(base=azure.base_url)
    validator = TokenValidator(
        [{"issuer": azure.v2_template, "discovery_url": azure.common_v2_discovery_url}], audience=azure.api_client_id
    )
    token = azure.mint()
    if reason is None:
        assert validator.validate(token).issuer == azure.v2_issuer
    else:
        with pytest.raises(InvalidToken) as caught:
            validator.validate(token)
        assert caught.value.reason == reason


def test_jwk_issuer_member_applies_to_fixed_issuers_too(azure: Any) -> None:
    validator = TokenValidator(
        [{"issuer": azure.v2_issuer, "discovery_url": azure.v2_discovery_url}],
        audience=azure.audience,
        jwks_refresh_cooldown=0,
    )
    assert validator.validate(azure.mint()).issuer == azure.v2_issuer  # the tenant's keys name its issuer
    azure.key_issuer = azure.issuer_for(OTHER_TENANT, "2.0")
    azure.rotate_keys()  # a new kid makes the validator refetch
    with pytest.raises(InvalidToken) as caught:
        validator.validate(azure.mint())
    assert caught.value.reason == "key_issuer"


def test_nonce_header_token_is_refused_as_first_party(azure: Any) -> None:
    validator = TokenValidator(
        [{"issuer": azure.v2_issuer, "discovery_url": azure.v2_discovery_url}], audience=azure.audience
    )
    with pytest.raises(InvalidToken) as caught:
        validator.validate(azure.mint(headers={"nonce": "AQABAAAAAAD"}, aud="00000003-0000-0000-c000-000000000000"))
    assert caught.value.reason == "first_party_token"
    assert "Microsoft first-party token" in caught.value.description
    assert "nonce" in caught.value.description


# -- configuration -------------------------------------------------------------------

T = "https://login.microsoftonline.com/{tenantid}/v2.0"
D = "https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration"
INTRO = {"endpoint": "https://idp.example/introspect", "client_id": "api", "client_secret": "s"}

BAD = [
    pytest.param(
        {"issuer": "https://idp.example", "tenants": [TENANT]}, "only applies to an issuer template", id="fixed"
    ),
    pytest.param({"issuer": T}, "set its discovery_url", id="template-undiscoverable"),
    pytest.param({"issuer": T + "/{tenantid}", "discovery_url": D}, "exactly once", id="two-placeholders"),
    pytest.param({"issuer": "https://h.example/x/{tenantid}", "discovery_url": D}, "first path segment", id="segment"),
    pytest.param({"issuer": "http://h.example/{tenantid}/", "discovery_url": D}, "not allowed", id="plain-http"),
    pytest.param({"issuer": T, "discovery_url": D, "tenants": "common"}, "list of tenant ids", id="tenants-string"),
    pytest.param({"issuer": T, "discovery_url": D, "tenants": ["contoso"]}, "GUIDs", id="tenants-not-guids"),
    pytest.param({"issuer": T, "discovery_url": D, "introspection": INTRO}, "names no tenant", id="template-intro"),
]


@pytest.mark.parametrize(("spec", "message"), BAD)
def test_bad_tenant_settings_name_the_fix(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        TokenValidator([spec], audience="api")
    assert message in str(caught.value)


def test_template_configured_twice_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="configured twice"):
        TokenValidator([{"issuer": T, "discovery_url": D}, {"issuer": T, "jwks_uri": D}], audience="api")
