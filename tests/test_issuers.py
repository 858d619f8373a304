"""Every issuer in our field protecting a Flask view: tokens of each TestIssuer profile accepted, and refused when they should be."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from flask import Flask

from flask_ccguard import CCGuard, current_token, require_roles, require_scopes, require_token
from flask_ccguard.testing import profile_issuer
from tests.challenges import assert_challenge
from tests.conftest import with_claims

OTHER_TENANT = "99999999-8888-7777-6666-555555555555"

Issuer = Any  # a ProfileIssuer; its attributes differ per profile


def _introspection(issuer: Issuer, auth_method: str = "client_secret_basic") -> dict[str, Any]:
    name, secret = next(iter(issuer.introspection_clients.items()))
    return {
        "endpoint": issuer.introspection_endpoint,
        "client_id": name,
        "client_secret": secret,
        "auth_method": auth_method,
    }


@dataclass
class Case:
    """One way an issuer's tokens reach an API."""

    profile: str
    spec: Callable[[Issuer], dict[str, Any]]
    #: keyword arguments of mint() for a token the view accepts
    good: dict[str, Any]
    decorator: Callable[[Callable[..., Any]], Callable[..., Any]]
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    #: keyword arguments of mint() for a token lacking the permission
    lacking: dict[str, Any] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(
        "azure_v1",
        lambda i: {
            "issuer": i.v1_issuer,
            "discovery_url": i.v1_discovery_url,
            "audience": ["api://ccguard-demo", "api://ccguard-demo/"],
        },
        {"roles": ["Assets.Read"]},
        require_roles("Assets.Read"),
        roles=frozenset({"Assets.Read"}),
        lacking={"roles": None},
    ),
    Case(
        "azure_v2",
        lambda i: {"issuer": i.v2_issuer, "audience": i.api_client_id},
        {"roles": ["Assets.Read", "Assets.Write"]},
        require_roles("Assets.Write"),
        roles=frozenset({"Assets.Read", "Assets.Write"}),
        lacking={"roles": ["Assets.Read"]},
    ),
    Case(
        "rkvst",
        lambda i: {"issuer": i.issuer, "audience": i.audience, "jwks_uri": i.jwks_uri, "token_types": ["at+jwt"]},
        {},
        require_token,
    ),
    Case(
        "ibm_verify",
        lambda i: {
            "issuer": i.issuer,
            "audience": i.audience,
            "introspection": _introspection(i, "client_secret_post"),
        },
        {"scope": "assets.read assets.write"},
        require_scopes("assets.read"),
        scopes=frozenset({"assets.read", "assets.write"}),
        lacking={"scope": "assets.write"},
    ),
    Case(
        "aidbox",
        lambda i: {
            "issuer": i.issuer,
            "audience": i.audience,
            "discovery_url": i.discovery_url,
            "introspection": _introspection(i),
        },
        {"scope": "system/Patient.read"},
        require_scopes("system/Patient.read"),
        scopes=frozenset({"system/Patient.read"}),
        lacking={"scope": "system/Observation.read"},
    ),
    Case(
        "aidbox",
        lambda i: {"issuer": i.issuer, "audience": i.audience, "discovery_url": i.discovery_url},
        {"scope": "system/Patient.read system/Observation.read", "opaque": False},
        require_scopes("system/Patient.read"),
        scopes=frozenset({"system/Patient.read", "system/Observation.read"}),
        lacking={"scope": "system/Observation.read", "opaque": False},
    ),
    Case(
        "duende",
        lambda i: {"issuer": i.issuer, "audience": i.audience, "roles_claim": "client_role"},
        {"client_role": ["archivist"]},
        require_scopes("assets.read"),
        scopes=frozenset({"assets.read", "assets.write"}),
        roles=frozenset({"archivist"}),
        lacking={"scope": ["assets.write"]},
    ),
    Case(
        "duende",
        lambda i: {
            "issuer": i.issuer,
            "audience": i.audience,
            "introspection": {**_introspection(i), "endpoint": None},
        },
        {"opaque": True, "scope": "assets.read"},
        require_scopes("assets.read"),
        scopes=frozenset({"assets.read"}),
        lacking={"opaque": True, "scope": "assets.write"},
    ),
]
IDS = [
    "azure_v1",
    "azure_v2",
    "rkvst",
    "ibm_verify-opaque",
    "aidbox-opaque",
    "aidbox-jwt",
    "duende-jwt",
    "duende-reference",
]


@pytest.fixture(params=CASES, ids=IDS)
def case(request: pytest.FixtureRequest) -> Case:
    result: Case = request.param
    return result


@pytest.fixture
def issuer(case: Case) -> Iterator[Issuer]:
    with profile_issuer(case.profile) as started:
        yield started


def make_app(spec: dict[str, Any] | list[dict[str, Any]], decorator: Callable[..., Any] = require_token) -> Flask:
    app = Flask("assets")
    app.config["CCGUARD_ISSUER"] = spec if isinstance(spec, list) else [spec]
    CCGuard(app)

    @app.get("/assets")
    @decorator
    def assets() -> Any:
        return {
            "issuer": current_token.issuer,
            "client_id": current_token.client_id,
            "scopes": sorted(current_token.scopes),
            "roles": sorted(current_token.roles),
        }

    return app


def _get(app: Flask, token: str) -> Any:
    return app.test_client().get("/assets", headers={"Authorization": f"Bearer {token}"})


def tamper(token: str) -> str:
    """The token with elevated claims (a JWT keeps its old signature) or one character changed (opaque)."""
    if token.count(".") != 2:
        return token[:-1] + ("A" if token[-1] != "A" else "B")
    return with_claims(token, roles=["Assets.Write", "admin"], scope="assets.read assets.write admin")


# -- accepted ------------------------------------------------------------------------


def test_tokens_are_accepted_with_identity_and_permissions_read(case: Case, issuer: Issuer) -> None:
    resp = _get(make_app(case.spec(issuer), case.decorator), issuer.mint(**case.good))
    assert_challenge(resp, 200, realm="assets")
    assert resp.get_json() == {
        "issuer": issuer.issuer,
        "client_id": issuer.client_id,
        "scopes": sorted(case.scopes),
        "roles": sorted(case.roles),
    }


def test_token_endpoint_tokens_are_accepted(case: Case, issuer: Issuer) -> None:
    """What a real client gets from the provider's token endpoint passes too."""
    import requests

    body = {"grant_type": "client_credentials", "client_id": issuer.client_id, "client_secret": "test-secret"}
    if case.profile == "azure_v2":
        body["scope"] = "api://ccguard-demo/.default"
    if case.profile == "azure_v1":
        body["resource"] = "api://ccguard-demo"
    if "opaque" in case.good:
        issuer.opaque_tokens = case.good["opaque"]
    answer = requests.post(issuer.token_endpoint, data=body, timeout=5).json()
    resp = _get(make_app(case.spec(issuer)), answer["access_token"])
    assert_challenge(resp, 200, realm="assets")
    assert resp.get_json()["client_id"] == issuer.client_id


def test_token_lacking_the_permission_is_403(case: Case, issuer: Issuer) -> None:
    if case.lacking is None:
        pytest.skip("this issuer's tokens carry no scopes or roles")
    resp = _get(make_app(case.spec(issuer), case.decorator), issuer.mint(**case.lacking))
    assert resp.status_code == 403
    assert resp.get_json()["error"] == "insufficient_scope"


# -- refused -------------------------------------------------------------------------


def _wrong_tenant(case: Case, issuer: Issuer) -> str:
    if case.profile.startswith("azure"):
        return str(issuer.mint(tid=OTHER_TENANT, **case.good))
    with profile_issuer(case.profile) as other:  # the same product, another deployment
        token: str = other.mint(**case.good)
    return token


REFUSALS = [
    pytest.param("wrong-tenant", id="wrong-tenant"),
    pytest.param("wrong-audience", id="wrong-audience"),
    pytest.param("tampered", id="tampered"),
    pytest.param("expired", id="expired"),
]


@pytest.mark.parametrize("kind", REFUSALS)
def test_bad_tokens_are_401(case: Case, issuer: Issuer, kind: str) -> None:
    app = make_app(case.spec(issuer), case.decorator)
    if kind == "wrong-tenant":
        token = _wrong_tenant(case, issuer)
    elif kind == "wrong-audience":
        token = issuer.mint(**{**case.good, "aud": "https://other.example"})
    elif kind == "tampered":
        token = tamper(issuer.mint(**case.good))
    else:
        token = issuer.mint(**case.good, expires_in=-3600)
    resp = _get(app, token)
    # The description depends on the product and the kind of refusal; the header must carry the body's.
    assert_challenge(resp, 401, "invalid_token", resp.get_json()["error_description"], realm="assets")


# -- Entra ID across tenants and versions --------------------------------------------


@pytest.fixture
def entra() -> Iterator[Issuer]:
    with profile_issuer("azure_v2") as started:
        yield started


def test_one_api_takes_v1_v2_and_allowed_tenants(entra: Issuer) -> None:
    app = make_app(
        [
            {"issuer": entra.v1_issuer, "discovery_url": entra.v1_discovery_url, "audience": "api://ccguard-demo"},
            {
                "issuer": entra.v2_template,
                "discovery_url": entra.common_v2_discovery_url,
                "audience": entra.api_client_id,
                "tenants": [entra.tenant_id, OTHER_TENANT],
            },
        ],
        require_roles("Assets.Read"),
    )
    for token, iss in [
        (entra.mint(ver="1.0"), entra.v1_issuer),
        (entra.mint(), entra.v2_issuer),
        (entra.mint(tid=OTHER_TENANT), entra.issuer_for(OTHER_TENANT, "2.0")),
    ]:
        resp = _get(app, token)
        assert_challenge(resp, 200, realm="assets")
        assert resp.get_json()["issuer"] == iss
    third = entra.mint(tid="abcdefab-cdef-abcd-efab-cdefabcdefab")
    assert_challenge(
        _get(app, third), 401, "invalid_token", "The access token is from an unexpected issuer.", realm="assets"
    )
    v1_other = entra.mint(ver="1.0", tid=OTHER_TENANT)  # v1 is configured for the home tenant only
    assert _get(app, v1_other).status_code == 401


def test_graph_token_with_nonce_header_is_refused_with_the_reason(entra: Issuer) -> None:
    app = make_app({"issuer": entra.v2_issuer, "audience": entra.api_client_id})
    resp = _get(app, entra.mint(headers={"nonce": "AQABAAAAAAD"}))
    assert resp.status_code == 401
    assert "Microsoft first-party token" in resp.get_json()["error_description"]


# -- introspection through the Flask layer -------------------------------------------


@pytest.fixture
def verify() -> Iterator[Issuer]:
    with profile_issuer("ibm_verify") as started:
        yield started


def test_repeated_requests_introspect_once(verify: Issuer) -> None:
    app = make_app({"issuer": verify.issuer, "audience": verify.audience, "introspection": _introspection(verify)})
    token = verify.mint()
    for _ in range(3):
        assert_challenge(_get(app, token), 200, realm="assets")
    assert verify.hits["introspect"] == 1


INTROSPECTION_DOWN = "The token issuer cannot check the token now; try again later."


@pytest.mark.parametrize("status", [None, 500])
def test_introspection_down_is_503_with_retry_after(verify: Issuer, status: int | None) -> None:
    app = make_app({"issuer": verify.issuer, "audience": verify.audience, "introspection": _introspection(verify)})
    token = verify.mint()
    if status is None:
        verify.stop()
    else:
        verify.introspection_status = status
    resp = _get(app, token)
    assert_challenge(resp, 503, description=INTROSPECTION_DOWN, retry_after="30", realm="assets")
    assert token not in resp.get_data(as_text=True)
