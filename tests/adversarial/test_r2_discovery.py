"""Hardening round 2 (issue 13) and issue 14: discovery and introspection bounds.

Every issuer here is a real HTTP server on 127.0.0.1; nothing patches ``requests``.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from flask_ccguard import CCGuardError, ConfigurationError, InvalidToken, KeysUnavailable, TokenValidator
from flask_ccguard.core.errors import IntrospectionUnavailable
from flask_ccguard.testing import TestIssuer
from tests.conftest import introspection_spec, send_body, start_server, stop_server

from .support import http_response, raw_server, recording_listener

TIMEOUT = 1.0


class Clock:
    """The validator's clock, moved by the tests."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _path(head: bytes) -> str:
    return head.split(b" ", 2)[1].decode("latin-1") if head.count(b" ") >= 2 else ""


# -- r2-07: one deadline for the whole discovery; failed discovery cools down ----------


def _hanging_metadata(slow_404: float | None, seen: list[str]) -> Any:
    """Metadata URLs that hang until the server stops; with ``slow_404``, the
    OpenID one answers 404 after that many seconds instead."""

    def respond(conn: socket.socket, stop: threading.Event, head: bytes) -> None:
        path = _path(head)
        seen.append(path)
        if slow_404 is not None and path.endswith("/openid-configuration"):
            stop.wait(slow_404)
            conn.sendall(http_response("404 Not Found", b"{}"))
            return
        stop.wait(30)  # never answers: only the client's deadline ends this

    return respond


@pytest.mark.parametrize(
    ("slow_404", "tried"),
    [
        # One hanging URL takes the whole budget: the two RFC 8414 URLs are never asked.
        pytest.param(None, 1, id="r2_07_first_url_hangs_others_not_tried"),
        # A slow 404 leaves 60 % of the budget: the second URL gets only that, the third nothing.
        pytest.param(0.4 * TIMEOUT, 2, id="r2_07_second_url_gets_only_the_remaining_time"),
    ],
)
def test_r2_07_one_deadline_covers_all_metadata_urls(
    ccguard_issuer: TestIssuer, caplog: pytest.LogCaptureFixture, slow_404: float | None, tried: int
) -> None:
    seen: list[str] = []
    with raw_server(_hanging_metadata(slow_404, seen)) as server:
        issuer = server.url + "/tenant-1"  # a path: three candidate metadata URLs
        validator = TokenValidator(issuer, ccguard_issuer.audience, http_timeout=TIMEOUT)
        with caplog.at_level(logging.WARNING, logger="flask_ccguard"), pytest.raises(KeysUnavailable):
            validator.validate(ccguard_issuer.mint(iss=issuer))
        # Counted at the server: before the fix every URL got a full timeout (3 requests, 3x the wait).
        # (At most: a machine slow enough to spend the budget sooner only asks fewer.)
        assert 1 <= server.connections <= tried, seen
        assert "/tenant-1/.well-known/oauth-authorization-server" not in seen  # the third: never asked
        assert "discovery deadline" in caplog.text


def _introspecting(issuer: Any, clock: Clock, **options: Any) -> TokenValidator:
    name, secret = next(iter(issuer.introspection_clients.items()))
    introspection = {"client_id": name, "client_secret": secret, **options}
    spec = {"issuer": issuer.issuer, "audience": issuer.audience, "introspection": introspection}
    return TokenValidator([spec], clock=clock, http_timeout=TIMEOUT, jwks_refresh_cooldown=30)


def _metadata_hits(issuer: Any) -> int:
    return int(issuer.hits["openid_configuration"] + issuer.hits["oauth_metadata"])


def test_r2_07_failed_endpoint_discovery_cools_down(ibm: Any) -> None:
    clock = Clock()
    validator = _introspecting(ibm, clock)  # no endpoint: discovered from the metadata
    ibm.openid_configuration = False  # every metadata URL answers 404
    for n in range(10):
        with pytest.raises(IntrospectionUnavailable):
            validator.validate(f"RandomOpaqueToken{n:04d}abcdefghijklmnop")
    discovery_requests = _metadata_hits(ibm)
    # One discovery (its three URLs) for ten tokens; before the fix, one per token (30 requests).
    assert discovery_requests == 3
    assert ibm.hits["introspect"] == 0
    ibm.openid_configuration = True
    clock.now += 29  # still cooling down: not asked, even though it would now answer
    with pytest.raises(IntrospectionUnavailable):
        validator.validate("RandomOpaqueToken9999abcdefghijklmnop")
    assert _metadata_hits(ibm) == discovery_requests
    clock.now += 2  # the cooldown is over: one new discovery, which succeeds
    assert validator.validate(ibm.mint()).client_id == ibm.client_id
    assert _metadata_hits(ibm) == discovery_requests + 1
    validator.validate(ibm.mint())
    assert _metadata_hits(ibm) == discovery_requests + 1  # kept once found


def test_r2_07_concurrent_tokens_share_one_discovery(ibm: Any) -> None:
    validator = _introspecting(ibm, Clock())
    ibm.openid_configuration = False
    errors: list[BaseException] = []

    def ask(n: int) -> None:
        try:
            validator.validate(f"ConcurrentOpaqueToken{n:04d}abcdefghijkl")
        except IntrospectionUnavailable as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 8
    assert _metadata_hits(ibm) == 3  # single flight: one discovery, its three URLs


# -- r2-11: metadata cannot aim our fetches anywhere -----------------------------------


@contextmanager
def https_metadata(tmp_path: Path, jwks_uri: str) -> Iterator[tuple[str, str]]:
    """A real TLS issuer on 127.0.0.1 whose OpenID metadata names ``jwks_uri``.

    Yields the issuer URL and the file of the self-signed certificate to trust.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    box: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/.well-known/openid-configuration"
            body = json.dumps({"issuer": box["issuer"], "jwks_uri": jwks_uri}).encode() if found else b"{}"
            send_body(self, body, 200 if found else 404)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = start_server(Handler, context)
    box["issuer"] = f"https://127.0.0.1:{server.server_port}"
    try:
        yield box["issuer"], str(cert_file)
    finally:
        stop_server(server)


# (where the metadata points jwks_uri, the option, accepted?)
ORIGIN_CASES = [
    pytest.param("same", None, True, id="r2_11_same_origin_accepted"),
    pytest.param("other", None, False, id="r2_11_other_origin_refused_by_default"),
    pytest.param("other", True, True, id="r2_11_other_origin_allowed_by_true"),
    pytest.param("other", "listener", True, id="r2_11_other_origin_allowed_by_list"),
    pytest.param("other", ["https://keys.example"], False, id="r2_11_other_origin_not_in_list_refused"),
]


@pytest.mark.parametrize(("where", "allow", "accepted"), ORIGIN_CASES)
def test_r2_11_discovered_jwks_uri_origin(
    ccguard_issuer: TestIssuer, caplog: pytest.LogCaptureFixture, where: str, allow: Any, accepted: bool
) -> None:
    options: dict[str, Any] = {"audience": ccguard_issuer.audience, "http_timeout": TIMEOUT}
    with recording_listener(json.dumps(ccguard_issuer.jwks()).encode()) as listener:
        if where == "other":
            ccguard_issuer.discovery_overrides = {"jwks_uri": listener.url + "/jwks"}
        if allow is not None:
            options["allow_cross_origin_metadata"] = [listener.url] if allow == "listener" else allow
        validator = TokenValidator(ccguard_issuer.issuer, **options)
        token = ccguard_issuer.mint()
        if accepted:
            assert validator.validate(token).issuer == ccguard_issuer.issuer
            return
        with caplog.at_level(logging.WARNING, logger="flask_ccguard"), pytest.raises(KeysUnavailable):
            validator.validate(token)
        assert listener.connections == 0
        assert ccguard_issuer.hits["jwks"] == 0
    assert "on another origin" in caplog.text
    assert "CCGUARD_ALLOW_CROSS_ORIGIN_METADATA" in caplog.text  # the refusal names the fix
    assert "Configure jwks_uri (CCGUARD_JWKS_URI) explicitly" in caplog.text


@pytest.mark.parametrize(
    "allow",
    [
        pytest.param(False, id="r2_11_https_issuer_http_loopback_jwks_refused"),
        pytest.param(True, id="r2_11_https_issuer_http_loopback_jwks_refused_even_if_allowed"),
    ],
)
def test_r2_11_https_metadata_never_sends_us_to_http(
    ccguard_issuer: TestIssuer, tmp_path: Path, caplog: pytest.LogCaptureFixture, allow: bool
) -> None:
    with recording_listener(json.dumps(ccguard_issuer.jwks()).encode()) as listener:
        with https_metadata(tmp_path, listener.url + "/jwks") as (issuer, ca_file):
            validator = TokenValidator(
                issuer, ccguard_issuer.audience, http_timeout=TIMEOUT, allow_cross_origin_metadata=allow
            )
            validator.http.session.verify = ca_file  # trust the test certificate, and only it
            with caplog.at_level(logging.WARNING, logger="flask_ccguard"), pytest.raises(KeysUnavailable):
                validator.validate(ccguard_issuer.mint(iss=issuer))
        assert listener.connections == 0  # the blind request into our own host never left
    assert "names a plain-http jwks_uri; metadata read over https must name https" in caplog.text


def test_r2_11_configured_jwks_uri_on_another_origin_is_the_users_choice(ccguard_issuer: TestIssuer) -> None:
    with recording_listener(json.dumps(ccguard_issuer.jwks()).encode()) as listener:
        validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, jwks_uri=listener.url + "/jwks")
        assert validator.validate(ccguard_issuer.mint()).issuer == ccguard_issuer.issuer


@pytest.mark.parametrize(
    ("allow", "accepted"),
    [
        pytest.param(None, False, id="r2_11_introspection_endpoint_other_origin_refused"),
        pytest.param(True, True, id="r2_11_introspection_endpoint_other_origin_allowed"),
    ],
)
def test_r2_11_discovered_introspection_endpoint_origin(ibm: Any, allow: Any, accepted: bool) -> None:
    answer = json.dumps({"active": True, "client_id": "c", "exp": int(time.time()) + 60}).encode()
    with recording_listener(answer) as listener:
        ibm.discovery_overrides["introspection_endpoint"] = listener.url + "/introspect"
        name, secret = next(iter(ibm.introspection_clients.items()))
        spec: dict[str, Any] = {
            "issuer": ibm.issuer,
            "audience": ibm.audience,
            "introspection": {"client_id": name, "client_secret": secret},
        }
        if allow is not None:
            spec["allow_cross_origin_metadata"] = allow
        validator = TokenValidator([spec], http_timeout=TIMEOUT)
        if accepted:
            assert validator.validate("OpaqueTokenForTheListener0123456789").client_id == "c"
            assert listener.requests == ["/introspect"]
        else:
            with pytest.raises(IntrospectionUnavailable):
                validator.validate("OpaqueTokenForTheListener0123456789")
            assert listener.connections == 0


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("yes", id="r2_11_option_not_an_origin"),
        pytest.param(["https://keys.example/jwks"], id="r2_11_option_with_a_path"),
        pytest.param(["http://keys.example"], id="r2_11_option_plain_http_remote"),
        pytest.param([], id="r2_11_option_empty_list"),
    ],
)
def test_r2_11_bad_cross_origin_option_fails_at_start_up(value: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        TokenValidator("https://idp.example", "api", allow_cross_origin_metadata=value)
    assert "allow_cross_origin_metadata must be False, True" in str(caught.value)


# -- r2-12: introspection: who decides, and what a flood costs --------------------------


@pytest.mark.parametrize(
    ("first_answer", "reason"),
    [
        pytest.param({"aud": "https://another-api.example"}, "audience", id="r2_12_first_says_active_for_another_aud"),
        pytest.param({"iss": "SECOND"}, "issuer", id="r2_12_first_says_active_with_the_second_issuers_iss"),
    ],
)
def test_r2_12_a_refusing_active_answer_does_not_end_the_search(
    duende: Any, first_answer: dict[str, Any], reason: str
) -> None:
    answer = {"active": True, "client_id": "someone", "exp": int(time.time()) + 60, **first_answer}
    if answer.get("iss") == "SECOND":
        answer["iss"] = duende.issuer
    with recording_listener(json.dumps(answer).encode()) as first:
        spec = {
            "issuer": "https://first.example",
            "audience": duende.audience,
            "introspection": {"endpoint": first.url + "/introspect", "client_id": "rs", "client_secret": "s"},
        }
        validator = TokenValidator([spec, introspection_spec(duende)])
        verified = validator.validate(duende.mint(opaque=True))
        # Before: the first issuer's refusal ended the search with a 401.
        assert (verified.issuer, verified.client_id) == (duende.issuer, duende.client_id)
        assert (len(first.requests), duende.hits["introspect"]) == (1, 1)
        # Unknown to the second issuer: the first's refusal is what the caller hears.
        with pytest.raises(InvalidToken) as caught:
            validator.validate("UnknownToTheSecondIssuer0123456789")
        assert caught.value.reason == reason


def test_r2_12_inactive_flood_does_not_evict_active_answers(ibm: Any) -> None:
    validator = TokenValidator([introspection_spec(ibm, max_entries=3)], clock=Clock())
    good = ibm.mint()
    validator.validate(good)
    for n in range(10):
        with pytest.raises(InvalidToken):
            validator.validate(f"RandomFloodToken{n:04d}abcdefghijklmnop")
    assert ibm.hits["introspect"] == 11
    validator.validate(good)  # still cached: before, the inactive answers had pushed it out
    assert ibm.hits["introspect"] == 11


def test_r2_12_new_token_flood_is_bounded_per_issuer(ibm: Any, duende: Any, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()  # frozen: the bucket of 50 calls does not refill during the flood
    validator = TokenValidator([introspection_spec(ibm), introspection_spec(duende)], clock=clock)
    good = ibm.mint()
    validator.validate(good)
    outcomes: dict[str, int] = {}
    for n in range(200):
        with pytest.raises(CCGuardError) as caught:  # 401 or 503
            validator.validate(f"RandomFloodToken{n:04d}abcdefghijklmnop")
        outcomes[caught.value.reason] = outcomes.get(caught.value.reason, 0) + 1
        if caught.value.reason == "introspection_rate_limited":
            assert caught.value.status == 503
            assert isinstance(caught.value, IntrospectionUnavailable)
            assert caught.value.retry_after == 1
    # 50 calls per issuer per second (the default), not one per token per issuer (before: 201 and 200).
    assert (ibm.hits["introspect"], duende.hits["introspect"]) == (50, 50)
    assert outcomes == {"inactive": 49, "introspection_rate_limited": 151}
    assert "introspection calls exceed 50 per second" in caplog.text
    assert validator.validate(good).client_id == ibm.client_id  # cached answers keep serving
    clock.now += 1  # one second later: 50 more calls may go out
    assert validator.validate(ibm.mint()).client_id == ibm.client_id
    assert ibm.hits["introspect"] == 51


@pytest.mark.parametrize(
    "jwks_uri",
    [
        pytest.param("http://127.0.0.1:99999/jwks", id="r2_11_jwks_uri_port_out_of_range"),
        pytest.param("http://127.0.0.1:port/jwks", id="r2_11_jwks_uri_port_not_a_number"),
    ],
)
def test_r2_11_unparsable_jwks_uri_is_refused_not_a_crash(ccguard_issuer: TestIssuer, jwks_uri: str) -> None:
    ccguard_issuer.discovery_overrides = {"jwks_uri": jwks_uri}
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, allow_cross_origin_metadata=True)
    with pytest.raises(KeysUnavailable):  # not reason="internal"
        validator.validate(ccguard_issuer.mint())


def test_r2_11_origin_with_a_bad_port_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="allow_cross_origin_metadata must be"):
        TokenValidator("https://idp.example", "api", allow_cross_origin_metadata=["https://keys.example:99999"])
