"""CCGUARD_TOKEN_CACHE_SIZE: the Flask setting of the validator's verified-token cache."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_ccguard import CCGuard, ConfigurationError, require_token
from flask_ccguard.state import get_state
from flask_ccguard.testing import TestIssuer


def guarded_app(issuer: TestIssuer, **config: Any) -> Flask:
    app = Flask("assets")
    app.config.update(CCGUARD_ISSUER=issuer.issuer, CCGUARD_AUDIENCE=issuer.audience, **config)
    CCGuard(app)

    @app.get("/assets")
    @require_token
    def assets() -> dict[str, Any]:
        return {"assets": []}

    return app


@pytest.mark.parametrize(("config", "size"), [({}, 1024), ({"CCGUARD_TOKEN_CACHE_SIZE": 16}, 16)])
def test_repeated_requests_are_served_from_the_token_cache(
    ccguard_issuer: TestIssuer, config: dict[str, Any], size: int
) -> None:
    app = guarded_app(ccguard_issuer, **config)
    token = ccguard_issuer.mint()
    client = app.test_client()

    statuses = [client.get("/assets", headers={"Authorization": f"Bearer {token}"}).status_code for _ in range(3)]

    cache = get_state(app).validator.token_cache
    assert statuses == [200, 200, 200]
    assert cache is not None
    assert cache.maxsize == size
    assert token in cache


def test_a_size_of_zero_turns_the_token_cache_off(ccguard_issuer: TestIssuer) -> None:
    app = guarded_app(ccguard_issuer, CCGUARD_TOKEN_CACHE_SIZE=0)

    assert get_state(app).validator.token_cache is None


def test_a_wrong_size_names_the_setting(ccguard_issuer: TestIssuer) -> None:
    with pytest.raises(ConfigurationError, match=r"^CCGUARD_TOKEN_CACHE_SIZE must be a whole number of tokens"):
        guarded_app(ccguard_issuer, CCGUARD_TOKEN_CACHE_SIZE=-5)
