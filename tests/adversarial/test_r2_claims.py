"""Hardening round 2 (issue 13), claims: what a view reads of a token, ID tokens, role strings."""

from __future__ import annotations

import contextlib
from typing import Any

from flask import Flask

from flask_ccguard import CCGuard, VerifiedToken, current_token, require_roles, require_token
from flask_ccguard.testing import TestIssuer

from .support import make_validator

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
