"""DPoP through the Flask extension (issue 16 item 1, RFC 9449): each case's id names its RFC section.

Tokens are DPoP-bound with ``TestIssuer.mint(cnf={"jkt": ...})``; proofs come
from :mod:`tests.dpop_proofs`, which shares no code with the verifier.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Callable

import pytest
from flask import Flask

from flask_ccguard import CCGuard, ConfigurationError, require_token
from flask_ccguard.core import steps as pipeline  # where the signature step looks its verifier up
from flask_ccguard.core.dpop import DPoPVerifier
from flask_ccguard.testing import TestIssuer
from tests.challenges import BEARER, DPOP, assert_challenge
from tests.conftest import make_app
from tests.dpop_proofs import DPoPKey, b64

URL = "http://localhost/v"
KEY = DPoPKey()
OTHER = DPoPKey()
DPOP_ONLY = (DPOP,)


def _dpop(token: str, *proofs: str) -> list[tuple[str, str]]:
    return [("Authorization", f"DPoP {token}"), *(("DPoP", p) for p in proofs)]


def _tamper(proof: str) -> str:
    head, body, sig = proof.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["htm"] = "POST"
    return f"{head}.{b64(json.dumps(claims).encode())}.{sig}"


# (id, request headers from (issuer, bound token) -> headers, method, status, error, description)
Case = tuple[str, Callable[[TestIssuer, str], list[tuple[str, str]]], str, int, str | None, str | None]

CASES: list[Case] = [
    ("rfc9449_7_1_accepted", lambda i, t: _dpop(t, KEY.proof("GET", URL, t)), "GET", 200, None, None),
    ("rfc9449_7_1_accepted_post", lambda i, t: _dpop(t, KEY.proof("POST", URL, t)), "POST", 200, None, None),
    (
        "rfc9449_4_3_s6_tampered",
        lambda i, t: _dpop(t, _tamper(KEY.proof("GET", URL, t))),
        "POST",
        401,
        "invalid_dpop_proof",
        "The DPoP proof's signature is invalid.",
    ),
    (
        "rfc9449_4_3_s8_wrong_method",
        lambda i, t: _dpop(t, KEY.proof("POST", URL, t)),
        "GET",
        401,
        "invalid_dpop_proof",
        "The DPoP proof's 'htm' does not match the request method.",
    ),
    (
        "rfc9449_4_3_s9_wrong_url",
        lambda i, t: _dpop(t, KEY.proof("GET", "http://localhost/other", t)),
        "GET",
        401,
        "invalid_dpop_proof",
        "The DPoP proof's 'htu' does not match the request URL.",
    ),
    (
        "rfc9449_4_3_s11_expired_iat",
        lambda i, t: _dpop(t, KEY.proof("GET", URL, t, claims={"iat": int(time.time()) - 3600})),
        "GET",
        401,
        "invalid_dpop_proof",
        "The DPoP proof's 'iat' is outside the accepted window.",
    ),
    (
        "rfc9449_4_3_s12_wrong_token_ath",
        lambda i, t: _dpop(t, KEY.proof("GET", URL, i.mint(cnf={"jkt": KEY.jkt}))),
        "GET",
        401,
        "invalid_dpop_proof",
        "The DPoP proof's 'ath' does not match the access token.",
    ),
    (
        "rfc9449_6_1_wrong_key_jkt_mismatch",
        lambda i, t: _dpop(t, OTHER.proof("GET", URL, t)),
        "GET",
        401,
        "invalid_dpop_proof",
        "The DPoP proof's key is not the one the access token is bound to.",
    ),
    (
        "rfc9449_4_3_s1_missing_proof",
        lambda i, t: _dpop(t),
        "GET",
        401,
        "invalid_dpop_proof",
        "A DPoP proof is required with the DPoP scheme.",
    ),
    (
        "rfc9449_4_3_s1_two_proofs",
        lambda i, t: _dpop(t, KEY.proof("GET", URL, t), KEY.proof("GET", URL, t)),
        "GET",
        401,
        "invalid_dpop_proof",
        "Send exactly one DPoP header.",
    ),
    (
        "rfc9449_4_3_s4_typ_jwt",
        lambda i, t: _dpop(t, KEY.proof("GET", URL, t, header={"typ": "JWT"})),
        "GET",
        401,
        "invalid_dpop_proof",
        "The DPoP proof's 'typ' must be 'dpop+jwt'.",
    ),
    (
        "rfc9449_7_2_bearer_downgraded",
        lambda i, t: [("Authorization", f"Bearer {t}")],
        "GET",
        401,
        "invalid_token",
        "This access token is DPoP-bound; send it with the DPoP scheme and a proof.",
    ),
    (
        "rfc9449_7_1_unbound_token_with_dpop_scheme",
        lambda i, t: _dpop(i.mint(), KEY.proof("GET", URL, i.mint())),
        "GET",
        401,
        "invalid_token",
        "The access token is not DPoP-bound; send it as a Bearer token.",
    ),
]


@pytest.fixture
def app(ccguard_issuer: TestIssuer) -> Flask:
    return make_app(ccguard_issuer)


@pytest.mark.parametrize(
    ("build", "method", "status", "error", "description"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_i16_01_dpop_request_table(
    app: Flask,
    ccguard_issuer: TestIssuer,
    build: Callable[[TestIssuer, str], list[tuple[str, str]]],
    method: str,
    status: int,
    error: str | None,
    description: str | None,
) -> None:
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    resp = app.test_client().open("/v", method=method, headers=build(ccguard_issuer, token))
    scheme = "DPoP" if error == "invalid_dpop_proof" else None
    assert_challenge(resp, status, error, description, realm="assets", error_scheme=scheme)


def test_i16_01_rfc9449_11_1_replayed_proof_is_refused(app: Flask, ccguard_issuer: TestIssuer) -> None:
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    proof = KEY.proof("GET", URL, token)
    client = app.test_client()
    assert_challenge(client.get("/v", headers=_dpop(token, proof)), 200, realm="assets")
    assert_challenge(
        client.get("/v", headers=_dpop(token, proof)),
        401,
        "invalid_dpop_proof",
        "The DPoP proof has already been used.",
        realm="assets",
        error_scheme="DPoP",
    )


@pytest.mark.parametrize(
    ("build", "status", "error", "description"),
    [
        pytest.param(
            lambda i, t: _dpop(t, KEY.proof("GET", URL, t)), 200, None, None, id="rfc9449_7_1_required_accepts_dpop"
        ),
        pytest.param(
            lambda i, t: [("Authorization", f"Bearer {i.mint()}")],
            401,
            "invalid_dpop_proof",
            "This API requires DPoP: send 'Authorization: DPoP <token>' with a DPoP proof.",
            id="rfc9449_7_1_required_refuses_bearer",
        ),
        pytest.param(lambda i, t: [], 401, None, None, id="rfc9449_7_1_required_challenges_dpop_only"),
    ],
)
def test_i16_01_dpop_required_offers_only_dpop(
    ccguard_issuer: TestIssuer,
    build: Callable[[TestIssuer, str], list[tuple[str, str]]],
    status: int,
    error: str | None,
    description: str | None,
) -> None:
    app = make_app(ccguard_issuer, CCGUARD_DPOP="required")
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    resp = app.test_client().get("/v", headers=build(ccguard_issuer, token))
    assert_challenge(resp, status, error, description, realm="assets", schemes=DPOP_ONLY)


def test_i16_01_dpop_disabled_offers_bearer_only_and_refuses_the_scheme(ccguard_issuer: TestIssuer) -> None:
    app = make_app(ccguard_issuer, CCGUARD_DPOP="disabled")
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    resp = app.test_client().get("/v", headers=_dpop(token, KEY.proof("GET", URL, token)))
    assert_challenge(
        resp,
        401,
        None,
        "The Authorization header uses the 'DPoP' scheme; this API expects 'Bearer <token>'.",
        realm="assets",
        schemes=BEARER,
    )


def test_i16_01_rfc9449_9_use_dpop_nonce_carries_the_nonce(ccguard_issuer: TestIssuer) -> None:
    app = make_app(ccguard_issuer, CCGUARD_DPOP_NONCE=True)
    client = app.test_client()
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    resp = client.get("/v", headers=_dpop(token, KEY.proof("GET", URL, token)))
    assert_challenge(resp, 401, "use_dpop_nonce", "A DPoP nonce is required.", realm="assets", error_scheme="DPoP")
    nonce = resp.headers["DPoP-Nonce"]
    again = client.get("/v", headers=_dpop(token, KEY.proof("GET", URL, token, claims={"nonce": nonce})))
    assert_challenge(again, 200, realm="assets")
    # RFC 9449 §8.2: the success response carries the nonce for the next proof.
    assert again.headers["DPoP-Nonce"] == nonce


# -- prior art --------------------------------------------------------------------------------------


def test_i16_01_auth0_1_9_1_host_header_does_not_make_the_htu(ccguard_issuer: TestIssuer) -> None:
    # A proof made for another host, replayed with that Host header: the URL is
    # built from the server's name (or the public base URL), never from Host.
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    client = make_app(ccguard_issuer).test_client()
    resp = client.get(
        "/v", headers=[*_dpop(token, KEY.proof("GET", "http://evil.example/v", token)), ("Host", "evil.example")]
    )
    assert_challenge(
        resp,
        401,
        "invalid_dpop_proof",
        "The DPoP proof's 'htu' does not match the request URL.",
        realm="assets",
        error_scheme="DPoP",
    )
    public = make_app(ccguard_issuer, CCGUARD_PUBLIC_BASE_URL="https://api.example.com").test_client()
    proof = KEY.proof("GET", "https://api.example.com/v", token)
    assert_challenge(public.get("/v", headers=[*_dpop(token, proof), ("Host", "evil.example")]), 200, realm="assets")


def test_i16_01_auth0_1_9_2_extra_cnf_members_are_accepted(app: Flask, ccguard_issuer: TestIssuer) -> None:
    # Keycloak adds its own members to cnf; only jkt matters here.
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt, "kc-jkt-type": "dpop", "x5u": "https://example/x"})
    assert_challenge(
        app.test_client().get("/v", headers=_dpop(token, KEY.proof("GET", URL, token))), 200, realm="assets"
    )


@pytest.mark.parametrize(
    ("config", "environ", "headers"),
    [
        pytest.param({"CCGUARD_PUBLIC_BASE_URL": "https://gw.example/api"}, {}, [], id="spring_17202_public_base_url"),
        pytest.param(
            {
                "CCGUARD_TRUSTED_PROXIES": ["10.0.0.0/8"],
                "CCGUARD_FORWARDED_HEADERS": ["x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix"],
            },
            {"REMOTE_ADDR": "10.1.2.3"},
            [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "gw.example"), ("X-Forwarded-Prefix", "/api")],
            id="spring_17202_trusted_proxy_prefix",
        ),
    ],
)
def test_i16_01_spring_17202_path_stripping_proxy(
    ccguard_issuer: TestIssuer, config: dict[str, Any], environ: dict[str, str], headers: list[tuple[str, str]]
) -> None:
    # The proxy serves https://gw.example/api/v and strips /api: the proof names the public URL.
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    client = make_app(ccguard_issuer, **config).test_client()
    proof = KEY.proof("GET", "https://gw.example/api/v", token)
    assert_challenge(
        client.get("/v", headers=[*_dpop(token, proof), *headers], environ_base=environ), 200, realm="assets"
    )


def test_i16_01_spring_17202_forwarding_headers_of_an_untrusted_peer_are_ignored(ccguard_issuer: TestIssuer) -> None:
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    client = make_app(ccguard_issuer, CCGUARD_TRUSTED_PROXIES=["10.0.0.0/8"]).test_client()
    proof = KEY.proof("GET", "https://gw.example/api/v", token)
    forged = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "gw.example"), ("X-Forwarded-Prefix", "/api")]
    resp = client.get("/v", headers=[*_dpop(token, proof), *forged], environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert_challenge(
        resp,
        401,
        "invalid_dpop_proof",
        "The DPoP proof's 'htu' does not match the request URL.",
        realm="assets",
        error_scheme="DPoP",
    )


def test_i16_01_spring_18120_replay_to_a_second_validator_sharing_the_store(ccguard_issuer: TestIssuer) -> None:
    # Two workers' validators with one replay store: a proof accepted by one is refused by the other.
    first, second = make_app(ccguard_issuer), make_app(ccguard_issuer)
    shared = first.extensions["ccguard"].sender.constraint.verifier.replay_store
    second.extensions["ccguard"].sender.constraint.verifier.replay_store = shared
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    proof = KEY.proof("GET", URL, token)
    assert_challenge(first.test_client().get("/v", headers=_dpop(token, proof)), 200, realm="assets")
    resp = second.test_client().get("/v", headers=_dpop(token, proof))
    assert_challenge(
        resp, 401, "invalid_dpop_proof", "The DPoP proof has already been used.", realm="assets", error_scheme="DPoP"
    )


_BAD_JWKS: list[Any] = [
    {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
    {"kty": "EC", "crv": "P-999", "x": KEY.jwk["x"], "y": KEY.jwk["y"]},
    {**KEY.jwk, "y": KEY.jwk["x"]},  # off the curve
    {**KEY.jwk, "d": KEY.jwk["x"]},  # a private key
    {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
    {"kty": "RSA", "n": "", "e": ""},
    {"kty": "OKP", "crv": "Ed25519", "x": "!!!"},
    {"kty": "oct", "k": "c2VjcmV0"},
    {"kty": 7},
    {},
    "jwk",
    ["kty"],
    None,
    {"kty": "EC", "crv": "P-256", "x": 1, "y": None},
    {"kty": "EC", "crv": "P-256", "x": "é" * 43, "y": "\x00" * 43},
]


@pytest.mark.parametrize("jwk", _BAD_JWKS, ids=[f"better_auth_10039_bad_jwk_{n}" for n in range(len(_BAD_JWKS))])
def test_i16_01_better_auth_10039_malformed_proof_keys_never_500(
    app: Flask, ccguard_issuer: TestIssuer, jwk: Any
) -> None:
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    resp = app.test_client().get("/v", headers=_dpop(token, KEY.proof("GET", URL, token, header={"jwk": jwk})))
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_dpop_proof"


_BAD_PROOFS = [
    "",
    " ",
    "a",
    "a.b",
    "a.b.c",
    "a.b.c.d",
    "....",
    "e30.e30.",
    "eyJhbGciOiJub25lIn0.e30.",
    "x" * 9000,
    "é.é.é",
    b64(b"[1,2]") + "." + b64(b"{}") + ".AA",
    b64(json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": KEY.jwk}).encode()) + "." + b64(b"null") + ".AA",
    b64(json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": KEY.jwk}).encode()) + "." + b64(b"\xff\xfe") + ".AA",
    b64(json.dumps({"typ": "dpop+jwt", "alg": "HS256", "jwk": KEY.jwk}).encode()) + "." + b64(b"{}") + ".AA",
]


@pytest.mark.parametrize("proof", _BAD_PROOFS, ids=[f"rfc9449_4_3_s3_malformed_{n}" for n in range(len(_BAD_PROOFS))])
def test_i16_01_rfc9449_4_3_malformed_proofs_are_401_not_500(
    app: Flask, ccguard_issuer: TestIssuer, proof: str
) -> None:
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    resp = app.test_client().get("/v", headers=[("Authorization", f"DPoP {token}"), ("DPoP", proof)])
    assert resp.status_code == 401, resp.get_json()
    assert resp.get_json()["error"] == "invalid_dpop_proof"


def test_i16_01_cached_token_with_fresh_proof_costs_one_proof_verification(
    app: Flask, ccguard_issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = DPoPVerifier.verify

    def counting(self: DPoPVerifier, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DPoPVerifier, "verify", counting)
    signatures: list[int] = []
    first_verifying = vars(pipeline)["first_verifying"]

    def counting_signatures(*args: Any) -> Any:
        signatures.append(1)
        return first_verifying(*args)

    monkeypatch.setattr(pipeline, "first_verifying", counting_signatures)
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    client = app.test_client()
    for _ in range(5):
        assert_challenge(client.get("/v", headers=_dpop(token, KEY.proof("GET", URL, token))), 200, realm="assets")
    # The token's signature until the cache admits it (on its second sight), then
    # none; the binding step on every use, cache hits included, one proof each.
    assert (len(signatures), len(calls)) == (2, 5)
    # ...and a replayed proof on a cache hit is still refused.
    proof = KEY.proof("GET", URL, token)
    client.get("/v", headers=_dpop(token, proof))
    assert client.get("/v", headers=_dpop(token, proof)).status_code == 401


def _per_issuer(issuer: TestIssuer, dpop: str) -> Flask:
    app = Flask("assets")
    app.config.update(CCGUARD_ISSUER=[{"issuer": issuer.issuer, "dpop": dpop}], CCGUARD_AUDIENCE=issuer.audience)
    CCGuard(app)

    @app.get("/v")
    @require_token
    def view() -> Any:
        return {}

    return app


def test_i16_01_rfc9449_7_1_per_issuer_required(ccguard_issuer: TestIssuer) -> None:
    app = _per_issuer(ccguard_issuer, "required")
    client = app.test_client()
    description = "This API requires DPoP: send 'Authorization: DPoP <token>' with a DPoP proof."
    resp = client.get("/v", headers=[("Authorization", f"Bearer {ccguard_issuer.mint()}")])
    assert_challenge(resp, 401, "invalid_dpop_proof", description, realm="assets", schemes=DPOP_ONLY)
    token = ccguard_issuer.mint(cnf={"jkt": KEY.jkt})
    assert_challenge(client.get("/v", headers=_dpop(token, KEY.proof("GET", URL, token))), 200, realm="assets")


def test_i16_01_per_issuer_dpop_is_checked_at_start_up(ccguard_issuer: TestIssuer) -> None:
    with pytest.raises(ConfigurationError, match="dpop"):
        _per_issuer(ccguard_issuer, "sometimes")
