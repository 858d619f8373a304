"""Tests of app.py against a real local issuer: the ``ccguard_issuer`` fixture of flask-ccguard."""

from __future__ import annotations

import pytest
from app import create_app
from flask.testing import FlaskClient

from flask_ccguard.client import ClientCredentials
from flask_ccguard.testing import TestIssuer


@pytest.fixture
def client(ccguard_issuer: TestIssuer) -> FlaskClient:
    app = create_app({"CCGUARD_ISSUER": ccguard_issuer.issuer, "CCGUARD_AUDIENCE": ccguard_issuer.audience})
    return app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_token_is_a_401(client: FlaskClient) -> None:
    response = client.get("/api/whoami")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_any_valid_token_may_ask_who_it_is(client: FlaskClient, ccguard_issuer: TestIssuer) -> None:
    response = client.get("/api/whoami", headers=bearer(ccguard_issuer.mint(client_id="reporting-job")))
    assert response.status_code == 200
    assert response.json == {"client_id": "reporting-job", "scopes": []}


def test_an_expired_token_is_a_401(client: FlaskClient, ccguard_issuer: TestIssuer) -> None:
    token = ccguard_issuer.mint(iat=1_600_000_000, nbf=1_600_000_000, exp=1_600_000_300)
    response = client.get("/api/whoami", headers=bearer(token))
    assert response.status_code == 401
    assert response.json is not None
    assert response.json["error"] == "invalid_token"


@pytest.mark.parametrize(("scope", "status"), [("reports.read", 200), ("reports.write", 403)])
def test_reports_need_the_scope(client: FlaskClient, ccguard_issuer: TestIssuer, scope: str, status: int) -> None:
    response = client.get("/api/reports", headers=bearer(ccguard_issuer.mint(scope=scope)))
    assert response.status_code == status


@pytest.mark.parametrize(("roles", "status"), [(["admin"], 200), (["reader"], 403)])
def test_deleting_needs_the_admin_role(
    client: FlaskClient, ccguard_issuer: TestIssuer, roles: list[str], status: int
) -> None:
    response = client.delete("/api/reports/1", headers=bearer(ccguard_issuer.mint(roles=roles)))
    assert response.status_code == status


def test_a_token_from_the_issuers_token_endpoint(client: FlaskClient, ccguard_issuer: TestIssuer) -> None:
    # The whole client-credentials flow over HTTP, as your callers will do it.
    credentials = ClientCredentials(ccguard_issuer.token_endpoint, "test-client", "test-secret", scope="reports.read")
    response = client.get("/api/reports", headers=bearer(credentials.token()))
    assert response.status_code == 200
    assert response.json is not None
    assert [report["title"] for report in response.json["reports"]] == ["Q1", "Q2"]
