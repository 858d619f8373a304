"""Hardening round 2 (issue 13), the token client and check-token: regression tests.

Every server here is real and listens on 127.0.0.1; nothing patches ``requests``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from flask import Flask

from flask_ccguard import CCGuardError, TokenValidator
from flask_ccguard.cli import flask_group, main
from flask_ccguard.client import ClientCredentials
from flask_ccguard.core.report import run_checks
from flask_ccguard.testing import TestIssuer
from tests.conftest import flip_signature, introspection_spec, send_body, start_server, stop_server
from tests.conftest import report_lines as _report

#: (status, headers, body) answered to a request's (method, path, headers).
Answer = tuple[int, dict[str, str], bytes]


class Server:
    """A loopback HTTP server that records each request's headers and answers via ``reply``."""

    def __init__(self, reply: Callable[[str, dict[str, str]], Answer]) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                headers = dict(self.headers.items())
                server.seen.append((self.path, headers))
                status, extra, body = reply(self.path, headers)
                send_body(self, body, status, extra)

            do_GET = do_POST = _handle

        self.httpd = start_server(Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def stop(self) -> None:
        stop_server(self.httpd)


@pytest.fixture
def servers() -> Iterator[Callable[[Callable[[str, dict[str, str]], Answer]], Server]]:
    started: list[Server] = []

    def start(reply: Callable[[str, dict[str, str]], Answer]) -> Server:
        started.append(Server(reply))
        return started[-1]

    yield start
    for server in started:
        server.stop()


INVALID_TOKEN: Answer = (401, {"WWW-Authenticate": 'Bearer realm="b", error="invalid_token"'}, b"{}")


# -- r2-02: a fresh token never goes to another origin --------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_r2_02_no_token_to_a_redirect_target_on_another_origin(servers, ccguard_issuer: TestIssuer, status):
    other = servers(lambda path, headers: INVALID_TOKEN)  # B: another port, so another origin
    api = servers(lambda path, headers: (status, {"Location": other.url + "/steal"}, b""))  # A
    cc = ClientCredentials(ccguard_issuer.token_endpoint, "test-client", "test-secret")
    resp = requests.get(api.url + "/assets", auth=cc, timeout=5)
    assert resp.status_code == 401  # B's refusal reaches the caller as it is
    assert [h.get("Authorization") for _, h in other.seen] == [None]  # B saw no token, and no retry
    assert api.seen[0][1]["Authorization"] == "Bearer " + cc.token()  # A, the origin asked for, did
    assert ccguard_issuer.hits["token"] == 1  # B's 401 did not cost a token request either


def test_r2_02_retry_still_renews_at_the_origin_asked_for(servers, ccguard_issuer: TestIssuer):
    answers = iter([INVALID_TOKEN])
    api = servers(lambda path, headers: next(answers, (200, {}, b"{}")))
    cc = ClientCredentials(ccguard_issuer.token_endpoint, "test-client", "test-secret")
    assert requests.get(api.url + "/assets", auth=cc, timeout=5).status_code == 200
    first, second = (h["Authorization"] for _, h in api.seen)
    assert first != second == "Bearer " + cc.token()


def test_r2_02_a_same_origin_redirect_that_kept_the_token_may_renew_it(servers, ccguard_issuer: TestIssuer):
    answers = iter([INVALID_TOKEN])

    def reply(path: str, headers: dict[str, str]) -> Answer:
        if path == "/old":
            return 302, {"Location": "/new"}, b""
        return next(answers, (200, {}, json.dumps({"path": path}).encode()))

    api = servers(reply)
    cc = ClientCredentials(ccguard_issuer.token_endpoint, "test-client", "test-secret")
    assert requests.get(api.url + "/old", auth=cc, timeout=5).json() == {"path": "/new"}
    assert [p for p, _ in api.seen] == ["/old", "/new", "/new"]
    assert api.seen[-1][1]["Authorization"] == "Bearer " + cc.token()


# -- r2-15: check-token runs the validator's rules for every issuer form, never crashing --

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"
API = "https://api.example.com"


def _template(issuer: TestIssuer) -> str:
    return issuer.base_url + "/{tenantid}/v2.0"


#: form -> (the validator's issuer setting, the iss/tid claims of this form's good tokens)
FORMS: dict[str, Callable[[TestIssuer], tuple[Any, dict[str, Any]]]] = {
    "fixed": lambda i: (i.issuer, {}),
    "list": lambda i: (
        [{"issuer": "https://other.example", "jwks_uri": "https://other.example/jwks"}, i.issuer],
        {},
    ),
    "template": lambda i: (
        [{"issuer": _template(i), "jwks_uri": i.jwks_uri}],
        {"iss": f"{i.base_url}/{TENANT}/v2.0", "tid": TENANT},
    ),
    "template-allowlist": lambda i: (
        [{"issuer": _template(i), "jwks_uri": i.jwks_uri, "tenants": [TENANT]}, i.issuer],
        {"iss": f"{i.base_url}/{TENANT}/v2.0", "tid": TENANT},
    ),
}


def _other_tenant(i: TestIssuer, good: dict[str, Any]) -> str:
    return i.mint(iss=f"{i.base_url}/{OTHER_TENANT}/v2.0", tid=OTHER_TENANT)


#: token -> (make(issuer, good claims), the line that must FAIL, or None for a valid token)
TOKENS: dict[str, tuple[Callable[[TestIssuer, dict[str, Any]], str], str | None]] = {
    "good": (lambda i, good: i.mint(**good), None),
    "tampered": (lambda i, good: flip_signature(i.mint(**good)), "signature"),
    "expired": (lambda i, good: i.mint(**good, iat=int(time.time()) - 900, expires_in=-600), "exp"),
    "wrong-aud": (lambda i, good: i.mint(**good, aud="https://other.example.com"), "aud"),
    "foreign-iss": (lambda i, good: i.mint(**{**good, "iss": "https://evil.example"}), "iss"),
    "iss-number": (lambda i, good: i.mint(**{**good, "iss": 123}), "iss"),
    "iss-list": (lambda i, good: i.mint(**{**good, "iss": [i.issuer]}), "iss"),
    "iss-template-literal": (lambda i, good: i.mint(**{**good, "iss": _template(i)}), "iss"),
    "tid-not-guid": (lambda i, good: i.mint(**{**good, "tid": "common"} if good else {"tid": "common"}), None),
    "other-tenant": (_other_tenant, "iss"),
    "kid-number": (lambda i, good: i.mint(**good, headers={"kid": 5}), "key"),
    "alg-not-allowed": (lambda i, good: i.mint(**good, alg="ES256"), "algorithm"),
    "not-a-jwt": (lambda i, good: "not-a-token", "format"),
    "bad-json": (lambda i, good: "e30.bm90IGpzb24.c2ln", "format"),
}


@pytest.fixture(scope="module")
def table_issuer() -> Iterator[TestIssuer]:
    with TestIssuer(algorithms=("RS256", "ES256")) as issuer:
        yield issuer


@pytest.mark.parametrize("token_kind", list(TOKENS))
@pytest.mark.parametrize("form", list(FORMS))
def test_r2_15_check_token_table_of_issuer_forms_and_tokens(table_issuer: TestIssuer, form: str, token_kind: str):
    setting, good = FORMS[form](table_issuer)
    make, failing = TOKENS[token_kind]
    if token_kind == "tid-not-guid":
        failing = "iss" if good else None  # a fixed issuer ignores tid
    if token_kind == "other-tenant":
        # Outside an allowlist, or any tenant for a fixed issuer: not its issuer.
        failing = None if form == "template" else "iss"
    validator = TokenValidator(issuer=setting, audience=API)
    token = make(table_issuer, good)
    app = Flask(__name__)
    app.extensions["ccguard"] = SimpleNamespace(validator=validator)
    result = app.test_cli_runner().invoke(flask_group, ["check-token", token])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    report = _report(result)
    assert "internal" not in report, result.output
    try:
        validator.validate(token)
        accepted = True
    except CCGuardError:
        accepted = False
    # The report agrees with the validator, line by line and in its verdict.
    assert accepted is (failing is None), result.output
    assert result.exit_code == (0 if failing is None else 1), result.output
    assert report["validate"][0] == ("PASS" if accepted else "FAIL")
    if failing is None:
        assert {status for status, _ in report.values()} <= {"PASS", "SKIP"}, result.output
    else:
        assert report[failing][0] == "FAIL", result.output


def test_r2_15_ccguard_check_token_with_a_template_issuer(table_issuer: TestIssuer):
    args = ["check-token", "--issuer", _template(table_issuer), "--audience", API]
    keys = ["--jwks-uri", table_issuer.jwks_uri]
    good = table_issuer.mint(iss=f"{table_issuer.base_url}/{TENANT}/v2.0", tid=TENANT)
    ok = CliRunner().invoke(main, [*args, *keys, "-T", good])
    assert ok.exit_code == 0, ok.output
    assert "template" in _report(ok)["iss"][1]
    bad = CliRunner().invoke(main, [*args, *keys, "-T", table_issuer.mint(iss=table_issuer.issuer)])
    assert bad.exit_code == 1, bad.output
    status, detail = _report(bad)["iss"]
    assert status == "FAIL" and "{tenantid} replaced by the token's 'tid'" in detail
    # A template needs its key source; the message says which option to use.
    missing = CliRunner().invoke(main, [*args, "-T", good])
    assert missing.exit_code == 2
    assert "--discovery-url" in missing.output or "discovery_url" in missing.output
    table_issuer.discovery_overrides["issuer"] = _template(table_issuer)
    try:
        disco = CliRunner().invoke(main, [*args, "--discovery-url", table_issuer.discovery_url, "-T", good])
    finally:
        del table_issuer.discovery_overrides["issuer"]
    assert disco.exit_code == 0, disco.output


def test_r2_15_check_token_reports_introspected_tokens_as_the_validator_judges_them(ibm: Any, table_issuer: TestIssuer):
    validator = TokenValidator([introspection_spec(ibm), {"issuer": table_issuer.issuer, "audience": API}])
    active = ibm.mint(roles=["guest"])
    report = run_checks(validator, active, roles=["guest"])
    assert report.ok, report.checks
    lines = {c.name: c for c in report.checks}
    assert lines["introspection"].status == "PASS" and ibm.issuer in lines["introspection"].detail
    assert lines["signature"].status == "SKIP"
    assert lines["roles"].status == "PASS"
    assert lines["validate"].status == "PASS"
    revoked = ibm.mint()
    ibm.revoke(revoked)
    report = run_checks(validator, revoked)
    assert not report.ok
    assert {c.name: c.status for c in report.checks}["introspection"] == "FAIL"
    # A JWT of the other, fixed issuer in the same validator still gets the JWS checks.
    jwt = run_checks(validator, table_issuer.mint())
    assert jwt.ok and {c.name: c.status for c in jwt.checks}["signature"] == "PASS"


def test_r2_15_check_token_with_an_issuer_that_introspects_all_tokens(ibm: Any):
    validator = TokenValidator([introspection_spec(ibm, tokens="all")])
    jwt = ibm.mint(opaque=False)
    report = run_checks(validator, jwt)
    assert report.ok, report.checks
    assert {c.name: c.status for c in report.checks}["introspection"] == "PASS"
    ibm.revoke(jwt)
    fresh = TokenValidator([introspection_spec(ibm, tokens="all")])
    assert not run_checks(fresh, jwt).ok  # revoked: the signature alone does not pass it
