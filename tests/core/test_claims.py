"""Claim rules (RFC 7519 §4.1) and their boundaries, with a fixed clock."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from flask import Flask

from flask_ccguard import (
    CCGuard,
    ConfigurationError,
    ExpiredToken,
    InvalidToken,
    TokenValidator,
    VerifiedToken,
    current_token,
    require_roles,
    require_token,
)
from flask_ccguard.core.report import run_checks
from flask_ccguard.testing import TestIssuer

NOW = 1_800_000_000
LEEWAY = 60


@pytest.fixture
def validator(ccguard_issuer: TestIssuer) -> TokenValidator:
    return TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, leeway=LEEWAY, clock=lambda: NOW)


def _mint(issuer: TestIssuer, **claims: Any) -> str:
    claims.setdefault("iat", NOW - 10)
    claims.setdefault("nbf", NOW - 10)
    claims.setdefault("exp", NOW + 300)
    return issuer.mint(**claims)


ACCEPTED = [
    pytest.param({}, id="typical"),
    pytest.param({"exp": NOW - LEEWAY + 1}, id="exp-just-inside-leeway"),
    pytest.param({"nbf": NOW + LEEWAY}, id="nbf-at-leeway-edge"),
    pytest.param({"nbf": None}, id="nbf-absent"),
    pytest.param({"iat": NOW + LEEWAY}, id="iat-at-leeway-edge"),
    pytest.param({"exp": NOW + 300.5, "iat": NOW - 0.5}, id="fractional-numericdates"),
    pytest.param({"aud": ["https://other.example", "https://api.example.com"]}, id="aud-list-containing-ours"),
]


@pytest.mark.parametrize("claims", ACCEPTED)
def test_accepted_claims(validator: TokenValidator, ccguard_issuer: TestIssuer, claims: dict[str, Any]) -> None:
    token = validator.validate(_mint(ccguard_issuer, **claims))
    assert token.issuer == ccguard_issuer.issuer


REFUSED = [
    # (claims, error class, reason, claim)
    pytest.param({"exp": NOW - LEEWAY}, ExpiredToken, "expired", "exp", id="exp-at-leeway-edge"),
    pytest.param({"exp": NOW - 3600}, ExpiredToken, "expired", "exp", id="exp-long-past"),
    pytest.param({"exp": None}, InvalidToken, "missing_claim", "exp", id="exp-missing"),
    pytest.param({"exp": str(NOW + 300)}, InvalidToken, "claim_type", "exp", id="exp-string"),
    pytest.param({"exp": True}, InvalidToken, "claim_type", "exp", id="exp-boolean"),
    pytest.param({"exp": [NOW + 300]}, InvalidToken, "claim_type", "exp", id="exp-array"),
    pytest.param({"nbf": NOW + LEEWAY + 1}, InvalidToken, "not_yet_valid", "nbf", id="nbf-beyond-leeway"),
    pytest.param({"nbf": "soon"}, InvalidToken, "claim_type", "nbf", id="nbf-string"),
    pytest.param({"iat": NOW + LEEWAY + 1}, InvalidToken, "issued_in_future", "iat", id="iat-in-future"),
    pytest.param({"iat": None}, InvalidToken, "missing_claim", "iat", id="iat-missing"),
    pytest.param({"iat": {"t": 1}}, InvalidToken, "claim_type", "iat", id="iat-object"),
    pytest.param({"aud": "https://other.example"}, InvalidToken, "audience", "aud", id="aud-other"),
    pytest.param({"aud": "https://api.example.com/"}, InvalidToken, "audience", "aud", id="aud-trailing-slash"),
    pytest.param({"aud": []}, InvalidToken, "claim_type", "aud", id="aud-empty-list"),
    pytest.param({"aud": ["https://api.example.com", 7]}, InvalidToken, "claim_type", "aud", id="aud-list-with-number"),
    pytest.param({"aud": None}, InvalidToken, "missing_claim", "aud", id="aud-missing"),
    pytest.param({"iss": None}, InvalidToken, "issuer", "iss", id="iss-missing"),
    pytest.param({"iss": "https://evil.example"}, InvalidToken, "issuer", "iss", id="iss-other"),
]


@pytest.mark.parametrize(("claims", "error", "reason", "claim"), REFUSED)
def test_refused_claims(
    validator: TokenValidator,
    ccguard_issuer: TestIssuer,
    claims: dict[str, Any],
    error: type[InvalidToken],
    reason: str,
    claim: str,
) -> None:
    with pytest.raises(error) as caught:
        validator.validate(_mint(ccguard_issuer, **claims))
    assert (caught.value.reason, caught.value.claim) == (reason, claim)
    assert caught.value.status == 401
    assert caught.value.error == "invalid_token"


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        pytest.param({"exp": NOW - LEEWAY}, "expired", id="exp-boundary-is-exclusive"),
        pytest.param({"exp": NOW}, None, id="exp-now-inside-leeway"),
    ],
)
def test_exp_equal_to_now_minus_leeway_is_expired(
    validator: TokenValidator, ccguard_issuer: TestIssuer, claims: dict[str, Any], expected: str | None
) -> None:
    token = _mint(ccguard_issuer, **claims)
    if expected is None:
        assert validator.validate(token).claims["exp"] == claims["exp"]
    else:
        with pytest.raises(ExpiredToken):
            validator.validate(token)


def test_exp_equal_to_now_is_expired_without_leeway(ccguard_issuer: TestIssuer) -> None:
    strict = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, leeway=0, clock=lambda: NOW)
    with pytest.raises(ExpiredToken):
        strict.validate(_mint(ccguard_issuer, exp=NOW))
    assert strict.validate(_mint(ccguard_issuer, exp=NOW + 1)).claims["exp"] == NOW + 1


def test_iat_optional_when_not_required(ccguard_issuer: TestIssuer) -> None:
    lax = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, require_iat=False, clock=lambda: NOW)
    assert lax.validate(_mint(ccguard_issuer, iat=None)).issued_at is None


@pytest.mark.parametrize(
    ("age", "accepted"),
    [pytest.param(600, True, id="within-max-age"), pytest.param(600 + LEEWAY + 1, False, id="older-than-max-age")],
)
def test_max_token_age(ccguard_issuer: TestIssuer, age: int, accepted: bool) -> None:
    v = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, max_token_age=600, clock=lambda: NOW)
    token = _mint(ccguard_issuer, iat=NOW - age, nbf=None)
    if accepted:
        assert v.validate(token).issued_at == datetime.fromtimestamp(NOW - age, tz=timezone.utc)
    else:
        with pytest.raises(InvalidToken) as caught:
            v.validate(token)
        assert (caught.value.reason, caught.value.claim) == ("too_old", "iat")


def test_audience_list_configuration(ccguard_issuer: TestIssuer) -> None:
    v = TokenValidator(ccguard_issuer.issuer, ["api://one", "api://two"], clock=lambda: NOW)
    assert v.validate(_mint(ccguard_issuer, aud="api://two")).audiences == ("api://two",)
    with pytest.raises(InvalidToken):
        v.validate(_mint(ccguard_issuer, aud="api://three"))


def _verified(validator: TokenValidator, issuer: TestIssuer, **claims: Any) -> VerifiedToken:
    return validator.validate(_mint(issuer, **claims))


@pytest.mark.parametrize(
    ("claims", "scopes"),
    [
        pytest.param({"scope": "assets:read assets:write"}, {"assets:read", "assets:write"}, id="scope-string"),
        pytest.param({"scope": ["assets:read", "assets:write"]}, {"assets:read", "assets:write"}, id="scope-array"),
        pytest.param({"scp": "a b"}, {"a", "b"}, id="scp-string"),
        pytest.param({"scp": ["a"]}, {"a"}, id="scp-array"),
        pytest.param({"scope": "a", "scp": "b"}, {"a"}, id="scope-wins-over-scp"),
        pytest.param({"scope": ["a", 1, None]}, {"a"}, id="non-strings-ignored"),
        pytest.param({"scope": 42}, set(), id="number-grants-nothing"),
        pytest.param({}, set(), id="absent"),
    ],
)
def test_scopes(
    validator: TokenValidator, ccguard_issuer: TestIssuer, claims: dict[str, Any], scopes: set[str]
) -> None:
    assert _verified(validator, ccguard_issuer, **claims).scopes == scopes


@pytest.mark.parametrize(
    ("roles_claim", "claims", "roles"),
    [
        pytest.param("roles", {"roles": ["guest"]}, {"guest"}, id="default-roles"),
        pytest.param("realm_access.roles", {"realm_access": {"roles": ["admin"]}}, {"admin"}, id="dotted-path"),
        pytest.param("https://example.com/roles", {"https://example.com/roles": ["x"]}, {"x"}, id="namespaced-claim"),
        pytest.param("realm_access.roles", {"realm_access": ["admin"]}, set(), id="path-through-non-object"),
        pytest.param("roles", {"roles": "a b"}, {"a", "b"}, id="space-separated-string"),
        pytest.param("roles", {}, set(), id="absent"),
    ],
)
def test_roles(ccguard_issuer: TestIssuer, roles_claim: str, claims: dict[str, Any], roles: set[str]) -> None:
    v = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, roles_claim=roles_claim, clock=lambda: NOW)
    assert _verified(v, ccguard_issuer, **claims).roles == roles


@pytest.mark.parametrize(
    ("claims", "client_id"),
    [
        pytest.param({"client_id": "c1", "azp": "a", "appid": "b"}, "c1", id="client_id-first"),
        pytest.param({"client_id": None, "azp": "a", "appid": "b"}, "a", id="azp-v2"),
        pytest.param({"client_id": None, "appid": "b"}, "b", id="appid-v1"),
        pytest.param({"client_id": None, "sub": "s"}, "s", id="sub-last"),
    ],
)
def test_client_id(
    validator: TokenValidator, ccguard_issuer: TestIssuer, claims: dict[str, Any], client_id: str
) -> None:
    assert _verified(validator, ccguard_issuer, **claims).client_id == client_id


def test_verified_token_is_read_only(validator: TokenValidator, ccguard_issuer: TestIssuer) -> None:
    token = _verified(validator, ccguard_issuer, sub="svc", roles=["guest"])
    assert token["sub"] == "svc"
    assert token.get("missing", "d") == "d"
    assert token.subject == "svc"
    assert token.expires_at == datetime.fromtimestamp(NOW + 300, tz=timezone.utc)
    assert token.header["alg"] == "RS256"
    token.claims["sub"] = "other"  # a copy: the token is unchanged
    token.header["alg"] = "none"
    assert (token["sub"], token.claims["sub"], token.subject, token.header["alg"]) == ("svc", "svc", "svc", "RS256")
    with pytest.raises(AttributeError):
        token.subject = "other"  # type: ignore[misc]


# -- issue 14 item 2: what a view returns of a token is JSON ----------------------------

NESTED: dict[str, Any] = {"realm_access": {"roles": ["guest"]}, "cnf": {"x5t#S256": "abc"}, "scope": ["a", "b"]}


def test_i14_02_claims_and_header_are_plain_json_serializable_dicts(
    validator: TokenValidator, ccguard_issuer: TestIssuer
) -> None:
    token = _verified(validator, ccguard_issuer, sub="svc", **NESTED)
    assert type(token.claims) is dict and type(token.header) is dict
    assert json.loads(json.dumps(token.claims)) == token.claims
    assert json.loads(json.dumps(token.header))["alg"] == "RS256"
    # The other JSON-able parts; scopes and roles are frozensets (sort them for JSON).
    parts = [token.subject, token.issuer, token.client_id, token.audiences, sorted(token.roles), sorted(token.scopes)]
    assert json.loads(json.dumps(parts))[4:] == [[], ["a", "b"]]


def test_i14_02_a_view_may_return_the_claims_and_header_as_they_are(ccguard_issuer: TestIssuer) -> None:
    app = Flask("i14_02")
    CCGuard(app, issuer=ccguard_issuer.issuer, audience=ccguard_issuer.audience)

    @app.get("/whoami")
    @require_token
    def whoami() -> Any:
        return {
            "claims": current_token.claims,
            "header": current_token.header,
            "nested": current_token["realm_access"],
            "audiences": current_token.audiences,
            "expires_at": current_token.expires_at,  # Flask's provider writes an HTTP date
        }

    # Through the extension a cnf with x5t#S256 binds the token to a certificate
    # (RFC 8705 §3, issue 16); a cnf member that binds nothing keeps the nesting.
    token = ccguard_issuer.mint(sub="svc", **{**NESTED, "cnf": {"kid": "abc"}})
    for _ in range(3):  # first sight, second sight (cached), cache hit
        resp = app.test_client().get("/whoami", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        body = resp.get_json()
        assert body["claims"]["sub"] == "svc" and body["claims"]["realm_access"] == {"roles": ["guest"]}
        assert body["header"]["alg"] == "RS256"
        assert body["nested"] == {"roles": ["guest"]}
        assert body["audiences"] == [ccguard_issuer.audience]


# -- issue 14 item 11: several roles in one string ----------------------------------------

ROLE_STRINGS: list[Any] = [
    # (roles_delimiter, value of the roles claim, roles)
    pytest.param(
        None, "guest,archivist_administrator", {"guest,archivist_administrator"}, id="i14_11_default-comma-kept"
    ),
    pytest.param(
        None, "guest archivist_administrator", {"guest", "archivist_administrator"}, id="i14_11_default-spaces"
    ),
    pytest.param(",", "guest,archivist_administrator", {"guest", "archivist_administrator"}, id="i14_11_comma"),
    pytest.param(
        ",", " guest , archivist_administrator,,", {"guest", "archivist_administrator"}, id="i14_11_comma-strip"
    ),
    pytest.param(",", "Read Only,Writer", {"Read Only", "Writer"}, id="i14_11_comma-keeps-inner-spaces"),
    pytest.param(",", ",, ,", set(), id="i14_11_comma-nothing-but-separators"),
    pytest.param(
        ",", ["guest,archivist_administrator"], {"guest,archivist_administrator"}, id="i14_11_array-untouched"
    ),
    pytest.param(",", ["guest", 7], {"guest"}, id="i14_11_array-non-strings-ignored"),
    pytest.param(" ", "a  b\tc", {"a", "b", "c"}, id="i14_11_space-any-whitespace"),
    pytest.param(";", "a;b c", {"a", "b c"}, id="i14_11_semicolon"),
    pytest.param("||", "a||b|c", {"a", "b|c"}, id="i14_11_multi-character"),
    pytest.param(",", 42, set(), id="i14_11_number-grants-nothing"),
]


@pytest.mark.parametrize(("delimiter", "value", "roles"), ROLE_STRINGS)
def test_i14_11_roles_delimiter(ccguard_issuer: TestIssuer, delimiter: str | None, value: Any, roles: set[str]) -> None:
    v = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, roles_delimiter=delimiter, clock=lambda: NOW)
    assert _verified(v, ccguard_issuer, roles=value).roles == roles


def test_i14_11_roles_delimiter_on_a_dotted_path_and_per_issuer(ccguard_issuer: TestIssuer) -> None:
    spec = {"issuer": ccguard_issuer.issuer, "roles_claim": "realm_access.roles", "roles_delimiter": ","}
    v = TokenValidator([spec], ccguard_issuer.audience, clock=lambda: NOW)
    token = _verified(v, ccguard_issuer, realm_access={"roles": "guest,archivist_administrator"})
    assert token.roles == {"guest", "archivist_administrator"}


def test_i14_11_require_roles_with_a_delimited_roles_string(ccguard_issuer: TestIssuer) -> None:
    token = ccguard_issuer.mint(roles="guest,archivist_administrator")
    for delimiter, status in ((None, 403), (",", 200)):
        app = Flask("i14_11")
        CCGuard(app, issuer=ccguard_issuer.issuer, audience=ccguard_issuer.audience, roles_delimiter=delimiter)

        @app.get("/archivist/v2/assets")
        @require_roles("archivist_administrator")
        def assets() -> Any:
            return {"roles": sorted(current_token.roles)}

        resp = app.test_client().get("/archivist/v2/assets", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == status, delimiter


def test_i14_11_check_token_splits_roles_as_the_validator_does(ccguard_issuer: TestIssuer) -> None:
    v = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, roles_delimiter=",")
    report = run_checks(v, ccguard_issuer.mint(roles="guest,archivist_administrator"), roles=["guest"])
    assert {c.name: c.status for c in report.checks}["roles"] == "PASS"


@pytest.mark.parametrize("value", ["", 1, [","]])
def test_i14_11_a_wrong_roles_delimiter_fails_at_start_up(ccguard_issuer: TestIssuer, value: Any) -> None:
    app = Flask("i14_11")
    app.config.update(
        CCGUARD_ISSUER=ccguard_issuer.issuer, CCGUARD_AUDIENCE=ccguard_issuer.audience, CCGUARD_ROLES_DELIMITER=value
    )
    with pytest.raises(ConfigurationError) as caught:
        CCGuard(app)
    assert str(caught.value) == (
        "CCGUARD_ROLES_DELIMITER must be None (a string of roles is split on spaces) "
        "or the separator between the roles of one string, such as ','."
    )
