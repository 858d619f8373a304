"""check-token reports the binding checks (issue 16 item 4's command line, RFC 9449 §4.3, RFC 8705 §3)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask

from flask_ccguard.cli import flask_group, main
from flask_ccguard.testing import TestIssuer
from tests.conftest import certificate_der_pem as _pem
from tests.conftest import make_app
from tests.conftest import report_lines as lines
from tests.dpop_proofs import DPoPKey

URL = "https://api.example.com/v"
KEY = DPoPKey()


@pytest.fixture
def app(ccguard_issuer: TestIssuer) -> Flask:
    return make_app(ccguard_issuer)


def _check(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(flask_group, ["check-token", *args])


def test_i16_04_check_token_reports_a_valid_dpop_proof(app: Flask, ccguard_issuer: TestIssuer) -> None:
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    result = _check(app, token, "--dpop-proof", KEY.proof("GET", URL, token), "--url", URL)
    assert result.exit_code == 0, result.output
    found = lines(result)
    assert found["dpop"][0] == "PASS" and found["binding"][0] == "PASS" and found["validate"][0] == "PASS"


@pytest.mark.parametrize(
    ("args", "detail"),
    [
        pytest.param(
            ("--method", "POST"),
            "The DPoP proof's 'htm' does not match the request method.",
            id="rfc9449_4_3_s8_method",
        ),
        pytest.param(
            ("--url", "https://api.example.com/w"),
            "The DPoP proof's 'htu' does not match the request URL.",
            id="rfc9449_4_3_s9_url",
        ),
    ],
)
def test_i16_04_check_token_reports_a_failing_proof(
    app: Flask, ccguard_issuer: TestIssuer, args: tuple[str, ...], detail: str
) -> None:
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    result = _check(app, token, "--dpop-proof", KEY.proof("GET", URL, token), "--url", URL, *args)
    assert result.exit_code == 1
    found = lines(result)
    assert found["dpop"] == ("FAIL", detail)
    assert found["binding"] == ("FAIL", detail)
    assert found["validate"][0] == "FAIL"


def test_i16_04_check_token_runs_the_proof_once(app: Flask, ccguard_issuer: TestIssuer) -> None:
    # The report's binding line and its final verdict come from one pass: the jti is burned once.
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    proof = KEY.proof("GET", URL, token)
    assert _check(app, token, "--dpop-proof", proof, "--url", URL).exit_code == 0
    again = _check(app, token, "--dpop-proof", proof, "--url", URL)
    assert lines(again)["dpop"] == ("FAIL", "The DPoP proof has already been used.")


def test_i16_04_check_token_reports_a_bearer_downgrade(app: Flask, ccguard_issuer: TestIssuer) -> None:
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    result = _check(app, token, "--url", URL)
    assert lines(result)["binding"][0] == "FAIL" and result.exit_code == 1


def test_i16_04_check_token_reports_the_certificate_binding(ccguard_issuer: TestIssuer, tmp_path: Path) -> None:
    der, pem = _pem()
    path = tmp_path / "client.pem"
    path.write_text(pem)
    x5t = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    token = ccguard_issuer.mint(cnf={"x5t#S256": x5t})
    common = ["check-token", "-T", token, "--issuer", ccguard_issuer.issuer, "--audience", ccguard_issuer.audience]
    ran = CliRunner().invoke(main, [*common, "--client-cert", str(path)])
    assert lines(ran)["mtls"][0] == "PASS" and ran.exit_code == 0, ran.output
    bare = CliRunner().invoke(main, [*common, "--url", URL])
    assert lines(bare)["mtls"] == ("FAIL", "The access token is bound to a client certificate; none was presented.")
