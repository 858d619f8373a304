"""Review 4 (network surface): exemption vs. protection, RFC 9728 metadata, the token client, the CLI."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask

from flask_ccguard import CCGuard
from flask_ccguard.cli import flask_group
from flask_ccguard.core.errors import ConfigurationError
from flask_ccguard.testing import TestIssuer


def _guarded(issuer: TestIssuer, **config: Any) -> tuple[Flask, CCGuard]:
    app = Flask("r4")
    app.config.update(issuer.app_config(**config))
    app.testing = True
    return app, CCGuard(app)


def _exempt_and_protected(issuer: TestIssuer, *, nested: bool) -> Flask:
    app, guard = _guarded(issuer)
    outer = Blueprint("docs", __name__)
    admin = Blueprint("admin", __name__) if nested else outer
    guard.exempt(outer)
    guard.protect(admin, roles=["admin"])

    @admin.get("/admin/secret")
    def secret() -> str:
        return "SECRET"

    if nested:
        outer.register_blueprint(admin)
    app.register_blueprint(outer)
    return app


@pytest.mark.parametrize("nested", [False, True], ids=["same-blueprint", "protected-blueprint-inside"])
def test_review4_01_exempt_blueprint_that_is_also_protected_is_refused(
    ccguard_issuer: TestIssuer, nested: bool
) -> None:
    # guard.exempt(bp) opened every view under bp, so guard.protect(bp or a child)
    # silently did nothing: /admin/secret was served without a token and the
    # routes map called it "public". A contradiction, refused like @public + @require_token.
    app = _exempt_and_protected(ccguard_issuer, nested=nested)
    with pytest.raises(ConfigurationError, match="'docs' is declared public") as raised:
        app.test_client().get("/admin/secret")
    assert f"called on {'admin' if nested else 'docs'!r}" in str(raised.value)
    result = app.test_cli_runner().invoke(flask_group, ["routes"])
    assert result.exit_code == 2, result.output
    assert "cannot be both open and protected" in result.output
    assert "SECRET" not in result.output


def test_review4_01_exempt_blueprint_beside_a_protected_app_still_serves(ccguard_issuer: TestIssuer) -> None:
    # The intended use stays: an app-wide protect() and a public blueprint.
    app, guard = _guarded(ccguard_issuer)
    guard.protect(app)
    docs = guard.exempt(Blueprint("docs", __name__))

    @docs.get("/docs")
    def read() -> str:
        return "docs"

    app.register_blueprint(docs)
    assert app.test_client().get("/docs").status_code == 200


def test_review4_02_subdomain_blueprint_serves_its_metadata_on_its_host(ccguard_issuer: TestIssuer) -> None:
    # RFC 9728 §3.1: the document is at the resource's host. A blueprint routed
    # on the "api" subdomain named https://api.example.com/... in its challenges,
    # but the metadata rules matched only the default subdomain: a 404 there.
    app, guard = _guarded(ccguard_issuer, SERVER_NAME="example.com")
    app.subdomain_matching = True
    api = Blueprint("api", __name__, subdomain="api")
    guard.protect(api, resource="https://api.example.com/v1")

    @api.get("/v1/items")
    def items() -> str:
        return "items"

    app.register_blueprint(api)
    client = app.test_client()
    refused = client.get("/v1/items", base_url="https://api.example.com")
    assert refused.status_code == 401
    url = "https://api.example.com/.well-known/oauth-protected-resource/v1"
    assert f'resource_metadata="{url}"' in refused.headers["WWW-Authenticate"]
    served = client.get(url)
    assert served.status_code == 200
    assert served.get_json()["resource"] == "https://api.example.com/v1"
    rules = [r for r in app.url_map.iter_rules() if r.endpoint == "ccguard_resource_metadata"]
    assert [r.subdomain for r in rules] == ["api", "api"]
