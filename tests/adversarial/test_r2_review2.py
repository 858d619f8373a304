"""Second outside review of round 2: F1 (route order), F2 (token lockout), F4 (redaction), discovery.

Issuers here are real HTTP servers on loopback (TestIssuer); nothing patches ``requests``.
"""

from __future__ import annotations

import base64
import functools
import http.client
import json
import os
import socket
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest
from flask import Blueprint, Flask

from flask_ccguard import CCGuard, ConfigurationError, require_token
from flask_ccguard.client import ClientCredentials, TokenRequestError
from flask_ccguard.core.fetch import discovery
from flask_ccguard.core.fetch.http import HTTPClient
from flask_ccguard.testing import TestIssuer
from tests.challenges import assert_challenge
from tests.conftest import send_body, serving, start_server, stop_server

from ..example_server import LiveExample, live_example

# -- F1: misorderings the route-order check missed -------------------------------------------


def passthrough(view: Callable[..., Any]) -> Callable[..., Any]:
    """Any third-party decorator written with functools.wraps."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return view(*args, **kwargs)

    return wrapper


def new_app(issuer: TestIssuer) -> Flask:
    app = Flask("assets")
    app.config.update(CCGUARD_ISSUER=issuer.issuer, CCGUARD_AUDIENCE=issuer.audience)
    return app


#: Misordered, then the module name reused for a public view: the name no longer holds the wrapper.
reused_bp = Blueprint("reused_bp", __name__)


@require_token
@reused_bp.get("/a", endpoint="a")
def view() -> Any:
    return "OPEN a"


@reused_bp.get("/b", endpoint="b")  # type: ignore[no-redef]
def view() -> Any:  # noqa: F811
    return "public b"


#: Misordered with another decorator between ccguard's and the route's, at module level.
between_bp = Blueprint("between_bp", __name__)


@require_token
@passthrough
@between_bp.get("/between")
def between() -> Any:
    return "OPEN between"


#: Right order with a decorator in between; ``twin`` is served bare on purpose by another app.
right_bp = Blueprint("right_bp", __name__)


@right_bp.get("/right")
@require_token
@passthrough
def right() -> Any:
    return "right"


def twin() -> Any:
    return "twin"


def test_review2_f1_a_decorator_between_ccguard_and_the_route_is_refused(ccguard_issuer: TestIssuer) -> None:
    app = new_app(ccguard_issuer)

    @require_token
    @passthrough
    @app.get("/open")
    def opened() -> Any:
        return "OPEN"

    with pytest.raises(ConfigurationError, match=r"The view 'opened' \(endpoint 'opened'\) is served without"):
        CCGuard(app)


def test_review2_f1_a_decorator_between_at_module_level_fails_the_first_request(ccguard_issuer: TestIssuer) -> None:
    app = new_app(ccguard_issuer)
    CCGuard(app)
    app.register_blueprint(between_bp)
    app.testing = True
    with pytest.raises(ConfigurationError, match=r"'between' \(endpoint 'between_bp.between'\)"):
        app.test_client().get("/between")


def test_review2_f1_a_reused_module_name_does_not_hide_a_misordered_view(ccguard_issuer: TestIssuer) -> None:
    app = new_app(ccguard_issuer)
    app.register_blueprint(reused_bp)
    with pytest.raises(ConfigurationError, match=r"'view' \(endpoint 'reused_bp.a'\) is served without"):
        CCGuard(app)


def test_review2_f1_right_order_and_open_twins_still_serve(ccguard_issuer: TestIssuer) -> None:
    first = new_app(ccguard_issuer)
    first.register_blueprint(right_bp)
    first.add_url_rule("/twin", "twin", require_token(passthrough(twin)))
    CCGuard(first)
    second = new_app(ccguard_issuer)
    second.add_url_rule("/twin", "twin", twin)  # bare on purpose; wrapped only for the first app

    def nested() -> Any:
        return "nested"

    second.add_url_rule("/nested", "nested", nested)
    second.add_url_rule("/nested-protected", "nested_protected", require_token(passthrough(nested)))
    CCGuard(second)
    token = {"Authorization": f"Bearer {ccguard_issuer.mint()}"}
    assert_challenge(first.test_client().get("/right"), 401, realm="assets")
    assert first.test_client().get("/right", headers=token).text == "right"
    assert_challenge(first.test_client().get("/twin"), 401, realm="assets")
    assert second.test_client().get("/twin").text == "twin"
    assert second.test_client().get("/nested").text == "nested"
    assert_challenge(second.test_client().get("/nested-protected"), 401, realm="assets")


# -- F2: the example's token endpoint cannot be used to lock a client out -------------------


def _post_from(live: LiveExample, source: str, client_id: str, secret: str) -> int:
    """POST to the token endpoint from the loopback address ``source``; the status."""
    url = urllib.parse.urlsplit(live.token_url)
    body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret})
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10, source_address=(source, 0))
    try:
        connection.request("POST", url.path, body, {"Content-Type": "application/x-www-form-urlencoded"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_review2_f2_failures_from_one_address_do_not_lock_the_client_out_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith(("EXAMPLE_", "CCGUARD_")):
            monkeypatch.delenv(name)
    with live_example(tmp_path, EXAMPLE_AUTH_FAILURES_PER_CLIENT=3, EXAMPLE_AUTH_FAILURES_PER_ADDRESS=8) as live:
        victim = live.register("victim")
        client_id, secret = victim["client_id"], victim["credentials"][0]["secret"]
        # The attacker knows the client id (it is "sub" in every token) and keeps failing.
        attacker = [_post_from(live, "127.0.0.2", client_id, "0" * 64) for _ in range(5)]
        assert attacker == [401] * 3 + [429] * 2
        # The client, from its own address, still gets its token.
        assert _post_from(live, "127.0.0.1", client_id, secret) == 200
        assert _post_from(live, "127.0.0.1", client_id, secret) == 200
        # The attacker's address stays blocked, even with the right secret.
        assert _post_from(live, "127.0.0.2", client_id, secret) == 429


# -- F4: the token client redacts the secret in every form it sends -------------------------

SECRET = 's3cr+t/with:chars~ é"\\*%'


def _rfc6749_form(value: str) -> str:
    return urllib.parse.quote_plus(value, safe="*").replace("~", "%7E")


ENCODED_SECRETS = {
    "raw": SECRET,
    "form_encoded": urllib.parse.quote_plus(SECRET),
    "rfc6749_form": _rfc6749_form(SECRET),
    "percent_encoded": urllib.parse.quote(SECRET, safe=""),
    "basic_rfc6749": base64.b64encode(f"client:{_rfc6749_form(SECRET)}".encode()).decode(),
    "basic_raw": base64.b64encode(f"client:{SECRET}".encode()).decode(),
    "basic_rfc6749_pair": f"client:{_rfc6749_form(SECRET)}",
    "json_escaped": json.dumps(SECRET)[1:-1],
    "json_escaped_unicode": json.dumps(SECRET, ensure_ascii=False)[1:-1],
    "json_escaped_slash": json.dumps(SECRET)[1:-1].replace("/", "\\/"),
}


class _Echo(BaseHTTPRequestHandler):
    """A token endpoint whose error description echoes ``echo`` (set per test)."""

    echo = ""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps({"error": "invalid_client", "error_description": f"bad [{self.echo}]"}).encode()
        send_body(self, body, 401)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def echo_server() -> Iterator[ThreadingHTTPServer]:
    server = start_server(_Echo)
    yield server
    stop_server(server)


@pytest.mark.parametrize("auth_method", ["client_secret_post", "client_secret_basic", "json"])
@pytest.mark.parametrize(
    "form", sorted(ENCODED_SECRETS), ids=[f"review2_f4_{name}" for name in sorted(ENCODED_SECRETS)]
)
def test_review2_f4_an_echoed_secret_is_redacted_in_every_encoding(
    echo_server: ThreadingHTTPServer, form: str, auth_method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Echo, "echo", ENCODED_SECRETS[form])
    client = ClientCredentials(
        f"http://127.0.0.1:{echo_server.server_port}/token", "client", SECRET, auth_method=auth_method
    )
    with pytest.raises(TokenRequestError) as info:
        client.token()
    assert ("bad [client:***]" if form == "basic_rfc6749_pair" else "bad [***]") in str(info.value)
    for leaked in ENCODED_SECRETS.values():
        assert leaked not in str(info.value)
        assert leaked not in repr(info.value)


# -- observation: refusing a discovered endpoint resolves no host name -------------------------

NAME = "ccguard-review2-observation.invalid"


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The host names socket.getaddrinfo is asked for (it still answers, as the real one)."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def counting(host: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(str(host))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    return asked


class _Metadata(BaseHTTPRequestHandler):
    """Serves one metadata document naming a plain-http jwks_uri on a host name."""

    def do_GET(self) -> None:
        issuer = f"http://127.0.0.1:{self.server.server_address[1]!s}"  # type: ignore[index]
        body = json.dumps({"issuer": issuer, "jwks_uri": f"http://{NAME}/jwks"}).encode()
        send_body(self, body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_review2_observation_an_https_document_naming_http_is_refused_without_a_lookup(lookups: list[str]) -> None:
    refusal = discovery._refusal(
        "https://idp.example/.well-known/openid-configuration",
        f"http://{NAME}/jwks",
        "jwks_uri",
        "https://idp.example",
        None,
        True,
    )
    assert refusal is not None and "metadata read over https must name https" in refusal
    assert lookups == []


def test_review2_observation_a_plain_http_document_naming_a_host_name_is_refused_without_a_lookup(
    lookups: list[str],
) -> None:
    with serving(_Metadata) as issuer, pytest.raises(discovery.DiscoveryError, match="has no usable https jwks_uri"):
        discovery.discover(HTTPClient(timeout=2), issuer, cross_origin=True)
    assert NAME not in lookups
