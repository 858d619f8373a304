"""ClientCredentials against TestIssuer and a recording loopback server (RFC 6749 §4.4, §5.2; RFC 6750 §3.1)."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

import pytest
import requests

from flask_ccguard import ConfigurationError, TokenValidator
from flask_ccguard.client import ClientCredentials, TokenRequestError
from flask_ccguard.core.fetch.basic_auth import parse_basic_authorization
from flask_ccguard.testing import TestIssuer
from tests.core.conftest import Recorder, Reply, Seen

SECRET = "s3cr:t &=+~*"  # every character form encoding treats specially


def token_reply(**response: Any) -> Callable[[Seen], Reply]:
    counter = iter(range(1, 10_000))

    def reply(seen: Seen) -> Reply:
        doc = {"access_token": f"token-{next(counter)}", "token_type": "Bearer", "expires_in": 300}
        doc.update(response)
        return 200, {"Cache-Control": "no-store"}, json.dumps({k: v for k, v in doc.items() if v is not None}).encode()

    return reply


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


# -- the request on the wire -----------------------------------------------------------


@pytest.mark.parametrize(
    ("auth_method", "content_type", "body", "authorization"),
    [
        (
            "client_secret_post",
            "application/x-www-form-urlencoded",
            b"grant_type=client_credentials&client_id=my+app&client_secret=s3cr%3At+%26%3D%2B~%2A"
            b"&scope=assets.read+assets.write&resource=https%3A%2F%2Fapi.example.com&audience=aud-1",
            None,
        ),
        (
            "client_secret_basic",
            "application/x-www-form-urlencoded",
            b"grant_type=client_credentials&scope=assets.read+assets.write"
            b"&resource=https%3A%2F%2Fapi.example.com&audience=aud-1",
            # RFC 6749 §2.3.1: "my app" and the secret are form-encoded, then base64'd.
            "Basic " + base64.b64encode(b"my+app:s3cr%3At+%26%3D%2B%7E*").decode(),
        ),
        (
            "json",
            "application/json",
            b'{"grant_type":"client_credentials","client_id":"my app","client_secret":"s3cr:t &=+~*",'
            b'"scope":"assets.read assets.write","resource":"https://api.example.com","audience":"aud-1"}',
            None,
        ),
    ],
)
def test_token_request_bytes_per_auth_method(recorder, auth_method, content_type, body, authorization):
    rec = recorder(token_reply())
    cc = ClientCredentials(
        rec.url + "/oauth2/token",
        "my app",
        SECRET,
        scope=["assets.read", "assets.write"],
        resource="https://api.example.com",
        audience="aud-1",
        auth_method=auth_method,
    )
    assert cc.token() == "token-1"
    (seen,) = rec.seen
    assert (seen.method, seen.path) == ("POST", "/oauth2/token")
    assert seen.body == body
    assert seen.headers["Content-Type"] == content_type
    assert seen.headers["Content-Length"] == str(len(body))
    assert seen.headers["Accept"] == "application/json"
    assert seen.headers.get("Authorization") == authorization


def test_resource_repeats_and_extra_params_follow(recorder):
    rec = recorder(token_reply())
    cc = ClientCredentials(
        rec.url + "/t", "c", "sekret-123", resource=["urn:a", "urn:b"], extra_params={"tenant": "t1"}
    )
    cc.token()
    assert rec.seen[0].body == (
        b"grant_type=client_credentials&client_id=c&client_secret=sekret-123&resource=urn%3Aa&resource=urn%3Ab&tenant=t1"
    )


@pytest.mark.parametrize("auth_method", ["client_secret_post", "client_secret_basic", "json"])
def test_each_auth_method_gets_a_token_the_validator_accepts(ccguard_issuer: TestIssuer, auth_method):
    cc = ClientCredentials(
        ccguard_issuer.token_endpoint,
        "test-client",
        "test-secret",
        audience="https://api.example.com/assets",
        auth_method=auth_method,
    )
    validator = TokenValidator(issuer=ccguard_issuer.issuer, audience="https://api.example.com/assets")
    verified = validator.validate(cc.token())
    assert verified.client_id == "test-client"


def test_from_issuer_takes_the_token_endpoint_from_discovery(ccguard_issuer: TestIssuer):
    ccguard_issuer.discovery_overrides["token_endpoint"] = ccguard_issuer.issuer + "/token?via=discovery"
    cc = ClientCredentials.from_issuer(ccguard_issuer.issuer, "test-client", "test-secret")
    assert cc.token_url.endswith("/token?via=discovery")
    cc.token()
    assert ccguard_issuer.hits["openid_configuration"] == 1
    assert ccguard_issuer.requests[-1].path.endswith("/token?via=discovery")


def test_from_issuer_refuses_metadata_naming_another_issuer(ccguard_issuer: TestIssuer):
    ccguard_issuer.discovery_overrides["issuer"] = "https://evil.example"
    with pytest.raises(TokenRequestError, match="no metadata"):
        ClientCredentials.from_issuer(ccguard_issuer.issuer, "test-client", "test-secret")
    assert ccguard_issuer.hits["token"] == 0


# -- caching ---------------------------------------------------------------------------


def test_second_token_call_makes_no_request(ccguard_issuer: TestIssuer):
    cc = ClientCredentials(ccguard_issuer.token_endpoint, "test-client", "test-secret")
    first = cc.token()
    assert cc.token() == first
    assert cc.token_response()["access_token"] == first
    assert ccguard_issuer.hits["token"] == 1


@pytest.mark.parametrize(
    ("expires_in", "fresh_until"),
    [
        (300, 270),  # margin 30 s
        ("3599", 3569),  # Azure AD v1 sends a numeric string
        (40, 20),  # the margin is at most half the lifetime
    ],
)
def test_token_is_refreshed_at_expiry_minus_margin(recorder, expires_in, fresh_until):
    rec = recorder(token_reply(expires_in=expires_in))
    clock = FakeClock()
    start = clock.now
    cc = ClientCredentials(rec.url + "/t", "c", "sekret-123", clock=clock)
    assert cc.token() == "token-1"
    clock.now = start + fresh_until - 0.5
    assert cc.token() == "token-1"
    clock.now = start + fresh_until + 0.5
    assert cc.token() == "token-2"


def test_token_without_lifetime_left_is_used_once_and_not_cached(recorder):
    rec = recorder(token_reply(expires_in=0))
    cc = ClientCredentials(rec.url + "/t", "c", "sekret-123", clock=FakeClock())
    assert [cc.token(), cc.token()] == ["token-1", "token-2"]


def test_expiry_falls_back_to_the_jwt_exp(recorder):
    clock = FakeClock()
    exp = int(clock.now) + 600
    payload = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).rstrip(b"=").decode()
    jwt = f"eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln"
    rec = recorder(token_reply(expires_in=None, access_token=jwt))
    cc = ClientCredentials(rec.url + "/t", "c", "sekret-123", clock=clock)
    cc.token()
    clock.now = exp - 31
    cc.token()
    assert len(rec.seen) == 1
    clock.now = exp - 29
    cc.token()
    assert len(rec.seen) == 2


def test_opaque_token_without_expiry_is_kept_for_the_default_lifetime(recorder):
    rec = recorder(token_reply(expires_in=None, access_token="ZjQyNGFhY2EtNTY2MS00NjVj"))
    clock = FakeClock()
    start = clock.now
    cc = ClientCredentials(rec.url + "/t", "c", "sekret-123", clock=clock, default_lifetime=120)
    cc.token()
    clock.now = start + 89
    cc.token()
    clock.now = start + 91
    cc.token()
    assert len(rec.seen) == 2


def test_many_threads_share_one_token_request(recorder):
    rec = recorder(token_reply())
    rec.release.clear()  # hold the answer until every thread is waiting
    cc = ClientCredentials(rec.url + "/t", "c", "sekret-123")
    results: list[str] = []
    started = threading.Barrier(21)

    def worker() -> None:
        started.wait()
        results.append(cc.token())

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    started.wait()
    assert rec.arrived.wait(5)
    time.sleep(0.2)  # let the other threads reach the flight (no assertion on time)
    rec.release.set()
    for t in threads:
        t.join(10)
    assert results == ["token-1"] * 20
    assert len(rec.seen) == 1


def test_threads_waiting_on_a_failed_request_share_its_error(recorder):
    rec = recorder(lambda seen: (401, {}, b'{"error":"invalid_client"}'))
    rec.release.clear()
    cc = ClientCredentials(rec.url + "/t", "c", "sekret-123")
    errors: list[TokenRequestError] = []

    def worker() -> None:
        try:
            cc.token()
        except TokenRequestError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    assert rec.arrived.wait(5)
    time.sleep(0.2)
    rec.release.set()
    for t in threads:
        t.join(10)
    assert [e.error for e in errors] == ["invalid_client"] * 8
    assert len(rec.seen) < 8


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, "invalid_request"),
        (401, "invalid_client"),
        (400, "invalid_grant"),
        (400, "unauthorized_client"),
        (400, "unsupported_grant_type"),
        (400, "invalid_scope"),
    ],
)
def test_rfc6749_errors_raise_token_request_error(recorder, status, error):
    body = json.dumps({"error": error, "error_description": f"about {error}"}).encode()
    rec = recorder(lambda seen: (status, {"Cache-Control": "no-store"}, body))
    cc = ClientCredentials(rec.url + "/t", "c", "sekret-123")
    with pytest.raises(TokenRequestError) as info:
        cc.token()
    assert (info.value.error, info.value.error_description, info.value.status) == (error, f"about {error}", status)
    assert str(info.value) == f"token request failed, HTTP {status}, {error}: about {error}"


def test_test_issuer_errors_arrive_as_token_request_errors(ccguard_issuer: TestIssuer):
    ccguard_issuer.add_client("narrow", "pw", scope="assets.read")
    with pytest.raises(TokenRequestError) as wrong_secret:
        ClientCredentials(ccguard_issuer.token_endpoint, "test-client", "nope").token()
    assert (wrong_secret.value.error, wrong_secret.value.status) == ("invalid_client", 401)
    with pytest.raises(TokenRequestError) as bad_scope:
        ClientCredentials(ccguard_issuer.token_endpoint, "narrow", "pw", scope="assets.write").token()
    assert (bad_scope.value.error, bad_scope.value.status) == ("invalid_scope", 400)


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, b"<html>oops</html>", "did not answer JSON"),
        (502, b'{"message":"bad gateway"}', "HTTP 502"),
        (200, b'{"token_type":"Bearer"}', "no access_token"),
        (200, b'["not", "an", "object"]', "not a JSON object"),
        (200, b'{"access_token":"x","token_type":"DPoP"}', "is not Bearer"),
    ],
)
def test_unusable_answers_raise_token_request_error(recorder, status, body, message):
    rec = recorder(lambda seen: (status, {}, body))
    with pytest.raises(TokenRequestError, match=message) as info:
        ClientCredentials(rec.url + "/t", "c", "sekret-123").token()
    assert info.value.error is None
    assert info.value.status == status


def test_a_token_endpoint_that_never_answers_times_out(recorder):
    rec = recorder(token_reply())
    rec.release.clear()
    cc = ClientCredentials(rec.url + "/t", "c", "sekret-123", timeout=0.3)
    with pytest.raises(TokenRequestError, match=r"0\.3 s") as info:
        cc.token()
    assert (info.value.error, info.value.status) == (None, None)


def test_secret_never_in_repr_logs_or_exceptions(recorder, caplog):
    secret = "hunter2-very-secret"
    echo = json.dumps({"error": "invalid_client", "error_description": f"bad secret {secret}"}).encode()
    rec = recorder(lambda seen: (401, {}, echo))
    caplog.set_level(logging.DEBUG)
    cc = ClientCredentials(rec.url + "/t", "c", secret, auth_method="client_secret_basic")
    with pytest.raises(TokenRequestError) as info:
        cc.token()
    texts = [repr(cc), str(cc), repr(info.value), str(info.value), caplog.text, repr(vars(cc))]
    assert info.value.error_description == "bad secret ***"
    assert all(secret not in text for text in texts)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token_url": "http://idp.example.com/token"}, "https"),
        ({"auth_method": "private_key_jwt"}, "auth_method must be one of"),
        ({"client_secret": ""}, "client_secret"),
        ({"extra_params": {"client_secret": "x"}}, "extra_params may not set"),
        ({"scope": ["ok", 3]}, "scope must be"),
        ({"timeout": 0}, "timeout must be more than 0"),
    ],
)
def test_wrong_options_raise_configuration_error(kwargs, message):
    args = {"token_url": "https://idp.example.com/token", "client_id": "c", "client_secret": "s", **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        ClientCredentials(**args)


# -- as requests auth ------------------------------------------------------------------


def resource_server(
    recorder: Callable[[Callable[[Seen], Reply]], Recorder], statuses: list[tuple[int, str | None]]
) -> Recorder:
    """A resource answering the listed (status, Bearer error) in turn, then 200."""
    answers = iter(statuses)

    def reply(seen: Seen) -> Reply:
        status, error = next(answers, (200, None))
        headers = {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="api"' + (f', error="{error}"' if error else "")
        return status, headers, json.dumps({"status": status}).encode()

    return recorder(reply)


def test_auth_adds_the_bearer_header(recorder, ccguard_issuer: TestIssuer):
    api = resource_server(recorder, [])
    cc = ClientCredentials(ccguard_issuer.token_endpoint, "test-client", "test-secret")
    assert requests.get(api.url + "/archivist/v2/assets", auth=cc, timeout=5).status_code == 200
    assert api.seen[0].headers["Authorization"] == "Bearer " + cc.token()


def test_invalid_token_challenge_fetches_a_new_token_and_retries_once(recorder, ccguard_issuer: TestIssuer):
    api = resource_server(recorder, [(401, "invalid_token")])
    cc = ClientCredentials(ccguard_issuer.token_endpoint, "test-client", "test-secret")
    resp = requests.post(api.url + "/assets", json={"name": "tl-101"}, auth=cc, timeout=5)
    assert resp.status_code == 200
    assert [r.status_code for r in resp.history] == [401]
    assert ccguard_issuer.hits["token"] == 2
    first, second = api.seen
    assert first.headers["Authorization"] != second.headers["Authorization"]
    assert second.headers["Authorization"] == "Bearer " + cc.token()
    assert first.body == second.body == b'{"name": "tl-101"}'


def test_retry_happens_only_once(recorder, ccguard_issuer: TestIssuer):
    api = resource_server(recorder, [(401, "invalid_token")] * 5)
    cc = ClientCredentials(ccguard_issuer.token_endpoint, "test-client", "test-secret")
    assert requests.get(api.url, auth=cc, timeout=5).status_code == 401
    assert len(api.seen) == 2
    assert ccguard_issuer.hits["token"] == 2


@pytest.mark.parametrize(("status", "error"), [(401, None), (401, "invalid_request"), (403, "insufficient_scope")])
def test_other_refusals_are_not_retried(recorder, ccguard_issuer: TestIssuer, status, error):
    api = resource_server(recorder, [(status, error)])
    cc = ClientCredentials(ccguard_issuer.token_endpoint, "test-client", "test-secret")
    assert requests.get(api.url, auth=cc, timeout=5).status_code == status
    assert len(api.seen) == 1
    assert ccguard_issuer.hits["token"] == 1


# -- issue 14 item 4: Basic credentials, RFC 6749-encoded or raw -------------------------

RESERVED_SECRETS = [
    pytest.param("pa:ss-w0rd", id="colon"),
    pytest.param("100%25sure", id="percent"),
    pytest.param("a+b=c", id="plus"),
    pytest.param("with space", id="space"),
    pytest.param("all: %2B + of them", id="all"),
]


def basic_endpoint(secret: str, *, raw: bool, refusal: Reply) -> Callable[[Seen], Reply]:
    """A token endpoint accepting client ``app-1`` and ``secret`` over HTTP Basic only
    raw (as glewlwyd reads it), or only RFC 6749 §2.3.1-encoded; ``refusal`` otherwise."""
    issue = token_reply()

    def reply(seen: Seen) -> Reply:
        scheme, _, value = seen.headers.get("Authorization", "").partition(" ")
        if scheme == "Basic":
            if raw:
                client_id, _, given = base64.b64decode(value).decode().partition(":")
                pair: tuple[str, str] | None = (client_id, given)
            else:
                pair = parse_basic_authorization(seen.headers["Authorization"])
            if pair == ("app-1", secret):
                return issue(seen)
        return refusal

    return reply


INVALID_CLIENT: Reply = (401, {"WWW-Authenticate": 'Basic realm="t"'}, b'{"error":"invalid_client"}')
GLEWLWYD_403: Reply = (403, {}, b"")


@pytest.mark.parametrize("secret", RESERVED_SECRETS)
@pytest.mark.parametrize(
    ("raw", "refusal", "requests_first_time"),
    [
        pytest.param(True, INVALID_CLIENT, 2, id="raw-server-401"),
        pytest.param(True, GLEWLWYD_403, 2, id="raw-server-403"),
        pytest.param(False, INVALID_CLIENT, 1, id="rfc6749-server"),
    ],
)
def test_i14_04_auto_basic_encoding_gets_a_token_from_either_kind_of_server(
    recorder, secret, raw, refusal, requests_first_time
):
    rec = recorder(basic_endpoint(secret, raw=raw, refusal=refusal))
    cc = ClientCredentials(rec.url + "/token", "app-1", secret, auth_method="client_secret_basic")
    assert cc.token() == "token-1"
    assert len(rec.seen) == requests_first_time
    # What worked is remembered for this token URL: the next client asks once.
    again = ClientCredentials(rec.url + "/token", "app-1", secret, auth_method="client_secret_basic")
    assert again.token() == "token-2"
    assert len(rec.seen) == requests_first_time + 1


@pytest.mark.parametrize("secret", RESERVED_SECRETS)
@pytest.mark.parametrize("encoding", ["raw", "rfc6749"])
def test_i14_04_explicit_basic_encoding_sends_one_request(recorder, secret, encoding):
    right = recorder(basic_endpoint(secret, raw=encoding == "raw", refusal=INVALID_CLIENT))
    cc = ClientCredentials(
        right.url + "/t", "app-1", secret, auth_method="client_secret_basic", basic_encoding=encoding
    )
    assert cc.token() == "token-1"
    assert len(right.seen) == 1
    if encoding == "raw" and unquote_plus(secret) == secret:
        return  # an RFC 6749 server reads this raw secret right too
    wrong = recorder(basic_endpoint(secret, raw=encoding != "raw", refusal=INVALID_CLIENT))
    cc = ClientCredentials(
        wrong.url + "/t", "app-1", secret, auth_method="client_secret_basic", basic_encoding=encoding
    )
    with pytest.raises(TokenRequestError) as info:
        cc.token()
    assert len(wrong.seen) == 1
    # The error says what to change, in the option's own words.
    other = "rfc6749" if encoding == "raw" else "raw"
    assert f"basic_encoding={other!r}" in str(info.value)
    assert secret not in str(info.value)


def test_i14_04_a_wrong_secret_costs_two_requests_and_says_so(recorder):
    rec = recorder(basic_endpoint("right:secret", raw=True, refusal=INVALID_CLIENT))
    cc = ClientCredentials(rec.url + "/t", "app-1", "wrong:secret", auth_method="client_secret_basic")
    with pytest.raises(TokenRequestError) as info:
        cc.token()
    assert len(rec.seen) == 2
    assert info.value.error == "invalid_client"
    assert "refused both RFC 6749-encoded and raw" in str(info.value)
    assert "wrong:secret" not in str(info.value)


@pytest.mark.parametrize(
    ("client_id", "secret", "refusal"),
    [
        pytest.param("app-1", "plain-Secret_1.*", INVALID_CLIENT, id="nothing-to-encode"),
        pytest.param("app:1", "pa:ss", INVALID_CLIENT, id="raw-impossible"),
        pytest.param("app-1", "pa:ss", (400, {}, b'{"error":"invalid_scope"}'), id="not-a-client-refusal"),
    ],
)
def test_i14_04_no_second_request_when_the_raw_form_cannot_help(recorder, client_id, secret, refusal):
    rec = recorder(lambda seen: refusal)
    cc = ClientCredentials(rec.url + "/t", client_id, secret, auth_method="client_secret_basic")
    with pytest.raises(TokenRequestError) as info:
        cc.token()
    assert len(rec.seen) == 1
    assert "basic_encoding" not in str(info.value)


def test_i14_04_basic_encoding_options_are_checked():
    url = "https://idp.example.com/token"
    with pytest.raises(ConfigurationError, match="basic_encoding must be one of auto, rfc6749, raw"):
        ClientCredentials(url, "c", "s", basic_encoding="latin-1")
    with pytest.raises(ConfigurationError, match="containing ':'"):
        ClientCredentials(url, "a:b", "s", basic_encoding="raw")


def test_i14_04_ccguard_token_basic_encoding_option(recorder):
    from click.testing import CliRunner

    from flask_ccguard.cli import main

    rec = recorder(basic_endpoint("pa:ss", raw=True, refusal=INVALID_CLIENT))
    args = ["token", "--token-url", rec.url + "/cli", "-c", "app-1", "-s", "pa:ss", "--auth-method"]
    refused = CliRunner().invoke(main, [*args, "client_secret_basic", "--basic-encoding", "rfc6749"])
    assert refused.exit_code == 1
    assert "basic_encoding='raw'" in refused.output
    ok = CliRunner().invoke(main, [*args, "client_secret_basic", "--basic-encoding", "raw"])
    assert (ok.exit_code, ok.output.strip()) == (0, "token-1")
