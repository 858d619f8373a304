"""CCGUARD_TOKEN_CACHE_SIZE, and the extension's shortcut for "Bearer <token>" headers (same answers, same stats)."""

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


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("Bearer {token}", 200),
        ("bearer  {token}", 200),
        ("BEARER {token}  ", 200),
        ("Bearer\t{token}", 400),
        ("Bearer {token}!", 400),
        ("Bearer {token}, Bearer {token}", 400),
        ("Basic {token}", 401),
    ],
)
@pytest.mark.parametrize("cached", [False, True])
def test_a_cached_token_does_not_change_how_the_header_is_judged(
    ccguard_issuer: TestIssuer, header: str, status: int, cached: bool
) -> None:
    app = guarded_app(ccguard_issuer)
    token = ccguard_issuer.mint()
    client = app.test_client()
    if cached:
        for _ in range(2):
            assert client.get("/assets", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert token in (get_state(app).validator.token_cache or ())

    response = client.get("/assets", headers={"Authorization": header.format(token=token)})

    assert response.status_code == status


@pytest.mark.parametrize(("header", "status"), [("Bearer a.b.c!", 400), ("Bearer a.b.c", 401)])
def test_only_a_well_formed_bearer_header_reaches_the_validator(
    ccguard_issuer: TestIssuer, header: str, status: int
) -> None:
    app = guarded_app(ccguard_issuer)

    response = app.test_client().get("/assets", headers={"Authorization": header})

    validations = get_state(app).validator.stats()["validations"]
    assert response.status_code == status
    assert validations["rejected"] == (1 if status == 401 else 0)
