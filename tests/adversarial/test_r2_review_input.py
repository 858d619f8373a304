"""Outside review, round 2: numbers, token strings and lists that come from others (regression tests).

F4 non-finite numbers in a token, F5 access tokens that are no b64token, F6
integers too large for a float, F9 list-valued ``CCGUARD_*`` variables, F10
TestIssuer and deeply nested JSON. Every server here is real and listens on
127.0.0.1; nothing patches ``requests``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from flask_ccguard import ConfigurationError, TokenValidator
from flask_ccguard.cli import main
from flask_ccguard.client import ClientCredentials, TokenRequestError
from flask_ccguard.core.numbers import MAX_SECONDS, bounded_number
from flask_ccguard.environment import parse_list, parse_variable
from flask_ccguard.testing import TestIssuer
from flask_ccguard.testing.token_request import OAuthError, parameters
from tests.conftest import b64url as _b64
from tests.conftest import b64url_decode as _unb64
from tests.conftest import send_body, start_server

from .support import rejection, resign_raw


def _with_member(issuer: TestIssuer, part: str, member: bytes) -> str:
    """A token of ``issuer``, re-signed with ``member`` (raw JSON text) added to its header or payload."""
    header, payload, _ = issuer.mint().split(".")
    segments = {"header": header, "payload": payload}
    segments[part] = _b64(_unb64(segments[part])[:-1] + b"," + member + b"}")
    return resign_raw(issuer, segments["header"], segments["payload"])


class Endpoint:
    """A loopback HTTP server answering every request with :attr:`body` (JSON, HTTP 200)."""

    def __init__(self) -> None:
        self.body = b"{}"
        self.requests = 0
        self.bodies: list[bytes] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                endpoint.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                endpoint.requests += 1
                send_body(self, endpoint.body)

            do_GET = do_POST

        self.httpd = start_server(Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def answer(self, **response: Any) -> None:
        self.body = json.dumps({"token_type": "Bearer", **response}).encode()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


# -- F4: non-finite numbers ------------------------------------------------------------

NON_FINITE = [
    pytest.param(b'"x": 1e999', id="overflowing-exponent"),
    pytest.param(b'"x": -1e400', id="negative-overflow"),
    pytest.param(b'"x": 1' + b"0" * 400 + b".5", id="overflowing-fraction"),
    pytest.param(b'"x": NaN', id="nan"),
    pytest.param(b'"x": -Infinity', id="infinity"),
]


@pytest.mark.parametrize("member", NON_FINITE)
@pytest.mark.parametrize("part", ["header", "payload"])
def test_review_f4_non_finite_numbers_are_malformed(
    issuer: TestIssuer, validator: TokenValidator, part: str, member: bytes
) -> None:
    # RFC 8259 §6: such numbers have no JSON value; echoed claims would print Infinity.
    error = rejection(validator, _with_member(issuer, part, member))
    assert (error.status, error.reason) == (401, "malformed")


def test_review_f4_an_exp_overflowing_to_infinity_is_malformed(issuer: TestIssuer, validator: TokenValidator) -> None:
    header, payload, _ = issuer.mint().split(".")
    claims = json.loads(_unb64(payload))
    raw = json.dumps({**claims, "exp": "@"}).replace('"@"', "1e400").encode()
    error = rejection(validator, resign_raw(issuer, header, _b64(raw)))
    assert (error.status, error.reason) == (401, "malformed")


def test_review_f4_large_finite_numbers_still_pass(issuer: TestIssuer, validator: TokenValidator) -> None:
    token = _with_member(issuer, "payload", b'"x": 1.5e300, "y": -2E-300')
    assert validator.validate(token).claims["x"] == 1.5e300


@pytest.mark.parametrize("member", NON_FINITE)
def test_review_f4_decode_refuses_non_finite_numbers(issuer: TestIssuer, member: bytes) -> None:
    result = CliRunner().invoke(main, ["decode", "--json", _with_member(issuer, "payload", member)])
    assert result.exit_code == 1
    assert "malformed" in result.output
    assert "Infinity" not in result.output and "NaN" not in result.output


# -- F5: access tokens that cannot go in an Authorization header ------------------------

NOT_B64TOKEN = [
    pytest.param("abc\nX-Injected: yes\nCookie: session=attacker", id="header-lines"),
    pytest.param("abc\r\nX-Injected: yes", id="crlf"),
    pytest.param("abc\x1b]0;pwned\x07\x1b[2J", id="terminal-escapes"),
    pytest.param("abc def", id="space"),
    pytest.param("abc\tdef", id="tab"),
    pytest.param("abc:def", id="colon"),
    pytest.param("a=b", id="inner-padding"),
    pytest.param("t\u00f6ken", id="non-ascii"),
    pytest.param("===", id="padding-only"),
]


@pytest.mark.parametrize("access_token", NOT_B64TOKEN)
def test_review_f5_client_refuses_a_token_that_is_no_b64token(endpoint: Endpoint, access_token: str) -> None:
    endpoint.answer(access_token=access_token, expires_in=60)
    cc = ClientCredentials(endpoint.url + "/token", "id", "sekret-123")
    with pytest.raises(TokenRequestError, match="RFC 6750") as info:
        cc.token()
    # Never echoed (a credential, and the very text that is the problem).
    assert access_token not in str(info.value) and access_token not in repr(info.value)
    assert "abc" not in str(info.value)


@pytest.mark.parametrize("access_token", NOT_B64TOKEN[:3])
def test_review_f5_requests_auth_raises_token_request_error(endpoint: Endpoint, access_token: str) -> None:
    endpoint.answer(access_token=access_token, expires_in=60)
    cc = ClientCredentials(endpoint.url + "/token", "id", "sekret-123")
    with pytest.raises(TokenRequestError):
        requests.get(endpoint.url + "/resource", auth=cc, timeout=5)
    assert endpoint.requests == 1  # the token request; the resource was never asked


@pytest.mark.parametrize("access_token", NOT_B64TOKEN[:3])
def test_review_f5_header_file_is_not_written(endpoint: Endpoint, tmp_path: Any, access_token: str) -> None:
    endpoint.answer(access_token=access_token, expires_in=60)
    target = tmp_path / "bearer_token"
    args = ["token", "--token-url", endpoint.url + "/token", "-c", "id", "-s", "sekret-123"]
    result = CliRunner().invoke(main, [*args, "--header-file", str(target)])
    assert result.exit_code == 1
    assert not target.exists() and os.listdir(tmp_path) == []
    printed = CliRunner().invoke(main, args)
    assert printed.exit_code == 1
    assert "\x1b" not in printed.output and "X-Injected" not in printed.output


@pytest.mark.parametrize("access_token", ["abc", "a-b.c_d~e+f/g==", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"])
def test_review_f5_b64tokens_are_still_accepted(endpoint: Endpoint, access_token: str) -> None:
    endpoint.answer(access_token=access_token, expires_in=60)
    assert ClientCredentials(endpoint.url + "/token", "id", "sekret-123").token() == access_token


# -- F6: integers too large for a float ------------------------------------------------

HUGE = "9" * 400  # JSON allows it; float() and math.isfinite() of it raise OverflowError


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _jwt_with_exp(exp: str) -> str:
    return _b64(b'{"alg":"RS256"}') + "." + _b64(b'{"exp":' + exp.encode() + b"}") + ".c2ln"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            b'{"access_token":"abc","token_type":"Bearer","expires_in":' + HUGE.encode() + b"}", id="expires_in"
        ),
        pytest.param(
            b'{"access_token":"abc","token_type":"Bearer","expires_in":-' + HUGE.encode() + b"}", id="negative"
        ),
        pytest.param(
            b'{"access_token":"abc","token_type":"Bearer","expires_in":"' + HUGE.encode() + b'"}', id="string"
        ),
        pytest.param(b'{"access_token":"abc","token_type":"Bearer","expires_in":1e300}', id="beyond-year-9999"),
        pytest.param(b'{"access_token":"' + _jwt_with_exp(HUGE).encode() + b'","token_type":"Bearer"}', id="jwt-exp"),
        pytest.param(b'{"access_token":"abc","token_type":"Bearer","expires_in":NaN}', id="nan"),
    ],
)
def test_review_f6_unusable_lifetime_falls_back_to_the_default(endpoint: Endpoint, body: bytes) -> None:
    # No usable lifetime (RFC 6749 §5.1 expires_in is only RECOMMENDED): the
    # token is kept for default_lifetime, as when none is given.
    endpoint.body = body
    clock = Clock()
    start = clock.now
    cc = ClientCredentials(endpoint.url + "/token", "id", "sekret-123", clock=clock, default_lifetime=120)
    token = cc.token()
    clock.now = start + 89  # 120 - margin 30, less a second
    assert cc.token() == token and endpoint.requests == 1
    clock.now = start + 91
    cc.token()
    assert endpoint.requests == 2


def test_review_f6_ccguard_token_prints_the_token_not_a_traceback(endpoint: Endpoint) -> None:
    endpoint.body = b'{"access_token":"abc","token_type":"Bearer","expires_in":' + HUGE.encode() + b"}"
    result = CliRunner().invoke(main, ["token", "--token-url", endpoint.url + "/token", "-c", "id", "-s", "pw"])
    assert (result.exit_code, result.exception, result.output) == (0, None, "abc\n")


@pytest.mark.parametrize(
    "exp",
    [
        pytest.param(HUGE, id="huge"),
        pytest.param("-" + HUGE, id="huge-negative"),
        pytest.param("1e300", id="year-9999"),
    ],
)
def test_review_f6_introspected_exp_beyond_a_float_is_a_claim_error(
    issuer: TestIssuer, endpoint: Endpoint, caplog: pytest.LogCaptureFixture, exp: str
) -> None:
    endpoint.body = b'{"active": true, "exp": ' + exp.encode() + b"}"
    introspection = {"endpoint": endpoint.url + "/introspect", "client_id": "rs", "client_secret": "pw"}
    validator = TokenValidator([{"issuer": issuer.issuer, "introspection": introspection}], issuer.audience)
    error = rejection(validator, "opaque-token-1")  # fails on reason "internal" (an OverflowError caught)
    assert (error.status, error.reason, error.claim) == (401, "claim_type", "exp")
    assert "unexpected" not in caplog.text


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: TokenValidator("https://idp.example", "api", leeway=10**400), id="leeway"),
        pytest.param(lambda: TokenValidator("https://idp.example", "api", http_timeout=10**400), id="http_timeout"),
        pytest.param(lambda: ClientCredentials("https://idp.example/t", "c", "s", margin=10**400), id="margin"),
        pytest.param(lambda: ClientCredentials("https://idp.example/t", "c", "s", timeout=-(10**400)), id="timeout"),
        pytest.param(
            lambda: TokenValidator(
                [
                    {
                        "issuer": "https://idp.example",
                        "introspection": {"client_id": "c", "client_secret": "s", "ttl": 10**400},
                    }
                ],
                "api",
            ),
            id="introspection-ttl",
        ),
        pytest.param(
            lambda: TokenValidator(
                [
                    {
                        "issuer": "https://idp.example",
                        "introspection": {"client_id": "c", "client_secret": "s", "max_calls_per_second": 10**400},
                    }
                ],
                "api",
            ),
            id="introspection-rate",
        ),
    ],
)
def test_review_f6_huge_integer_settings_are_configuration_errors(make: Any) -> None:
    with pytest.raises(ConfigurationError, match="number"):
        make()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10**400, None),
        (-(10**400), None),
        (float("nan"), None),
        (float("inf"), None),
        (True, None),
        ("5", None),
        (None, None),
        (MAX_SECONDS, float(MAX_SECONDS)),
        (MAX_SECONDS + 1, None),
        (-5, -5.0),
        (1.5, 1.5),
    ],
)
def test_review_f6_bounded_number_never_raises(value: Any, expected: float | None) -> None:
    assert bounded_number(value) == expected


# -- F9: list-valued CCGUARD_* variables, one reading -----------------------------------

LISTS = [
    pytest.param('["api://a", "api://b"]', ["api://a", "api://b"], id="json-array"),
    pytest.param('  ["api://a"]\n', ["api://a"], id="json-array-padded"),
    pytest.param('"api://a"', ["api://a"], id="json-string"),
    pytest.param("api://a api://b", ["api://a", "api://b"], id="spaces"),
    pytest.param("api://a\n\tapi://b ", ["api://a", "api://b"], id="whitespace"),
    pytest.param("api://a", ["api://a"], id="one"),
    # A comma may be part of a URI (RFC 3986 §2.2): splitting would invent an audience.
    pytest.param("urn:a,b", ["urn:a,b"], id="comma-is-not-a-separator"),
]


@pytest.mark.parametrize(("raw", "expected"), LISTS)
def test_review_f9_list_variables_parse(raw: str, expected: list[str]) -> None:
    assert parse_list("CCGUARD_AUDIENCE", raw) == expected
    assert parse_variable("CCGUARD_AUDIENCE", raw) == expected
    assert parse_variable("CCGUARD_LEEWAY", "5") == 5 and parse_variable("CCGUARD_JWKS_URI", "https://x") == "https://x"


@pytest.mark.parametrize("raw", ['["api://a", 1]', '["api://a",', '[""]', "[" * 100_000, '{"a": 1}', '"'])
def test_review_f9_a_malformed_list_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="CCGUARD_ALGORITHMS must be a JSON array"):
        parse_list("CCGUARD_ALGORITHMS", raw)


def _check_token_with_env(issuer: TestIssuer, token: str, **env: str) -> Any:
    return CliRunner(env={"CCGUARD_ISSUER": issuer.issuer, **env}).invoke(main, ["check-token", "-T", token])


@pytest.mark.parametrize(("raw", "expected"), LISTS[:5])
def test_review_f9_check_token_reads_the_audience_variable_as_apps_do(
    issuer: TestIssuer, raw: str, expected: list[str]
) -> None:
    result = _check_token_with_env(issuer, issuer.mint(aud=expected[-1]), CCGUARD_AUDIENCE=raw)
    assert result.exit_code == 0, result.output
    assert "result: VALID" in result.output


def test_review_f9_check_token_reads_the_algorithms_variable_as_apps_do(issuer: TestIssuer) -> None:
    token = issuer.mint(alg="ES256")
    for raw in ('["RS256", "ES256"]', "RS256 ES256"):
        result = _check_token_with_env(issuer, token, CCGUARD_AUDIENCE=issuer.audience, CCGUARD_ALGORITHMS=raw)
        assert result.exit_code == 0, result.output


def test_review_f9_check_token_names_a_malformed_variable(issuer: TestIssuer) -> None:
    result = _check_token_with_env(issuer, issuer.mint(), CCGUARD_AUDIENCE='["api://a", 1]')
    assert result.exit_code == 2
    assert "CCGUARD_AUDIENCE must be a JSON array" in result.output


def test_review_f9_token_requests_the_one_audience_of_the_variable(endpoint: Endpoint) -> None:
    endpoint.answer(access_token="abc", expires_in=60)
    args = ["token", "--token-url", endpoint.url + "/token", "-c", "id", "-s", "pw"]
    result = CliRunner(env={"CCGUARD_AUDIENCE": '["aud-1"]'}).invoke(main, args)
    assert result.exit_code == 0, result.output
    assert endpoint.bodies[-1].endswith(b"&audience=aud-1")
    two = CliRunner(env={"CCGUARD_AUDIENCE": '["aud-1", "aud-2"]'}).invoke(main, args)
    assert two.exit_code == 2 and "one audience" in two.output
    assert endpoint.requests == 1


def test_review_f9_example_app_reads_the_variables_as_the_command_does(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from example_app import create_app

    for name in list(os.environ):
        if name.startswith(("EXAMPLE_", "CCGUARD_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CCGUARD_AUDIENCE", "api://a api://b")
    monkeypatch.setenv("CCGUARD_ALGORITHMS", '["RS256", "ES256"]')
    app = create_app({"EXAMPLE_INSTANCE_PATH": str(tmp_path)})
    assert app.config["CCGUARD_AUDIENCE"] == ["api://a", "api://b"]
    assert app.config["CCGUARD_ALGORITHMS"] == ["RS256", "ES256"]
    monkeypatch.setenv("CCGUARD_AUDIENCE", '["api://a", 1]')
    with pytest.raises(ConfigurationError, match="CCGUARD_AUDIENCE must be a JSON array"):
        create_app({"EXAMPLE_INSTANCE_PATH": str(tmp_path)})


# -- F10: TestIssuer's token endpoint and deeply nested JSON -----------------------------

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(DEEP, id="deep-array"),
        pytest.param('{"grant_type": "client_credentials", "client_id": ' + DEEP + "}", id="deep-member"),
        pytest.param('{"a": ' * 50_000 + "1" + "}" * 50_000, id="deep-objects"),
    ],
)
def test_review_f10_deeply_nested_json_is_a_400_not_a_500(issuer: TestIssuer, body: str) -> None:
    answer = requests.post(issuer.token_endpoint, data=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert "Traceback" not in answer.text


def test_review_f10_parameters_refuse_deep_json_as_oauth_error() -> None:
    with pytest.raises(OAuthError) as info:
        parameters("application/json", DEEP.encode())
    assert (info.value.status, info.value.error) == (400, "invalid_request")
