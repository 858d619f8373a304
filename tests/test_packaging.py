"""What a user gets from the package as installed: the test fixture's configuration.

Issue 14 item 8: the ``ccguard_issuer`` fixture's recommended app
configuration (:meth:`TestIssuer.app_config`) lets a token minted after
``rotate_keys()`` through at once, where the production refetch cooldown
would refuse it for 30 seconds.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from flask import Flask

from flask_ccguard import CCGuard, current_token, require_token
from flask_ccguard.testing import TestIssuer


def _app(config: dict[str, Any]) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    CCGuard(app)

    @app.get("/whoami")
    @require_token
    def whoami() -> dict[str, Any]:
        return {"sub": current_token.subject, "alg": current_token.header["alg"]}

    return app


def _status(app: Flask, token: str) -> int:
    return app.test_client().get("/whoami", headers={"Authorization": f"Bearer {token}"}).status_code


def test_i14_08_token_minted_after_rotation_is_accepted_at_once(ccguard_issuer: TestIssuer) -> None:
    app = _app(ccguard_issuer.app_config())
    production = _app({"CCGUARD_ISSUER": ccguard_issuer.issuer, "CCGUARD_AUDIENCE": ccguard_issuer.audience})
    assert _status(app, ccguard_issuer.mint()) == 200
    assert _status(production, ccguard_issuer.mint()) == 200

    ccguard_issuer.rotate_keys()
    fresh = ccguard_issuer.mint()
    assert _status(app, fresh) == 200
    # What the recommended configuration avoids: the 30 s cooldown refuses it.
    assert _status(production, fresh) == 401


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "EdDSA"])
def test_i14_08_app_config_accepts_every_algorithm_of_the_fixture(ccguard_issuer: TestIssuer, alg: str) -> None:
    app = _app(ccguard_issuer.app_config())
    response = app.test_client().get("/whoami", headers={"Authorization": f"Bearer {ccguard_issuer.mint(alg=alg)}"})
    assert response.status_code == 200
    assert response.get_json()["alg"] == alg


def test_i14_08_app_config_overrides_and_fixture_client(ccguard_issuer: TestIssuer) -> None:
    config = ccguard_issuer.app_config(CCGUARD_LEEWAY=5, CCGUARD_AUDIENCE="api://other")
    assert config["CCGUARD_ISSUER"] == ccguard_issuer.issuer
    assert config["CCGUARD_AUDIENCE"] == "api://other"
    assert config["CCGUARD_LEEWAY"] == 5
    assert config["CCGUARD_JWKS_REFRESH_COOLDOWN"] == 0
    # The documented client id and secret get a token the app accepts.
    answer = requests.post(
        ccguard_issuer.token_endpoint,
        data={"grant_type": "client_credentials"},
        auth=("test-client", "test-secret"),
        timeout=10,
    )
    assert answer.status_code == 200
    app = _app(ccguard_issuer.app_config())
    response = app.test_client().get("/whoami", headers={"Authorization": f"Bearer {answer.json()['access_token']}"})
    assert response.get_json() == {"sub": "test-client", "alg": "RS256"}
