"""Review 3 of DPoP and mTLS: regression tests, one group per finding (``test_review3_fN_...``)."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

import pytest
from flask import Flask

from flask_ccguard import CCGuard, ConfigurationError
from flask_ccguard.client.dpop import DPoPKey
from flask_ccguard.core import dpop, replay_store
from flask_ccguard.core.replay import KeyQuota, ReplayMemoryStore
from flask_ccguard.testing import TestIssuer, dpop_proof, generate_dpop_key
from tests.challenges import assert_challenge
from tests.conftest import make_app

URL = "http://localhost/v"


@pytest.mark.parametrize("iat", [10**400, -(10**400), 10**309], ids=["huge", "huge_negative", "past_double"])
def test_review3_f3_huge_integer_iat_is_bad_iat(ccguard_issuer: TestIssuer, iat: int) -> None:
    """F3: an integer ``iat`` beyond a double is 401 invalid_dpop_proof, never an OverflowError."""
    key = generate_dpop_key()
    token = ccguard_issuer.mint(dpop_key=key)
    client = make_app(ccguard_issuer).test_client()
    proof = dpop_proof(key, "GET", URL, token, iat=iat)
    response = client.get("/v", headers=[("Authorization", f"DPoP {token}"), ("DPoP", proof)])
    assert_challenge(
        response,
        401,
        "invalid_dpop_proof",
        "The DPoP proof's 'iat' is missing or not a number.",
        realm="assets",
        error_scheme="DPoP",
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:s3cret@api.example/x?q=1#f", "https://api.example/x"),
        ("https://user@api.example:8443/x", "https://api.example:8443/x"),
        ("https://a%40b:p%40ss@api.example/", "https://api.example/"),
    ],
    ids=["user_password", "user_port", "encoded_at"],
)
def test_review3_f8_client_proof_htu_has_no_userinfo(url: str, expected: str) -> None:
    """F8: the token client's proof never carries URL credentials in ``htu``."""
    proof = DPoPKey().proof("GET", url)
    claims = json.loads(base64.urlsafe_b64decode(proof.split(".")[1] + "=="))
    assert claims["htu"] == expected
    assert "s3cret" not in proof


def _dpop(key: Any, token: str) -> list[tuple[str, str]]:
    return [("Authorization", f"DPoP {token}"), ("DPoP", dpop_proof(key, "GET", URL, token))]


def test_review3_f2_full_replay_store_is_503_with_retry_after(
    ccguard_issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F2: a full in-process replay store is the server's state: 503 + Retry-After, not 401."""
    monkeypatch.setattr(replay_store, "ReplayMemoryStore", lambda: ReplayMemoryStore(3))
    client = make_app(ccguard_issuer).test_client()
    attacker, victim = generate_dpop_key(), generate_dpop_key()
    token = ccguard_issuer.mint(dpop_key=attacker, client_id="attacker")
    for _ in range(3):
        assert client.get("/v", headers=_dpop(attacker, token)).status_code == 200
    victim_token = ccguard_issuer.mint(dpop_key=victim, client_id="victim")
    response = client.get("/v", headers=_dpop(victim, victim_token))
    assert response.status_code == 503
    assert "WWW-Authenticate" not in response.headers
    # Until the oldest entry expires: within the 60 s + 10 s + 1 s window.
    assert 1 <= int(response.headers["Retry-After"]) <= 71
    assert response.get_json()["error"] == "temporarily_unavailable"


def test_review3_f2_one_key_cannot_fill_the_replay_store(
    ccguard_issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F2: past its per-key quota a key's proofs get 401 ``replay_quota``; other keys still pass."""
    monkeypatch.setattr(replay_store, "ReplayMemoryStore", lambda: ReplayMemoryStore(3))
    monkeypatch.setattr(dpop, "KeyQuota", functools.partial(KeyQuota, 2))
    client = make_app(ccguard_issuer).test_client()
    attacker, victim = generate_dpop_key(), generate_dpop_key()
    token = ccguard_issuer.mint(dpop_key=attacker, client_id="attacker")
    captured = _dpop(attacker, token)
    assert client.get("/v", headers=captured).status_code == 200
    # A replay is refused as a replay and spends no quota: the next proof passes.
    assert "already been used" in client.get("/v", headers=captured).headers["WWW-Authenticate"]
    assert client.get("/v", headers=_dpop(attacker, token)).status_code == 200
    assert_challenge(
        client.get("/v", headers=_dpop(attacker, token)),
        401,
        "invalid_dpop_proof",
        "Too many DPoP proofs with this key; retry shortly.",
        realm="assets",
        error_scheme="DPoP",
    )
    victim_token = ccguard_issuer.mint(dpop_key=victim, client_id="victim")
    assert_challenge(client.get("/v", headers=_dpop(victim, victim_token)), 200, realm="assets")


def test_review3_f2_quota_table_is_bounded() -> None:
    """F2: the per-key table keeps at most ``max_keys`` keys and drops expired windows first."""
    now = [0.0]
    quota = KeyQuota(1, 10.0, max_keys=3, clock=lambda: now[0])
    for n in range(5):
        quota.record(f"k{n}")
    assert len(quota._counts) == 3 and not quota.allows("k4")
    now[0] = 10.0
    assert quota.allows("k4")
    quota.record("new")
    assert list(quota._counts) == ["new"]


@pytest.mark.parametrize("as_list", [True, False], ids=["issuer_list", "issuer_dict"])
def test_review3_f4_fapi2_refuses_an_issuer_with_dpop_disabled_and_no_certificates(
    ccguard_issuer: TestIssuer, as_list: bool
) -> None:
    """F4: FAPI 2.0 needs a sender constraint for every issuer, not only app-wide."""
    spec = {"issuer": ccguard_issuer.issuer, "audience": ccguard_issuer.audience, "dpop": "disabled"}
    app = Flask("assets")
    app.config.update(CCGUARD_PROFILE="fapi2", CCGUARD_ISSUER=[spec] if as_list else spec)
    with pytest.raises(
        ConfigurationError, match=r"CCGUARD_ISSUER\[0\]\['dpop'\]='disabled'.*CCGUARD_CLIENT_CERT_SOURCE"
    ):
        CCGuard(app)


_PROXY_WRITES = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "api.example")]
_FORWARDED_TABLE = [
    # (setting, headers reaching the app, proof URL, status)
    (None, [*_PROXY_WRITES, ("Forwarded", "host=evil.example;proto=https")], "https://evil.example/v", 401),
    (None, [*_PROXY_WRITES, ("Forwarded", "host=evil.example;proto=https")], "https://api.example/v", 200),
    (None, [*_PROXY_WRITES, ("X-Forwarded-Prefix", "/other")], "https://api.example/other/v", 401),
    (None, [*_PROXY_WRITES, ("X-Forwarded-Prefix", "/other")], "https://api.example/v", 200),
    ("x-forwarded", [*_PROXY_WRITES, ("Forwarded", "host=evil.example;proto=https")], "https://evil.example/v", 401),
    (
        "forwarded",
        [("Forwarded", "host=api.example;proto=https"), ("X-Forwarded-Host", "evil.example")],
        "https://api.example/v",
        200,
    ),
    (
        "forwarded",
        [("Forwarded", "host=api.example;proto=https"), ("X-Forwarded-Host", "evil.example")],
        "https://evil.example/v",
        401,
    ),
    (
        ["x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix"],
        [*_PROXY_WRITES, ("X-Forwarded-Prefix", "/api")],
        "https://api.example/api/v",
        200,
    ),
    (["X-Forwarded-Host"], [*_PROXY_WRITES], "http://api.example/v", 200),
]


@pytest.mark.parametrize(
    ("setting", "headers", "proof_url", "status"),
    _FORWARDED_TABLE,
    ids=[
        "client_forwarded_ignored_proof_evil",
        "client_forwarded_ignored_proof_api",
        "client_prefix_ignored_proof_prefixed",
        "client_prefix_ignored_proof_api",
        "x_forwarded_explicit",
        "forwarded_family_reads_forwarded",
        "forwarded_family_ignores_client_xfh",
        "listed_prefix_read",
        "host_only_list",
    ],
)
def test_review3_f1_only_the_configured_forwarding_headers_are_read(
    ccguard_issuer: TestIssuer, setting: Any, headers: list[tuple[str, str]], proof_url: str, status: int
) -> None:
    """F1: a proxy passes on headers it does not write; only those it writes are read for ``htu``."""
    config: dict[str, Any] = {"CCGUARD_TRUSTED_PROXIES": ["127.0.0.1"]}
    if setting is not None:
        config["CCGUARD_FORWARDED_HEADERS"] = setting
    client = make_app(ccguard_issuer, **config).test_client()
    key = generate_dpop_key()
    token = ccguard_issuer.mint(dpop_key=key)
    proof = dpop_proof(key, "GET", proof_url, token)
    response = client.get(
        "/v",
        headers=[("Authorization", f"DPoP {token}"), ("DPoP", proof), *headers],
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    )
    if status == 200:
        assert_challenge(response, 200, realm="assets")
    else:
        assert_challenge(
            response,
            401,
            "invalid_dpop_proof",
            "The DPoP proof's 'htu' does not match the request URL.",
            realm="assets",
            error_scheme="DPoP",
        )


@pytest.mark.parametrize(
    "value",
    ["both", [], ["forwarded", "x-forwarded-host"], ["x-real-host"], "X-Forwarded", None, ["x-forwarded-host", 1]],
)
def test_review3_f1_forwarded_headers_setting_is_checked_at_start_up(ccguard_issuer: TestIssuer, value: Any) -> None:
    with pytest.raises(ConfigurationError, match="CCGUARD_FORWARDED_HEADERS must be"):
        make_app(ccguard_issuer, CCGUARD_FORWARDED_HEADERS=value)
