"""Review 5: class-based views in the routes map, and the token client's renewal cool-down."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests
from flask import Blueprint, Flask
from flask.views import MethodView, View

from flask_ccguard import CCGuard, public, require_token
from flask_ccguard.cli import flask_group
from flask_ccguard.client.credentials import ClientCredentials
from flask_ccguard.protection_map import open_rows, protection_map
from flask_ccguard.testing import TestIssuer
from tests.conftest import guarded_app, serving


class _PlainView(View):
    """A plain View: only dispatch_request serves requests; ``get`` is a helper it never calls."""

    methods = ["GET"]

    @require_token
    def get(self) -> str:
        return "helper"

    def dispatch_request(self) -> str:
        return "served without a token"


def test_review5_01_plain_view_method_named_get_does_not_make_the_map_say_protected(
    ccguard_issuer: TestIssuer,
) -> None:
    # flask.views.View dispatches every request to dispatch_request; only a
    # MethodView calls get/post/... by the request's method. A decorated helper
    # named get on a plain View made the map say "token" for a route served open.
    app, _ = guarded_app(ccguard_issuer, "r5")
    app.add_url_rule("/plain", view_func=_PlainView.as_view("plain"))
    assert app.test_client().get("/plain").status_code == 200
    [row] = [r for r in protection_map(app) if r["endpoint"] == "plain"]
    assert row["token"] is False
    assert row in open_rows(protection_map(app))


class _OwnHead(MethodView):
    @require_token
    def get(self) -> str:
        return "secret"

    def head(self) -> str:  # its own handler, undecorated: served without a token
        return ""


def test_review5_02_methodview_own_head_handler_open_is_in_the_map(ccguard_issuer: TestIssuer) -> None:
    # The map leaves HEAD and OPTIONS out (as flask routes does), assuming Flask
    # answers them (HEAD with get). A MethodView's own undecorated head() runs
    # without a token while the map listed only "GET: token": --fail-on-open passed.
    app, _ = guarded_app(ccguard_issuer, "r5")
    app.add_url_rule("/items", view_func=_OwnHead.as_view("items"))
    client = app.test_client()
    assert client.get("/items").status_code == 401
    assert client.head("/items").status_code == 200
    rows = [r for r in protection_map(app) if r["endpoint"] == "items"]
    assert {tuple(r["methods"]): r["token"] for r in rows} == {("GET",): True, ("HEAD",): False}
    result = app.test_cli_runner().invoke(flask_group, ["routes", "--fail-on-open"])
    assert result.exit_code != 0, result.output


class _RefusesRevoked(BaseHTTPRequestHandler):
    """A resource that refuses (401 invalid_token) the tokens in ``revoked`` and accepts others."""

    revoked: set[str] = set()

    def do_GET(self) -> None:
        token = self.headers.get("Authorization", "")[len("Bearer ") :]
        if token in self.revoked:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Bearer realm="r", error="invalid_token"')
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def revoking_resource() -> Iterator[tuple[str, set[str]]]:
    revoked: set[str] = set()
    with serving(type("Handler", (_RefusesRevoked,), {"revoked": revoked})) as base:
        yield f"{base}/api", revoked


def test_review5_03_refusal_of_an_already_replaced_token_does_not_start_the_cooldown(
    ccguard_issuer: TestIssuer, revoking_resource: tuple[str, set[str]]
) -> None:
    # A request still carrying a token the client has since replaced (renewed
    # near expiry by another thread) is refused: nothing is dropped and no token
    # requested, but the 10 s cool-down started, so the real revocation of the
    # new token moments later was answered 401 with no renewal.
    url, revoked = revoking_resource
    client = ClientCredentials(ccguard_issuer.token_endpoint, "test-client", "test-secret")
    first = client.token()
    with requests.Session() as session:
        stale = session.prepare_request(requests.Request("GET", url, auth=client))
        client.invalidate()  # renewed meanwhile (another thread, at expiry)
        second = client.token()
        revoked.add(first)
        assert session.send(stale, timeout=5).status_code == 200  # retried with the current token
        revoked.add(second)  # now the current token is revoked for real
        before = ccguard_issuer.hits["token"]
        answer = session.get(url, auth=client, timeout=5)
    assert answer.status_code == 200
    assert ccguard_issuer.hits["token"] - before == 1


def test_review5_04_blueprint_on_a_variable_subdomain_serves_its_metadata(ccguard_issuer: TestIssuer) -> None:
    # A blueprint routed on subdomain="<tenant>" (Flask's multi-tenant idiom)
    # got its metadata rules on that subdomain, whose variable Flask passes to
    # the view: every GET of the URL its 401 challenge names raised TypeError (a 500).
    app = Flask("r5sub")
    app.config.update(ccguard_issuer.app_config(SERVER_NAME="example.com"))
    app.testing = True
    app.subdomain_matching = True
    guard = CCGuard(app)
    tenants = Blueprint("tenants", __name__, subdomain="<tenant>")
    guard.protect(tenants, resource="https://acme.example.com/v1")

    @tenants.get("/v1/items")
    def items(tenant: str) -> str:
        return tenant

    app.register_blueprint(tenants)
    client = app.test_client()
    url = "https://acme.example.com/.well-known/oauth-protected-resource/v1"
    refused = client.get("/v1/items", base_url="https://acme.example.com")
    assert f'resource_metadata="{url}"' in refused.headers["WWW-Authenticate"]
    served = client.get(url)
    assert served.status_code == 200
    assert served.get_json()["resource"] == "https://acme.example.com/v1"
    assert client.options(url).status_code == 204


def test_review5_05_a_raising_exemplar_filter_does_not_leave_the_validation_span_unended(
    ccguard_issuer: TestIssuer,
) -> None:
    # The duration point (and refusal count) were recorded before the span was
    # ended, in one guarded block: an application's exemplar filter raising on
    # our measurement left every ccguard.validate span started and never ended
    # (never exported; its fetch spans' parent missing from the trace).
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.metrics._internal.exemplar import ExemplarFilter

    from flask_ccguard import InvalidToken, TokenValidator
    from tests.otel_support import installed_sdk, request_span

    class Raising(ExemplarFilter):
        def should_sample(self, value: float, time_unix_nano: int, attributes: Any, context: Any) -> bool:
            raise RuntimeError("filter bug")

    with installed_sdk(exemplar_filter=Raising()) as recorded:
        validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, jwks_uri=ccguard_issuer.jwks_uri)
        with request_span():
            validator.validate(ccguard_issuer.mint())
        with pytest.raises(InvalidToken), request_span():
            validator.validate(ccguard_issuer.mint(expires_in=-600))
        spans = recorded.spans("ccguard.validate")
        assert [dict(s.attributes or {}).get("ccguard.outcome") for s in spans] == ["accepted", "rejected"]


def test_review5_06_public_on_a_class_after_the_first_request_opens_it_as_the_map_says(
    ccguard_issuer: TestIssuer,
) -> None:
    # @public / public(ViewClass) opens views already routed; guard.exempt()
    # forgot the app's computed open set, public() did not: after the first
    # request the map said "public" while the route still answered 401.
    app, _ = guarded_app(ccguard_issuer, "r5")
    app.extensions["ccguard"].guard.protect(app)

    class Late(MethodView):
        def get(self) -> str:
            return "late"

    app.add_url_rule("/late", view_func=Late.as_view("late"))
    client = app.test_client()
    assert client.get("/late").status_code == 401
    public(Late)
    [row] = [r for r in protection_map(app) if r["endpoint"] == "late"]
    assert row["public"] is True
    assert client.get("/late").status_code == 200


def test_review5_07_a_dropped_validators_counter_is_released_without_a_metric_collection(
    ccguard_issuer: TestIssuer,
) -> None:
    # The cache-hit counts of collected validators were retired only when metrics
    # were collected: with a reader that never collects (or rarely), every
    # validator made and dropped (an app factory's) kept its counter forever.
    pytest.importorskip("opentelemetry.sdk")
    import gc

    from flask_ccguard import TokenValidator
    from flask_ccguard.core.stats import ValidationCounter
    from tests.otel_support import installed_sdk

    def counters() -> int:
        gc.collect()
        return sum(isinstance(o, ValidationCounter) for o in gc.get_objects())

    with installed_sdk() as recorded:
        token = ccguard_issuer.mint()
        before = counters()
        for _ in range(5):
            dropped = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, jwks_uri=ccguard_issuer.jwks_uri)
            for _ in range(3):  # verified twice, then a token-cache hit
                dropped.validate(token)
            del dropped
            gc.collect()  # freed (it sits in a reference cycle): its finalizer runs
        kept = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, jwks_uri=ccguard_issuer.jwks_uri)
        assert counters() - before <= 1  # kept's only
        assert recorded.points("ccguard.validation.cache_hits") == [({}, 5)]  # their counts stay in the sum
        del kept
