"""The ``ccguard`` command and ``flask ccguard check-token``, run with CliRunner against TestIssuer."""

from __future__ import annotations

import importlib.metadata
import json
import os
import stat
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask

import flask_ccguard
from flask_ccguard import TokenValidator
from flask_ccguard.cli import flask_group, main
from flask_ccguard.testing import TestIssuer
from tests.conftest import flip_signature, send_body, start_server, stop_server
from tests.conftest import report_lines as lines

API = "https://api.example.com"


pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def issuer(ccguard_issuer: TestIssuer) -> TestIssuer:
    ccguard_issuer.add_client("rkvst-app", "app-secret", roles=["guest"])
    return ccguard_issuer


def run(*args: str, **kw: Any) -> Result:
    return CliRunner().invoke(main, list(args), **kw)


def check(issuer: TestIssuer, token: str, *extra: str, **kw: Any) -> Result:
    return run("check-token", "-T", token, "--issuer", issuer.issuer, "--audience", API, *extra, **kw)


# -- check-token -----------------------------------------------------------------------


def test_good_token_passes_every_check(issuer: TestIssuer):
    token = issuer.mint(roles=["guest"], scope="assets.read assets.write")
    result = check(issuer, token, "--role", "archivist_administrator", "--role", "guest", "--scope", "assets.read")
    assert result.exit_code == 0, result.output
    report = lines(result)
    assert list(report) == [
        "format",
        "algorithm",
        "key",
        "signature",
        "iss",
        "aud",
        "exp",
        "iat",
        "nbf",
        "roles",
        "scopes",
        "validate",
    ]
    assert {status for status, _ in report.values()} == {"PASS"}
    assert '"roles": [' in result.output  # the decoded payload is shown
    assert token not in result.output  # the token itself is not echoed
    assert result.output.rstrip().endswith("result: VALID")


@pytest.mark.parametrize(
    ("make", "failing", "reason"),
    [
        (lambda i: flip_signature(i.mint()), {"signature"}, "does not verify"),
        (lambda i: i.mint(iat=int(time.time()) - 900, nbf=None, expires_in=-600), {"exp"}, "expired"),
        (lambda i: i.mint(aud="https://other.example.com"), {"aud"}, "another audience"),
        (lambda i: i.mint(iss="https://evil.example.com"), {"iss"}, "unexpected issuer"),
        (lambda i: i.mint(iat=int(time.time()) + 3600), {"iat"}, "in the future"),
        (lambda i: i.mint(nbf=int(time.time()) + 3600), {"nbf"}, "not valid yet"),
        (lambda i: i.mint(alg="ES256"), {"algorithm"}, "not in the allowlist"),
        (lambda i: i.mint(kid="rotated-away"), {"key"}, "not one of the issuer's keys"),
        (lambda i: i.mint(roles=["reader"]), {"roles"}, "needs one of ['guest']"),
    ],
    ids=["tampered", "expired", "wrong-audience", "wrong-issuer", "future-iat", "nbf", "alg", "kid", "roles"],
)
def test_bad_token_fails_the_right_check_with_exit_1(issuer: TestIssuer, make, failing, reason):
    result = check(issuer, make(issuer), *(("--role", "guest") if "roles" in failing else ()))
    assert result.exit_code == 1, result.output
    report = lines(result)
    failed = {name for name, (status, _) in report.items() if status == "FAIL"}
    # Roles are the route's business, not the validator's.
    assert failed == failing | ({"validate"} if "roles" not in failing else set())
    (name,) = failing
    assert reason in report[name][1]


def test_keys_come_from_the_expected_issuer_never_the_tokens_iss(issuer: TestIssuer):
    with TestIssuer() as other:
        token = other.mint()  # signed by, and naming, another live issuer
        result = check(issuer, token)
        assert result.exit_code == 1
        assert other.hits["openid_configuration"] + other.hits["jwks"] == 0
    report = lines(result)
    assert report["iss"][0] == report["key"][0] == "FAIL"
    assert issuer.hits["jwks"] >= 1


def test_malformed_token_fails_format_and_skips_the_rest(issuer: TestIssuer):
    result = check(issuer, "not-a-jwt")
    assert result.exit_code == 1
    report = lines(result)
    assert report["format"][0] == "FAIL"
    assert report["signature"] == ("SKIP", "the token cannot be read")


def test_json_report(issuer: TestIssuer):
    result = check(issuer, issuer.mint(aud="nope"), "--json")
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["valid"] is False
    assert doc["payload"]["aud"] == "nope"
    assert {c["name"]: c["status"] for c in doc["checks"]}["aud"] == "FAIL"


def test_token_read_from_stdin(issuer: TestIssuer):
    result = check(issuer, "-", input=issuer.mint() + "\n")
    assert result.exit_code == 0, result.output


def test_check_token_requests_the_token_itself(issuer: TestIssuer):
    result = run(
        "check-token", "--issuer", issuer.issuer, "--audience", API, "-c", "rkvst-app", "-s", "app-secret",
        "--role", "guest",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert issuer.hits["token"] == 1


def test_options_come_from_the_environment(issuer: TestIssuer):
    env = {
        "CCGUARD_ISSUER": issuer.issuer,
        "CCGUARD_AUDIENCE": API,
        "CCGUARD_CLIENT_ID": "rkvst-app",
        "CCGUARD_CLIENT_SECRET": "app-secret",
    }
    result = run("check-token", env=env)
    assert result.exit_code == 0, result.output
    assert "app-secret" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check-token", "-T", "x", "--audience", API], "--issuer (or -t/--tenant) is required"),
        (["check-token", "-T", "x", "--issuer", "https://idp.example.com"], "--audience (or -f/--fqdn)"),
        (["check-token", "-T", "x", "--issuer", "http://idp.example.com", "--audience", API], "https"),
        (["check-token", "-T", "x", "-t", "../evil", "--audience", API], "must be a host name"),
        (["check-token", "--issuer", "https://idp.example.com", "--audience", API], "--client-id"),
        (
            ["check-token", "-T", "x", "--issuer", "https://i.example", "--audience", API, "--algorithm", "HS256"],
            "HMAC",
        ),
        (["token", "-c", "a", "-s", "b"], "--token-url, --issuer or -t/--tenant"),
    ],
)
def test_usage_and_configuration_errors_exit_2(args, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_token_endpoint_refusal_exits_1(issuer: TestIssuer):
    result = run("token", "--token-url", issuer.token_endpoint, "-c", "rkvst-app", "-s", "wrong")
    assert result.exit_code == 1
    assert "invalid_client" in result.output
    assert "wrong" not in result.output


# -- Azure AD v1 with a tenant, as the original script ---------------------------------


class FakeAzure:
    """login.microsoftonline.com for one tenant: v1 token endpoint, metadata, keys."""

    def __init__(self, signer: TestIssuer, tenant: str) -> None:
        self.seen: list[tuple[str, str, bytes]] = []
        azure = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, doc: Any) -> None:
                body = json.dumps(doc).encode()
                send_body(self, body)

            def do_GET(self) -> None:
                azure.seen.append(("GET", self.path, b""))
                if self.path == f"/{tenant}/.well-known/openid-configuration":
                    self._answer({"issuer": azure.issuer, "jwks_uri": f"{azure.url}/{tenant}/discovery/keys"})
                else:
                    self._answer(signer.jwks())

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                azure.seen.append(("POST", self.path, body))
                token = signer.mint(iss=azure.issuer, aud="https://app.rkvst.io", roles=["archivist_administrator"])
                # Azure AD v1 sends numbers as strings.
                self._answer({"token_type": "Bearer", "expires_in": "3599", "access_token": token})

        self.issuer = f"https://sts.windows.net/{tenant}/"
        self.server = start_server(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def azure(ccguard_issuer: TestIssuer) -> Iterator[FakeAzure]:
    fake = FakeAzure(ccguard_issuer, "11111111-2222-3333-4444-555555555555")
    yield fake
    stop_server(fake.server)


def test_tenant_mode_requests_from_azure_v1_and_checks_against_the_tenant_issuer(azure: FakeAzure):
    tenant = "11111111-2222-3333-4444-555555555555"
    env = {"CCGUARD_AUTHORITY": azure.url, "CCGUARD_CLIENT_SECRET": "s3cret&x"}
    result = run("check-token", "-t", tenant, "-c", "app-id", "-f", "app.rkvst.io", "--role", "guest",
                 "--role", "archivist_administrator", env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    method, path, body = azure.seen[0]
    assert (method, path) == ("POST", f"/{tenant}/oauth2/token")
    assert body == (
        b"grant_type=client_credentials&client_id=app-id&client_secret=s3cret%26x&resource=https%3A%2F%2Fapp.rkvst.io"
    )
    assert lines(result)["iss"] == ("PASS", f"'https://sts.windows.net/{tenant}/'")


# -- token -----------------------------------------------------------------------------


def test_token_prints_the_access_token(issuer: TestIssuer):
    result = run("token", "--issuer", issuer.issuer, "-c", "rkvst-app", "-s", "app-secret", "--audience", API)
    assert result.exit_code == 0, result.output
    TokenValidator(issuer=issuer.issuer, audience=API).validate(result.output.strip())


def test_token_json_prints_the_whole_response(issuer: TestIssuer):
    result = run("token", "--token-url", issuer.token_endpoint, "-c", "rkvst-app", "-s", "app-secret", "--json",
                 "--auth-method", "client_secret_basic", "--scope", "a b")  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert (doc["token_type"], doc["expires_in"], doc["scope"]) == ("Bearer", 300, "a b")


def test_header_file_is_written_with_mode_0600(issuer: TestIssuer, tmp_path):
    target = tmp_path / "bearer_token"
    target.write_text("old\n")
    os.chmod(target, 0o644)
    old_umask = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        result = run("token", "--token-url", issuer.token_endpoint, "-c", "rkvst-app", "-s", "app-secret",
                     "--header-file", str(target))  # fmt: skip
    finally:
        os.umask(old_umask)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    text = target.read_text()
    assert text.startswith("Authorization: Bearer ey")
    assert text.endswith("\n")
    assert text.split()[2] not in result.output  # the token goes to the file only
    assert [p.name for p in tmp_path.iterdir()] == ["bearer_token"]


def test_header_file_replaces_a_symlink_instead_of_following_it(issuer: TestIssuer, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    link = tmp_path / "bearer_token"
    link.symlink_to(victim)
    result = run("token", "--token-url", issuer.token_endpoint, "-c", "rkvst-app", "-s", "app-secret",
                 "--header-file", str(link))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "keep\n"
    assert not link.is_symlink()
    assert stat.S_IMODE(link.stat().st_mode) == 0o600


# -- decode ----------------------------------------------------------------------------


def test_decode_shows_header_and_payload_marked_unverified(issuer: TestIssuer):
    token = flip_signature(issuer.mint(roles=["guest"]))
    result = run("decode", token)
    assert result.exit_code == 0
    assert result.output.startswith("UNVERIFIED")
    assert '"typ": "at+jwt"' in result.output
    assert '"guest"' in result.output
    assert issuer.hits["jwks"] == issuer.hits["openid_configuration"] == 0  # offline


def test_decode_json_and_malformed_input(issuer: TestIssuer):
    doc = json.loads(run("decode", "--json", issuer.mint(sub="x")).output)
    assert doc["verified"] is False
    assert doc["payload"]["sub"] == "x"
    bad = run("decode", "a.b")
    assert bad.exit_code == 1
    assert "three segments" in bad.output


# -- flask ccguard check-token ---------------------------------------------------------


def app_with_validator(issuer: TestIssuer) -> Flask:
    app = Flask(__name__)
    app.extensions["ccguard"] = SimpleNamespace(validator=TokenValidator(issuer=issuer.issuer, audience=API))
    return app


def test_flask_check_token_uses_the_apps_validator(issuer: TestIssuer):
    app = app_with_validator(issuer)
    runner = app.test_cli_runner()
    good = runner.invoke(flask_group, ["check-token", issuer.mint(roles=["guest"]), "--role", "guest"])
    assert good.exit_code == 0, good.output
    assert {status for status, _ in lines(good).values()} == {"PASS", "SKIP"}
    bad = runner.invoke(flask_group, ["check-token", issuer.mint(aud="https://other.example.com")])
    assert bad.exit_code == 1
    assert lines(bad)["aud"][0] == "FAIL"


def test_flask_check_token_without_the_extension_exits_2():
    app = Flask(__name__)
    result = app.test_cli_runner().invoke(flask_group, ["check-token", "x"])
    assert result.exit_code == 2
    assert "CCGuard(app)" in result.output


# -- ccguard --version (issue 14, item 10) -----------------------------------------------


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_i14_10_version_prints_the_installed_version(flag: str):
    result = run(flag)
    assert result.exit_code == 0, result.output
    assert result.output == f"ccguard {flask_ccguard.__version__}\n"
    assert flask_ccguard.__version__ == importlib.metadata.version("flask-ccguard")
