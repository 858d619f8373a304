"""Review 4 (network surface): exemption vs. protection, RFC 9728 metadata, the token client, the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests
from flask import Blueprint, Flask

from flask_ccguard import CCGuard, require_token
from flask_ccguard.cli import flask_group
from flask_ccguard.client import auth as client_auth
from flask_ccguard.client.credentials import ClientCredentials
from flask_ccguard.core.errors import ConfigurationError
from flask_ccguard.protection_map import protection_map
from flask_ccguard.testing import TestIssuer
from tests.conftest import guarded_app, send_body, serving


def _exempt_and_protected(issuer: TestIssuer, *, nested: bool) -> Flask:
    app, guard = guarded_app(issuer, "r4")
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
    app, guard = guarded_app(ccguard_issuer, "r4")
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
    app, guard = guarded_app(ccguard_issuer, "r4", SERVER_NAME="example.com")
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


class _RefusesEveryToken(BaseHTTPRequestHandler):
    """A resource that answers every request 401 invalid_token (RFC 6750 §3.1)."""

    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Bearer realm="r", error="invalid_token"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_resource() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (_RefusesEveryToken,), {"seen": seen})
    with serving(handler) as base:
        yield f"{base}/api", seen


def test_review4_03_a_resource_refusing_every_token_cannot_flood_the_token_endpoint(
    ccguard_issuer: TestIssuer, refusing_resource: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # RFC 6750 §3.1: invalid_token may mean an expired or revoked token, so the
    # client renews and retries once. A resource that refuses every token made
    # that one token request per call (20 calls: 21 requests to the issuer).
    url, seen = refusing_resource
    client = ClientCredentials(ccguard_issuer.token_endpoint, "test-client", "test-secret")
    before = ccguard_issuer.hits["token"]
    with requests.Session() as session:
        answers = [session.get(url, auth=client, timeout=5) for _ in range(20)]
        assert {a.status_code for a in answers} == {401}
        # The first refusal renews (and retries) at once, as before; later ones
        # within the cool-down are answered as they are, without a token request.
        assert ccguard_issuer.hits["token"] - before == 2
        assert len(seen) == 21
        # After the cool-down, a refusal renews again.
        monkeypatch.setattr(client_auth, "RENEW_COOLDOWN", 0.0)
        session.get(url, auth=client, timeout=5)
        assert ccguard_issuer.hits["token"] - before == 3


def test_review4_03_a_burst_of_refusals_of_one_token_still_retries_with_the_new_one(
    ccguard_issuer: TestIssuer, refusing_resource: tuple[str, list[str]]
) -> None:
    # The bound does not cost a revoked token's concurrent callers their retry:
    # a request that carried the token the renewal dropped is retried with the
    # new one, and no further token is requested.
    url, seen = refusing_resource
    client = ClientCredentials(ccguard_issuer.token_endpoint, "test-client", "test-secret")
    first = client.token()
    with requests.Session() as session:
        # Both authorized with the first token, as by two threads at once.
        early = session.prepare_request(requests.Request("GET", url, auth=client))
        late = session.prepare_request(requests.Request("GET", url, auth=client))
        before = ccguard_issuer.hits["token"]
        answers = [session.send(early, timeout=5), session.send(late, timeout=5)]
    assert [a.status_code for a in answers] == [401, 401]
    assert [len(a.history) for a in answers] == [1, 1]  # each retried once
    assert ccguard_issuer.hits["token"] - before == 1
    renewed = client.token()
    assert seen == [f"Bearer {first}", f"Bearer {renewed}", f"Bearer {first}", f"Bearer {renewed}"]


class _SameToken(BaseHTTPRequestHandler):
    """A token endpoint that answers every request with the same token (as issuers
    that cache a client's token server-side do)."""

    count: list[int] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.count.append(1)
        send_body(self, b'{"access_token": "same-token", "token_type": "Bearer", "expires_in": 3600}')

    def log_message(self, *args: Any) -> None:
        pass


def test_review4_03_an_issuer_answering_the_same_token_is_not_asked_on_every_call(
    refusing_resource: tuple[str, list[str]],
) -> None:
    url, seen = refusing_resource
    count: list[int] = []
    with serving(type("Handler", (_SameToken,), {"count": count})) as base:
        client = ClientCredentials(f"{base}/token", "c", "s")
        with requests.Session() as session:
            for _ in range(10):
                assert session.get(url, auth=client, timeout=5).status_code == 401
    # The first token, and one renewal for the first refusal (which gave the same
    # token: nothing new to send, so no retry); then no token request per call.
    assert len(count) == 2
    assert len(seen) == 10


@pytest.mark.parametrize(
    ("app_mode", "issuer_mode", "accepted", "required"),
    [
        ("allowed", "required", True, True),
        ("disabled", "allowed", True, False),
        ("required", "allowed", True, False),
    ],
    ids=["issuer-requires", "issuer-allows-app-disables", "issuer-allows-app-requires"],
)
def test_review4_04_metadata_and_routes_state_the_dpop_modes_in_force(
    ccguard_issuer: TestIssuer, app_mode: str, issuer_mode: str, accepted: bool, required: bool
) -> None:
    # RFC 9728 §2 (dpop_bound_access_tokens_required, dpop_signing_alg_values_supported)
    # and the routes map were read off CCGUARD_DPOP alone, while an issuer's own
    # 'dpop' decides (as the challenges said): the map claimed "DPoP-bound token"
    # for a route a Bearer token opens, and the document "not required" for one it cannot.
    resource = "https://api.example.com"
    app = Flask("r4dpop")
    app.config.update(
        CCGUARD_ISSUER=[{"issuer": ccguard_issuer.issuer, "audience": resource, "dpop": issuer_mode}],
        CCGUARD_RESOURCE=resource,
        CCGUARD_DPOP=app_mode,
    )
    CCGuard(app)

    @app.get("/x")
    @require_token
    def x() -> str:
        return "x"

    client = app.test_client()
    schemes = [c.split(" ", 1)[0] for c in client.get("/x").headers.getlist("WWW-Authenticate")]
    bearer_passes = (
        client.get("/x", headers={"Authorization": "Bearer " + ccguard_issuer.mint(aud=resource)}).status_code == 200
    )
    doc = client.get("/.well-known/oauth-protected-resource").get_json()
    assert ("dpop_signing_alg_values_supported" in doc) is accepted
    assert doc.get("dpop_bound_access_tokens_required") is required
    assert required is (schemes == ["DPoP"]) is (not bearer_passes)
    (row,) = (r for r in protection_map(app) if r["endpoint"] == "x")
    assert row["binding"] == ("dpop" if required else None)
