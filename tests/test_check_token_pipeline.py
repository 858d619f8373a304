"""Issue 15: check-token walks the validator's pipeline, with the decorators' ``match=`` rules."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from flask_ccguard import InvalidToken, TokenValidator, VerifiedToken
from flask_ccguard.cli import main
from flask_ccguard.core.report import run_checks
from flask_ccguard.core.request import HTTPRequest
from flask_ccguard.testing import TestIssuer

API = "https://api.example.com"


pytestmark = pytest.mark.usefixtures("clean_env")


def _check(issuer: TestIssuer, token: str, *extra: str) -> Result:
    args = ["check-token", "-T", token, "--issuer", issuer.issuer, "--audience", API, *extra]
    return CliRunner().invoke(main, args)


def _line(result: Result, name: str) -> tuple[str, str]:
    for line in result.output.splitlines():
        status, _, rest = line.partition("  ")
        check, _, detail = rest.strip().partition("  ")
        if status in ("PASS", "FAIL", "SKIP") and check.strip() == name:
            return status, detail.strip()
    raise AssertionError(f"no {name!r} line in {result.output}")


@pytest.mark.parametrize(
    ("extra", "roles_status", "scopes_status"),
    [
        ((), "PASS", "PASS"),  # defaults as before: roles any-of, scopes all-of
        (("--roles-match", "all"), "FAIL", "PASS"),  # as @require_roles("guest", "admin")
        (("--scopes-match", "any"), "PASS", "PASS"),
    ],
    ids=["i15_04_defaults", "i15_04_roles_all", "i15_04_scopes_any"],
)
def test_i15_04_check_token_match_rules_are_the_decorators(
    ccguard_issuer: TestIssuer, extra: tuple[str, ...], roles_status: str, scopes_status: str
) -> None:
    token = ccguard_issuer.mint(aud=API, roles=["guest"], scope="read write")
    args = ("--role", "guest", "--role", "admin", "--scope", "read", "--scope", "write", *extra)
    result = _check(ccguard_issuer, token, *args)
    assert _line(result, "roles")[0] == roles_status, result.output
    assert _line(result, "scopes")[0] == scopes_status, result.output
    assert result.exit_code == (0 if roles_status == scopes_status == "PASS" else 1)


def test_i15_04_scopes_any_fails_only_when_none_is_held(ccguard_issuer: TestIssuer) -> None:
    token = ccguard_issuer.mint(aud=API, scope="read")
    result = _check(ccguard_issuer, token, "--scope", "admin", "--scope", "root", "--scopes-match", "any")
    assert _line(result, "scopes")[0] == "FAIL"
    assert result.exit_code == 1


def test_i15_04_report_runs_the_binding_step(ccguard_issuer: TestIssuer) -> None:
    validator = TokenValidator(ccguard_issuer.issuer, API)

    def needs_request(request: HTTPRequest | None, token: VerifiedToken) -> None:
        if request is None:
            raise InvalidToken("The token is bound to a request proof.", reason="binding")

    token = ccguard_issuer.mint(aud=API)
    plain = run_checks(validator, token)
    assert "binding" not in {c.name for c in plain.checks}  # no sender constraint: no line
    validator.pipeline.add_binding(needs_request)
    report = run_checks(validator, token)
    lines = {c.name: c for c in report.checks}
    assert lines["binding"].status == "FAIL"
    assert lines["validate"].status == "FAIL"  # the validator's own verdict agrees
    bound = run_checks(validator, token, request=HTTPRequest("GET", "https://api.example.com/", {}))
    assert bound.ok, bound.checks
