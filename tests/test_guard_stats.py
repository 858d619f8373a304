"""guard.stats() and CCGUARD_CACHE through the Flask extension."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from flask_ccguard import CCGuard, ConfigurationError
from flask_ccguard.testing import TestIssuer
from tests.conftest import make_app as shared_make_app


def make_app(issuer: TestIssuer, **config) -> tuple[Flask, CCGuard]:
    app = shared_make_app(issuer, path="/assets", **config)
    return app, app.extensions["ccguard"].guard


def test_guard_stats_count_the_apps_validations(ccguard_issuer: TestIssuer):
    app, guard = make_app(ccguard_issuer)
    client = app.test_client()
    assert client.get("/assets", headers={"Authorization": f"Bearer {ccguard_issuer.mint()}"}).status_code == 200
    assert client.get("/assets", headers={"Authorization": "Bearer x.y.z"}).status_code == 401
    with app.app_context():
        assert guard.stats()["validations"] == {"accepted": 1, "rejected": 1, "unavailable": 0}
    assert guard.stats(app)["key_fetches"] == 1


def test_two_apps_share_keys_through_a_file_cache(ccguard_issuer: TestIssuer, tmp_path: Path):
    token = ccguard_issuer.mint()
    for _ in range(2):
        app, guard = make_app(ccguard_issuer, CCGUARD_CACHE=f"file://{tmp_path}/ccguard")
        assert app.test_client().get("/assets", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert ccguard_issuer.hits["jwks"] == 1
    assert guard.stats(app)["key_set_cache_hits"] == 1


def test_unknown_cache_scheme_fails_at_start_up(ccguard_issuer: TestIssuer):
    with pytest.raises(ConfigurationError, match=r"^CCGUARD_CACHE 'mongodb://db' is not supported"):
        make_app(ccguard_issuer, CCGUARD_CACHE="mongodb://db")
