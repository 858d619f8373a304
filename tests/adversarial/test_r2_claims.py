"""Hardening round 2 (issue 13), claims: what a view reads of a token, ID tokens, role strings."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from flask import Flask

from flask_ccguard import (
    CCGuard,
    ConfigurationError,
    TokenValidator,
    VerifiedToken,
    current_token,
    require_roles,
    require_token,
)
from flask_ccguard.testing import TestIssuer

from .support import make_validator, rejection

# -- finding 16: nested claims are not shared through the token cache ---------------------

REALM: dict[str, Any] = {"realm_access": {"roles": ["guest"]}, "resource_access": {"api": {"roles": ["reader"]}}}


def _mutate_everything(token: Any) -> None:
    """What a careless view does to the claims it reads (every way it can reach them)."""
    token["realm_access"]["roles"].append("admin")
    token.get("realm_access")["roles"].append("admin")
    token.claims["realm_access"]["roles"].append("admin")
    token.claims["resource_access"]["api"]["roles"][:] = ["admin"]
    with contextlib.suppress(TypeError):  # a read-only top level is fine too
        token.claims["aud"] = "https://elsewhere.example"
        token.header["alg"] = "none"


def test_r2_16_nested_claims_edited_by_one_caller_are_not_seen_by_the_next(issuer: TestIssuer) -> None:
    rounds = 4
    validator = make_validator(issuer, roles_claim="realm_access.roles")
    raw = issuer.mint(**REALM)
    seen: list[VerifiedToken] = []
    for _ in range(rounds):  # first sight, stored on the second, then cache hits
        token = validator.validate(raw)
        seen.append(token)
        assert token["realm_access"] == {"roles": ["guest"]}
        assert token.claims["resource_access"] == {"api": {"roles": ["reader"]}}
        assert token.header["alg"] == "RS256"
        assert token.roles == {"guest"}
        _mutate_everything(token)
        assert token.roles == {"guest"}
    assert seen[-1] is seen[-2], "the last rounds must have been served from the token cache"
    assert validator.stats()["validations"]["accepted"] == rounds


def test_r2_16_a_view_editing_nested_claims_cannot_grant_a_role_to_later_requests(issuer: TestIssuer) -> None:
    app = Flask("r2_16")
    CCGuard(app, issuer=issuer.issuer, audience=issuer.audience, roles_claim="realm_access.roles")

    @app.get("/profile")
    @require_token
    def profile() -> Any:
        _mutate_everything(current_token)
        return {"roles": current_token["realm_access"]["roles"]}

    @app.get("/admin")
    @require_roles("admin")
    def admin() -> Any:
        return {"ok": True}

    raw = issuer.mint(**REALM)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {raw}"}
    for _ in range(4):
        resp = client.get("/profile", headers=auth)
        assert (resp.status_code, resp.get_json()) == (200, {"roles": ["guest"]})
        assert client.get("/admin", headers=auth).status_code == 403


def test_r2_16_the_copy_of_a_deeply_nested_claim_does_not_recurse(issuer: TestIssuer) -> None:
    deep: list[Any] = []
    node = deep
    for _ in range(900):  # as deep as the JSON parser admits under the default recursion limit
        node.append([])
        node = node[0]
    token = make_validator(issuer).validate(issuer.mint(deep=deep))
    copied = token["deep"]
    for _ in range(900):
        copied = copied[0]
    assert copied == [] and "deep" in token.claims


# -- finding 17: ID tokens do not pass as access tokens -----------------------------------

# An ID token of the same issuer, signed with the same keys, for an API whose audience is
# also the OpenID client id: 'typ: JWT' (or none) is what the default token types accept.
ID_TOKENS: list[Any] = [
    pytest.param({"typ": "JWT"}, {"nonce": "n-0S6_WzA2Mj"}, "nonce", id="OIDC-Core-2-nonce-typ-JWT"),
    pytest.param({"typ": None}, {"nonce": "n-0S6_WzA2Mj"}, "nonce", id="OIDC-Core-2-nonce-typ-absent"),
    pytest.param({"typ": "JWT"}, {"at_hash": "77QmUPtjPfzWtF2AnpK9RQ"}, "at_hash", id="OIDC-Core-3.1.3.6-at_hash"),
    pytest.param({"typ": "JWT"}, {"c_hash": "LDktKdoQak3Pk0cnXxCltA"}, "c_hash", id="OIDC-Core-3.3.2.11-c_hash"),
    pytest.param({"typ": "JWT"}, {"s_hash": "x7DIRrTg2ELPsVsLYkVNSA"}, "s_hash", id="FAPI1-Advanced-5.1-s_hash"),
    pytest.param(
        {"typ": "JWT"},
        {"nonce": "abc", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ", "auth_time": 1, "ver": "2.0", "tid": "t"},
        None,
        id="RFC8725-3.12-entra-shaped-id-token",
    ),
    pytest.param({"typ": "at+jwt"}, {"nonce": "n-typed"}, "nonce", id="RFC8725-3.12-id-token-claim-even-if-typed"),
]


@pytest.mark.parametrize(("header", "claims", "claim"), ID_TOKENS)
def test_r2_17_id_tokens_are_refused_under_the_default_token_types(
    issuer: TestIssuer, header: dict[str, Any], claims: dict[str, Any], claim: str | None
) -> None:
    error = rejection(make_validator(issuer), issuer.mint(headers=header, **claims))
    assert (error.status, error.error, error.reason) == (401, "invalid_token", "id_token")
    assert error.claim is not None and error.claim in (claims if claim is None else (claim,))
    assert "ID token" in error.description and str(claims[error.claim]) not in error.description


ACCESS_TOKENS: list[Any] = [
    # RFC 9068 §2.2.1 lists auth_time, acr and amr among an access token's claims.
    pytest.param({}, {"auth_time": 1, "acr": "urn:mace:incommon:iap:silver", "amr": ["pwd"]}, id="RFC9068-2.2.1"),
    pytest.param({}, {"sid": "s", "azp": "c", "idtyp": "app"}, id="RFC9068-2.2-entra-and-session-claims"),
    # Keycloak before 25 put 'nonce' in access tokens; such an issuer keeps the other markers.
    pytest.param({"id_token_claims": ["at_hash", "c_hash", "s_hash"]}, {"nonce": "n"}, id="keycloak-24-nonce"),
    pytest.param({"id_token_claims": []}, {"nonce": "n", "at_hash": "h"}, id="check-turned-off"),
]


@pytest.mark.parametrize(("options", "claims"), ACCESS_TOKENS)
def test_r2_17_access_token_claims_pass(issuer: TestIssuer, options: dict[str, Any], claims: dict[str, Any]) -> None:
    assert make_validator(issuer, **options).validate(issuer.mint(headers={"typ": "JWT"}, **claims)).issuer


def test_r2_17_id_token_claims_is_a_per_issuer_setting(issuer: TestIssuer, attacker: TestIssuer) -> None:
    validator = TokenValidator(
        [{"issuer": issuer.issuer, "id_token_claims": ["at_hash"]}, attacker.issuer],
        audience=issuer.audience,
    )
    assert validator.validate(issuer.mint(nonce="n")).claims["nonce"] == "n"
    assert rejection(validator, issuer.mint(at_hash="h")).claim == "at_hash"
    assert rejection(validator, attacker.mint(aud=issuer.audience, nonce="n")).claim == "nonce"


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("nonce", "CCGUARD_ID_TOKEN_CLAIMS"),
        (["nonce", 1], "CCGUARD_ID_TOKEN_CLAIMS"),
        ({"nonce": 1}, "CCGUARD_ID_TOKEN_CLAIMS"),
    ],
)
def test_r2_17_a_wrong_id_token_claims_setting_fails_at_start_up(issuer: TestIssuer, value: Any, key: str) -> None:
    app = Flask("r2_17")
    app.config.update(CCGUARD_ISSUER=issuer.issuer, CCGUARD_AUDIENCE=issuer.audience, CCGUARD_ID_TOKEN_CLAIMS=value)
    with pytest.raises(ConfigurationError) as caught:
        CCGuard(app)
    assert str(caught.value).startswith(
        f"{key} must be None (refuse tokens with ['at_hash', 'c_hash', 'nonce', 's_hash'])"
    )


def test_r2_17_the_flask_layer_answers_401_to_an_id_token(issuer: TestIssuer) -> None:
    app = Flask("r2_17")
    CCGuard(app, issuer=issuer.issuer, audience=issuer.audience)

    @app.get("/assets")
    @require_token
    def assets() -> Any:
        return {"ok": True}

    resp = app.test_client().get("/assets", headers={"Authorization": f"Bearer {issuer.mint(nonce='n')}"})
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_token"
