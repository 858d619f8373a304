"""TestIssuer over real loopback HTTP, checked with cryptography directly.

Nothing here uses flask_ccguard's validator: the issuer is the independent
reference the validator's own tests rely on.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from flask_ccguard.testing import SUPPORTED_ALGORITHMS, TestIssuer
from flask_ccguard.testing.minting import _POOL

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 5

HASHES = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}
CURVES = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
JWK_SHAPE = {
    "RS256": ("RSA", None, {"n", "e"}),
    "RS384": ("RSA", None, {"n", "e"}),
    "RS512": ("RSA", None, {"n", "e"}),
    "PS256": ("RSA", None, {"n", "e"}),
    "PS384": ("RSA", None, {"n", "e"}),
    "PS512": ("RSA", None, {"n", "e"}),
    "ES256": ("EC", "P-256", {"crv", "x", "y"}),
    "ES384": ("EC", "P-384", {"crv", "x", "y"}),
    "ES512": ("EC", "P-521", {"crv", "x", "y"}),
    "EdDSA": ("OKP", "Ed25519", {"crv", "x"}),
}


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64int(text: str) -> int:
    return int.from_bytes(b64d(text), "big")


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return json.loads(b64d(header)), json.loads(b64d(payload))


def verify(token: str, jwk: dict[str, Any]) -> None:
    """Check the JWS signature from the JWK alone (RFC 7515 §5.2, RFC 7518 §3)."""
    header_b64, payload_b64, sig_b64 = token.split(".")
    data = f"{header_b64}.{payload_b64}".encode("ascii")
    signature = b64d(sig_b64)
    alg = jwk["alg"]
    if jwk["kty"] == "RSA":
        public = rsa.RSAPublicNumbers(b64int(jwk["e"]), b64int(jwk["n"])).public_key()
        digest = HASHES[alg[2:]]
        pad: padding.AsymmetricPadding = (
            padding.PSS(padding.MGF1(digest), salt_length=digest.digest_size)
            if alg.startswith("PS")
            else padding.PKCS1v15()
        )
        public.verify(signature, data, pad, digest)
    elif jwk["kty"] == "EC":
        curve = CURVES[jwk["crv"]]
        size = (curve.key_size + 7) // 8
        assert len(signature) == 2 * size, "JOSE ECDSA signatures are R || S"
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        numbers = ec.EllipticCurvePublicNumbers(b64int(jwk["x"]), b64int(jwk["y"]), curve)
        numbers.public_key().verify(encode_dss_signature(r, s), data, ec.ECDSA(HASHES[alg[2:]]))
    else:
        ed25519.Ed25519PublicKey.from_public_bytes(b64d(jwk["x"])).verify(signature, data)


def published(issuer: TestIssuer, kid: str) -> dict[str, Any]:
    """The JWK with ``kid`` as served over HTTP."""
    keys = requests.get(issuer.jwks_uri, timeout=TIMEOUT).json()["keys"]
    (jwk,) = [key for key in keys if key["kid"] == kid]
    return dict(jwk)


@pytest.fixture(scope="module")
def every_alg() -> Any:
    """One issuer publishing every supported algorithm (keys are slow to make)."""
    with TestIssuer(algorithms=SUPPORTED_ALGORITHMS) as issuer:
        yield issuer


@pytest.fixture
def issuer() -> Any:
    with TestIssuer(clients={"app": "s3cret"}, path="/tenant-1") as issuer:
        yield issuer


def token_request(issuer: TestIssuer, **kwargs: Any) -> requests.Response:
    return requests.post(issuer.token_endpoint, timeout=TIMEOUT, **kwargs)


# -- discovery ---------------------------------------------------------------


def test_issuer_urls_are_loopback_with_path(issuer: TestIssuer) -> None:
    assert issuer.base_url.startswith("http://127.0.0.1:")
    assert issuer.issuer == issuer.base_url + "/tenant-1"
    assert issuer.discovery_url == issuer.issuer + "/.well-known/openid-configuration"
    assert issuer.jwks_uri.startswith(issuer.issuer + "/")
    assert issuer.token_endpoint.startswith(issuer.issuer + "/")


def test_path_trailing_slash_is_dropped() -> None:
    with TestIssuer(path="/t/") as issuer:
        assert issuer.issuer == issuer.base_url + "/t"


def test_path_must_start_with_slash() -> None:
    with pytest.raises(ValueError, match="start with '/'"):
        TestIssuer(path="tenant")


def test_openid_configuration_document(issuer: TestIssuer) -> None:
    response = requests.get(issuer.discovery_url, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    doc = response.json()
    assert doc["issuer"] == issuer.issuer
    assert doc["jwks_uri"] == issuer.jwks_uri
    assert doc["token_endpoint"] == issuer.token_endpoint
    assert doc["grant_types_supported"] == ["client_credentials"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_post",
        "client_secret_basic",
    }
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["response_types_supported"] == ["token"]


@pytest.mark.parametrize(
    "where",
    [
        "/.well-known/oauth-authorization-server/tenant-1",  # RFC 8414 §3.1: inserted
        "/tenant-1/.well-known/oauth-authorization-server",  # appended, as OIDC does
    ],
)
def test_rfc8414_metadata_inserted_and_appended(issuer: TestIssuer, where: str) -> None:
    doc = requests.get(issuer.base_url + where, timeout=TIMEOUT).json()
    assert doc["issuer"] == issuer.issuer
    assert doc["jwks_uri"] == issuer.jwks_uri
    assert doc["token_endpoint"] == issuer.token_endpoint
    assert issuer.hits["oauth_metadata"] == 1


@pytest.mark.parametrize(
    ("flags", "url_attr", "expected"),
    [
        ({"openid_configuration": False}, "discovery_url", 404),
        ({"oauth_metadata": False}, "oauth_metadata_url", 404),
        ({"openid_configuration": False}, "oauth_metadata_url", 200),
        ({"oauth_metadata": False}, "discovery_url", 200),
    ],
)
def test_metadata_documents_can_be_switched_off(flags: dict[str, Any], url_attr: str, expected: int) -> None:
    with TestIssuer(path="/p", **flags) as issuer:
        url = getattr(issuer, url_attr)
        assert requests.get(url, timeout=TIMEOUT).status_code == expected


def test_metadata_switches_apply_at_run_time(issuer: TestIssuer) -> None:
    issuer.openid_configuration = False
    assert requests.get(issuer.discovery_url, timeout=TIMEOUT).status_code == 404
    assert issuer.hits["openid_configuration"] == 1  # counted even when off
    issuer.openid_configuration = True
    assert requests.get(issuer.discovery_url, timeout=TIMEOUT).status_code == 200


def test_discovery_overrides_merge_and_none_removes(issuer: TestIssuer) -> None:
    issuer.discovery_overrides = {"issuer": "http://evil", "jwks_uri": None}
    for url in (issuer.discovery_url, issuer.oauth_metadata_url):
        doc = requests.get(url, timeout=TIMEOUT).json()
        assert doc["issuer"] == "http://evil"
        assert "jwks_uri" not in doc


# -- keys and signatures -----------------------------------------------------


@pytest.mark.parametrize("alg", SUPPORTED_ALGORITHMS)
def test_jwks_shape_per_algorithm(every_alg: TestIssuer, alg: str) -> None:
    kty, crv, params = JWK_SHAPE[alg]
    jwk = every_alg.public_jwk(alg)
    assert set(jwk) == {"kty", "kid", "use", "alg"} | params
    assert (jwk["kty"], jwk.get("crv"), jwk["use"], jwk["alg"]) == (
        kty,
        crv,
        "sig",
        alg,
    )
    assert 8 <= len(jwk["kid"]) <= 32
    assert published(every_alg, jwk["kid"]) == jwk
    if kty == "EC":
        size = (CURVES[crv].key_size + 7) // 8  # type: ignore[index]
        assert len(b64d(jwk["x"])) == len(b64d(jwk["y"])) == size
    if kty == "RSA":
        assert b64int(jwk["n"]).bit_length() == 2048
        assert jwk["e"] == "AQAB"


@pytest.mark.parametrize("alg", SUPPORTED_ALGORITHMS)
def test_minted_token_verifies_with_published_key(every_alg: TestIssuer, alg: str) -> None:
    token = every_alg.mint(alg=alg)
    header, _ = parts(token)
    assert header["alg"] == alg
    verify(token, published(every_alg, header["kid"]))


@pytest.mark.parametrize("alg", SUPPORTED_ALGORITHMS)
def test_tampered_token_fails_verification(every_alg: TestIssuer, alg: str) -> None:
    header_b64, _, signature = every_alg.mint(alg=alg).split(".")
    forged = every_alg.mint(alg=alg, sub="admin").split(".")[1]
    with pytest.raises(InvalidSignature):
        verify(f"{header_b64}.{forged}.{signature}", every_alg.public_jwk(alg))


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
@pytest.mark.parametrize("alg", SUPPORTED_ALGORITHMS)
def test_interoperates_with_joserfc(every_alg: TestIssuer, alg: str) -> None:
    # A second, unrelated JOSE implementation agrees (skipped if absent).
    jwt = pytest.importorskip("joserfc.jwt")
    jwk_mod = pytest.importorskip("joserfc.jwk")
    key_set = jwk_mod.KeySet.import_key_set(every_alg.jwks())
    decoded = jwt.decode(every_alg.mint(alg=alg, n=1), key_set, algorithms=[alg])
    assert decoded.claims["n"] == 1


def test_mint_with_unlisted_alg_publishes_a_key_for_it(issuer: TestIssuer) -> None:
    before = issuer.algorithms
    assert before == ("RS256",)
    token = issuer.mint(alg="ES384")
    verify(token, published(issuer, parts(token)[0]["kid"]))
    assert issuer.algorithms == ("RS256", "ES384")
    doc = requests.get(issuer.discovery_url, timeout=TIMEOUT).json()
    assert doc["id_token_signing_alg_values_supported"] == ["RS256", "ES384"]


@pytest.mark.parametrize("alg", ["HS256", "none", "RS1", "eddsa"])
def test_mint_refuses_unsupported_alg(issuer: TestIssuer, alg: str) -> None:
    with pytest.raises(ValueError, match="unsupported algorithm"):
        issuer.mint(alg=alg)


def test_live_issuers_never_share_keys() -> None:
    with TestIssuer() as one, TestIssuer() as two:
        assert one.public_jwk("RS256")["n"] != two.public_jwk("RS256")["n"]
        assert one.public_jwk("RS256")["kid"] != two.public_jwk("RS256")["kid"]


def test_rotate_keys_drops_old_keys(every_alg: TestIssuer) -> None:
    old = {alg: every_alg.public_jwk(alg)["kid"] for alg in SUPPORTED_ALGORITHMS}
    every_alg.rotate_keys()
    new = {alg: every_alg.public_jwk(alg)["kid"] for alg in SUPPORTED_ALGORITHMS}
    assert not set(old.values()) & set(new.values())
    served = {key["kid"] for key in requests.get(every_alg.jwks_uri, timeout=TIMEOUT).json()["keys"]}
    assert served == set(new.values())
    token = every_alg.mint(alg="ES256")
    assert parts(token)[0]["kid"] == new["ES256"]
    verify(token, published(every_alg, new["ES256"]))


def test_rotate_keys_keep_old_publishes_both(issuer: TestIssuer) -> None:
    before = issuer.mint()
    old_jwk = issuer.public_jwk("RS256")
    issuer.rotate_keys(keep_old=True)
    kids = [key["kid"] for key in issuer.jwks()["keys"]]
    assert kids == [issuer.public_jwk("RS256")["kid"], old_jwk["kid"]]
    verify(before, published(issuer, old_jwk["kid"]))
    with pytest.raises(InvalidSignature):
        verify(issuer.mint(kid=old_jwk["kid"]), old_jwk)


def test_extra_jwks_are_appended(issuer: TestIssuer) -> None:
    bad = {"kty": "RSA", "kid": "bad", "n": "AQAB", "e": "AQAB"}
    issuer.extra_jwks.append(bad)
    keys = requests.get(issuer.jwks_uri, timeout=TIMEOUT).json()["keys"]
    assert keys[-1] == bad and len(keys) == 2


def test_key_for_is_the_signing_key(issuer: TestIssuer) -> None:
    key = issuer.key_for("ES256")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers().x == b64int(issuer.public_jwk("ES256")["x"])


# -- mint: header and claims -------------------------------------------------


def test_mint_defaults(issuer: TestIssuer) -> None:
    before = int(time.time())
    header, claims = parts(issuer.mint())
    assert header == {
        "alg": "RS256",
        "typ": "at+jwt",
        "kid": issuer.public_jwk("RS256")["kid"],
    }
    assert claims["iss"] == issuer.issuer
    assert claims["aud"] == "https://api.example.com"
    assert claims["sub"] == claims["client_id"] == "test-client"
    assert before <= claims["iat"] == claims["nbf"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 300
    assert len(claims["jti"]) == 32
    assert claims["jti"] != parts(issuer.mint())[1]["jti"]


@pytest.mark.parametrize(
    ("kwargs", "expected_header"),
    [
        ({"kid": None}, {"alg": "RS256", "typ": "at+jwt"}),
        ({"kid": "x"}, {"alg": "RS256", "typ": "at+jwt", "kid": "x"}),
        ({"headers": {"typ": None}}, {"alg": "RS256", "kid": "<kid>"}),
        (
            {"headers": {"typ": "JWT", "jku": "http://evil/jwks"}},
            {"alg": "RS256", "typ": "JWT", "kid": "<kid>", "jku": "http://evil/jwks"},
        ),
        (
            {"headers": {"alg": "RS512"}},
            {"alg": "RS512", "typ": "at+jwt", "kid": "<kid>"},
        ),
        (
            {"kid": None, "headers": {"kid": "y"}},
            {"alg": "RS256", "typ": "at+jwt", "kid": "y"},
        ),
    ],
)
def test_mint_header_overrides(issuer: TestIssuer, kwargs: dict[str, Any], expected_header: dict[str, Any]) -> None:
    kid = issuer.public_jwk("RS256")["kid"]
    expected = {k: (kid if v == "<kid>" else v) for k, v in expected_header.items()}
    token = issuer.mint(**kwargs)
    assert parts(token)[0] == expected
    verify(token, issuer.public_jwk("RS256"))  # still signed by the RS256 key


def test_mint_claim_overrides_and_none_removes(issuer: TestIssuer) -> None:
    _, claims = parts(issuer.mint(aud=["a", "b"], sub="svc", nbf=None, jti=None, roles=["r"], expires_in=-10))
    assert claims["aud"] == ["a", "b"] and claims["sub"] == "svc"
    assert claims["roles"] == ["r"]
    assert "nbf" not in claims and "jti" not in claims
    assert claims["exp"] == claims["iat"] - 10


def test_mint_expires_in_defaults_to_token_lifetime() -> None:
    with TestIssuer(token_lifetime=60, start=False) as issuer:
        _, claims = parts(issuer.mint())
        assert claims["exp"] - claims["iat"] == 60


# -- sign: adversarial tokens ------------------------------------------------


def test_sign_uses_header_and_payload_verbatim(issuer: TestIssuer) -> None:
    header = b'{"alg":"RS256", "kid":"k" }'
    token = issuer.sign(header, b"not json")
    header_b64, payload_b64, _ = token.split(".")
    assert b64d(header_b64) == header and b64d(payload_b64) == b"not json"
    verify(token, issuer.public_jwk("RS256"))


def test_sign_does_not_touch_the_header(issuer: TestIssuer) -> None:
    token = issuer.sign({"alg": "ES256"}, {"sub": "x"}, alg="RS256")
    assert parts(token) == ({"alg": "ES256"}, {"sub": "x"})
    verify(token, issuer.public_jwk("RS256"))


def test_sign_alg_none_has_empty_signature(issuer: TestIssuer) -> None:
    token = issuer.sign({"alg": "none"}, {"sub": "x"}, alg="none")
    assert token.endswith(".") and token.count(".") == 2


def test_sign_hs256_with_a_secret(issuer: TestIssuer) -> None:
    secret = json.dumps(issuer.public_jwk("RS256")).encode()
    token = issuer.sign({"alg": "HS256"}, {"sub": "x"}, alg="HS256", secret=secret)
    mac = hmac.HMAC(secret, hashes.SHA256())
    mac.update(token.rsplit(".", 1)[0].encode())
    mac.verify(b64d(token.rsplit(".", 1)[1]))


# -- token endpoint ----------------------------------------------------------

GOOD = {"grant_type": "client_credentials"}


@pytest.mark.parametrize(
    "request_kwargs",
    [
        pytest.param({"data": GOOD, "auth": ("app", "s3cret")}, id="client_secret_basic"),
        pytest.param(
            {"data": {**GOOD, "client_id": "app", "client_secret": "s3cret"}},
            id="client_secret_post",
        ),
        pytest.param({"json": {**GOOD, "client_id": "app", "client_secret": "s3cret"}}, id="json"),
    ],
)
def test_token_endpoint_issues_verifiable_tokens(issuer: TestIssuer, request_kwargs: dict[str, Any]) -> None:
    response = token_request(issuer, **request_kwargs)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert "scope" not in body
    header, claims = parts(body["access_token"])
    verify(body["access_token"], published(issuer, header["kid"]))
    assert claims["iss"] == issuer.issuer
    assert claims["aud"] == issuer.audience
    assert claims["sub"] == claims["client_id"] == "app"
    assert claims["exp"] - claims["iat"] == 300


def test_basic_credentials_are_form_urlencoded_first() -> None:
    # RFC 6749 §2.3.1: "a:b" / "p ss%" are sent as "a%3Ab" / "p+ss%25".
    with TestIssuer(clients={"a:b": "p ss%"}) as issuer:
        raw = base64.b64encode(b"a%3Ab:p+ss%25").decode()
        response = token_request(issuer, data=GOOD, headers={"Authorization": "Basic " + raw})
        assert response.status_code == 200, response.text
        assert parts(response.json()["access_token"])[1]["client_id"] == "a:b"


def basic(user: str = "app", password: str = "s3cret", **form: Any) -> dict[str, Any]:
    """Request kwargs: client_secret_basic, with ``form`` over the good form."""
    return {"data": {**GOOD, **form}, "auth": (user, password)}


def post(**form: Any) -> dict[str, Any]:
    return {"data": {**GOOD, **form}}


def raw(authorization: str | None = None, body: bytes = b"", ctype: str = "") -> Any:
    headers = {"Content-Type": ctype or "application/x-www-form-urlencoded"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return {"data": body or b"grant_type=client_credentials", "headers": headers}


TWICE = b"grant_type=client_credentials&grant_type=client_credentials"
JSON = "application/json"


@pytest.mark.parametrize(
    ("request_kwargs", "status", "error", "challenge"),
    [
        pytest.param(basic(password="wrong"), 401, "invalid_client", True, id="basic-bad"),
        pytest.param(basic("nobody"), 401, "invalid_client", True, id="basic-unknown"),
        pytest.param(raw("Basic !!!"), 401, "invalid_client", True, id="basic-not-b64"),
        pytest.param(raw("Basic bm9jb2xvbg=="), 401, "invalid_client", True, id="no-colon"),
        pytest.param(
            post(client_id="app", client_secret="x"),
            401,
            "invalid_client",
            False,
            id="post-bad",
        ),
        pytest.param(
            {"json": {**GOOD, "client_id": "app", "client_secret": "x"}},
            *(401, "invalid_client", False),
            id="json-bad",
        ),
        pytest.param(post(), 401, "invalid_client", False, id="no-credentials"),
        pytest.param(raw("Bearer x"), 401, "invalid_client", False, id="other-scheme"),
        pytest.param(
            basic(grant_type="password"),
            400,
            "unsupported_grant_type",
            False,
            id="grant",
        ),
        pytest.param(basic(grant_type=None), 400, "invalid_request", False, id="no-grant"),
        pytest.param(
            basic(client_secret="s3cret"),
            400,
            "invalid_request",
            False,
            id="two-methods",
        ),
        pytest.param(basic(client_id="bob"), 400, "invalid_request", False, id="id-differs"),
        pytest.param(raw(body=TWICE), 400, "invalid_request", False, id="repeated-param"),
        pytest.param(raw(body=b"[1]", ctype=JSON), 400, "invalid_request", False, id="json-list"),
        pytest.param(raw(body=b"{", ctype=JSON), 400, "invalid_request", False, id="bad-json"),
    ],
)
def test_token_endpoint_errors(
    issuer: TestIssuer,
    request_kwargs: dict[str, Any],
    status: int,
    error: str,
    challenge: bool,
) -> None:
    response = token_request(issuer, **request_kwargs)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error and body["error_description"]
    assert "access_token" not in body
    if challenge:  # RFC 6749 §5.2: the scheme the client used
        assert response.headers["WWW-Authenticate"] == f'Basic realm="{issuer.issuer}"'
    else:
        assert "WWW-Authenticate" not in response.headers


def test_token_endpoint_requires_post(issuer: TestIssuer) -> None:
    response = requests.get(issuer.token_endpoint, timeout=TIMEOUT)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_client_claims_scope_and_audience(issuer: TestIssuer) -> None:
    issuer.add_client("reader", "pw", roles=["guest"], scope="read write")
    response = token_request(
        issuer,
        data={
            **GOOD,
            "scope": "read",
            "resource": "https://a",
            "audience": "https://b",
        },
        auth=("reader", "pw"),
    )
    body = response.json()
    assert body["scope"] == "read"
    _, claims = parts(body["access_token"])
    assert claims["roles"] == ["guest"] and claims["scope"] == "read"
    assert claims["aud"] == ["https://a", "https://b"]


def test_client_scope_is_the_default_and_the_limit(issuer: TestIssuer) -> None:
    issuer.add_client("reader", "pw", scope="read")
    body = token_request(issuer, data=GOOD, auth=("reader", "pw")).json()
    assert body["scope"] == "read"
    refused = token_request(issuer, data={**GOOD, "scope": "admin"}, auth=("reader", "pw"))
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_scope")


def test_token_alg_chooses_the_signing_key(issuer: TestIssuer) -> None:
    issuer.token_alg = "EdDSA"
    token = token_request(issuer, data=GOOD, auth=("app", "s3cret")).json()["access_token"]
    header, _ = parts(token)
    assert header["alg"] == "EdDSA"
    verify(token, published(issuer, header["kid"]))


# -- switches, counters, records ---------------------------------------------


def test_hits_count_each_endpoint(issuer: TestIssuer) -> None:
    requests.get(issuer.discovery_url, timeout=TIMEOUT)
    requests.get(issuer.oauth_metadata_url, timeout=TIMEOUT)
    for _ in range(3):
        requests.get(issuer.jwks_uri, timeout=TIMEOUT)
    token_request(issuer, data=GOOD, auth=("app", "s3cret"))
    requests.get(issuer.base_url + "/nope", timeout=TIMEOUT)
    assert issuer.hits == {
        "openid_configuration": 1,
        "oauth_metadata": 1,
        "jwks": 3,
        "token": 1,
        "other": 1,
    }


def test_requests_are_recorded_exactly(issuer: TestIssuer) -> None:
    token_request(issuer, data=GOOD, auth=("app", "s3cret"))
    requests.get(issuer.jwks_uri + "?x=1", timeout=TIMEOUT)
    post, get = issuer.requests[-2:]
    assert post.method == "POST" and post.path == "/tenant-1/token"
    assert post.body == b"grant_type=client_credentials"
    assert post.headers["Authorization"] == "Basic " + base64.b64encode(b"app:s3cret").decode()
    assert post.headers["Content-Type"] == "application/x-www-form-urlencoded"
    method, path, _, body = get
    assert (method, path, body) == ("GET", "/tenant-1/jwks?x=1", b"")


def test_requests_keep_the_last_max_recorded(issuer: TestIssuer) -> None:
    assert TestIssuer.max_recorded == 200
    issuer.max_recorded = 3
    for n in range(5):
        requests.get(f"{issuer.base_url}/x{n}", timeout=TIMEOUT)
    assert [r.path for r in issuer.requests] == ["/x2", "/x3", "/x4"]
    assert issuer.hits["other"] == 5


def test_no_cache_control_on_jwks_by_default(issuer: TestIssuer) -> None:
    response = requests.get(issuer.jwks_uri, timeout=TIMEOUT)
    assert response.headers["Content-Type"] == "application/json"
    assert "Cache-Control" not in response.headers


@pytest.mark.parametrize(
    ("switches", "status", "body_check"),
    [
        ({"jwks_status": 503}, 503, lambda r: r.json()["error"] == "server_error"),
        ({"jwks_status": 404}, 404, lambda r: "error" in r.json()),
        ({"jwks_body": b"<html>garbage"}, 200, lambda r: r.content == b"<html>garbage"),
        ({"jwks_body": b"{}", "jwks_status": 500}, 500, lambda r: r.content == b"{}"),
        (
            {"jwks_cache_control": "max-age=60"},
            200,
            lambda r: r.headers["Cache-Control"] == "max-age=60",
        ),
    ],
)
def test_jwks_switches(issuer: TestIssuer, switches: dict[str, Any], status: int, body_check: Any) -> None:
    for name, value in switches.items():
        setattr(issuer, name, value)
    response = requests.get(issuer.jwks_uri, timeout=TIMEOUT)
    assert response.status_code == status
    assert body_check(response)


def test_jwks_delay(issuer: TestIssuer) -> None:
    issuer.jwks_delay = 0.3
    with pytest.raises(requests.Timeout):
        requests.get(issuer.jwks_uri, timeout=0.1)
    assert requests.get(issuer.jwks_uri, timeout=TIMEOUT).status_code == 200


# -- lifecycle -----------------------------------------------------------------


def test_stop_frees_the_port() -> None:
    issuer = TestIssuer()
    port = int(issuer.base_url.rsplit(":", 1)[1])
    assert requests.get(issuer.jwks_uri, timeout=TIMEOUT).ok
    issuer.stop()
    issuer.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.get(issuer.jwks_uri, timeout=TIMEOUT)
    with socket.socket() as sock:  # nothing listens there any more
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_stop_interrupts_a_delayed_jwks_request() -> None:
    issuer = TestIssuer()
    issuer.jwks_delay = 30
    outcome: list[object] = []

    def fetch() -> None:
        try:
            outcome.append(requests.get(issuer.jwks_uri, timeout=60).status_code)
        except requests.RequestException as exc:
            outcome.append(type(exc))

    client = threading.Thread(target=fetch)
    client.start()
    while issuer.hits["jwks"] == 0:  # the request is in, and sleeping
        time.sleep(0.01)
    issuer.stop()
    client.join(timeout=20)  # far below the 30 s delay: only a woken sleeper ends in time
    assert not client.is_alive(), "stop() left the delayed request sleeping"
    assert len(outcome) == 1


def test_start_false_binds_the_port_but_does_not_serve() -> None:
    issuer = TestIssuer(start=False)
    try:
        with pytest.raises(requests.Timeout):
            requests.get(issuer.jwks_uri, timeout=0.2)
        issuer.start()
        assert requests.get(issuer.jwks_uri, timeout=TIMEOUT).ok
    finally:
        issuer.stop()
    with pytest.raises(RuntimeError, match="cannot be restarted"):
        issuer.start()


def test_context_manager_stops_on_exit() -> None:
    with TestIssuer(start=False) as issuer:
        assert requests.get(issuer.jwks_uri, timeout=TIMEOUT).ok
    with pytest.raises(requests.ConnectionError):
        requests.get(issuer.jwks_uri, timeout=TIMEOUT)


def test_fresh_issuers_reuse_pooled_keys() -> None:
    with TestIssuer(algorithms=("RS256", "ES256", "PS256", "EdDSA")):
        pass  # warm the pool
    generated = _POOL.generated
    for _ in range(10):
        with TestIssuer(algorithms=("RS256", "ES256", "PS256", "EdDSA")):
            pass
    assert _POOL.generated == generated, "no key generated: each issuer borrowed from the pool"


def test_not_collected_as_a_test_class() -> None:
    assert TestIssuer.__test__ is False


# -- pytest plugin -------------------------------------------------------------


def test_ccguard_issuer_fixture(ccguard_issuer: TestIssuer) -> None:
    assert ccguard_issuer.algorithms == ("RS256", "ES256", "PS256", "EdDSA")
    response = token_request(ccguard_issuer, data=GOOD, auth=("test-client", "test-secret"))
    assert response.status_code == 200


def run_python(args: list[str], cwd: Path, pythonpath: list[Path]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in pythonpath))
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_module_imports_without_pytest(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['pytest'] = None; import flask_ccguard.testing as t; "
        "assert not hasattr(t, 'ccguard_issuer'); print(t.TestIssuer)"
    )
    result = run_python(["-c", code], tmp_path, [ROOT])
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("installed", [False, True], ids=["checkout", "entry-point"])
def test_fixture_from_conftest_with_and_without_entry_point(tmp_path: Path, installed: bool) -> None:
    # The repo's conftest plus, when "installed", a dist-info that declares the
    # pytest11 entry point the way setup.cfg does: both must run the fixture.
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tests / "test_it.py").write_text(
        textwrap.dedent(f"""
        def test_it(ccguard_issuer, request):
            assert ccguard_issuer.issuer.startswith("http://127.0.0.1:")
            entry_point = request.config.pluginmanager.get_plugin("ccguard")
            assert (entry_point is not None) is {installed}
    """)
    )
    path = [ROOT]
    if installed:
        dist = tmp_path / "site" / "flask_ccguard_fake-0.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: flask-ccguard-fake\nVersion: 0\n")
        (dist / "entry_points.txt").write_text("[pytest11]\nccguard = flask_ccguard.testing.plugin\n")
        path.append(tmp_path / "site")
    # Autoload is off to keep the run fast (the venv's other plugins import
    # hypothesis); "-p ccguard" then loads the entry point by name, through
    # the same registration under "ccguard" that autoload does.
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    if installed:
        args[2:2] = ["-p", "ccguard"]
    result = run_python(args, tmp_path, path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_i15_07_profiles_come_from_a_factory_not_from_new() -> None:
    # TestIssuer(profile=...) used to return a subclass from __new__, which
    # made TestIssuer import its own subclasses (an import cycle).
    from flask_ccguard.testing.profiles import AzureV2Issuer, ProfileIssuer, profile_issuer

    assert "__new__" not in vars(TestIssuer)
    with pytest.raises(TypeError):
        TestIssuer(profile="azure_v2", start=False)  # type: ignore[call-arg]
    with profile_issuer("azure_v2") as entra, TestIssuer() as plain:
        assert type(entra) is AzureV2Issuer and isinstance(entra, ProfileIssuer)
        assert type(plain) is TestIssuer
        assert entra.issuer.endswith("/v2.0")
    with pytest.raises(ValueError, match="unknown TestIssuer profile"):
        profile_issuer("okta")
