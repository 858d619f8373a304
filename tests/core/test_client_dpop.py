"""The token client with DPoP (RFC 9449 §5, §7.1, §8, §9) and mTLS (RFC 8705 §2), against loopback servers.

Issue 16 item 4. Proofs the client makes are verified with joserfc, an
independent JOSE implementation, not only by our own code.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jws
from joserfc.jwk import JWKRegistry

from flask_ccguard import ConfigurationError
from flask_ccguard.client import ClientCredentials, TokenRequestError
from flask_ccguard.client.dpop import DPoPKey
from flask_ccguard.testing import TestIssuer
from tests.core.conftest import Reply, Seen

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def b64json(part: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return doc


def import_jwk(jwk: dict[str, Any]) -> Any:
    return JWKRegistry.import_key(jwk)


def verified(proof: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of ``proof``, its signature checked by joserfc with the embedded jwk."""
    header = b64json(proof.split(".")[0])
    jwk = header["jwk"]
    assert not PRIVATE_MEMBERS & set(jwk), "RFC 9449 §4.2: the jwk must not hold private members"
    key = import_jwk(jwk)
    registry = jws.JWSRegistry(algorithms=[header["alg"]], strict_check_header=False)
    registry.max_header_length = 4096  # an RSA jwk in the header is longer than joserfc's default cap
    obj = jws.deserialize_compact(proof, key, registry=registry)
    return header, json.loads(obj.payload)


def ath(token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


def header(seen: Seen, name: str) -> str | None:
    return next((v for k, v in seen.headers.items() if k.lower() == name.lower()), None)


@pytest.fixture
def issuer() -> Iterator[TestIssuer]:
    with TestIssuer(clients={"app": "secret"}) as iss:
        yield iss


def ok(seen: Seen) -> Reply:
    return 200, {}, b"{}"


# -- proofs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(None, id="i16_04_rfc9449_4_2_es256_default"),
        pytest.param(ec.generate_private_key(ec.SECP384R1()), id="i16_04_rfc9449_4_2_es384"),
        pytest.param(rsa.generate_private_key(65537, 2048), id="i16_04_rfc9449_4_2_ps256"),
        pytest.param(ed25519.Ed25519PrivateKey.generate(), id="i16_04_rfc9449_4_2_eddsa"),
    ],
)
def test_i16_04_proofs_verify_with_joserfc(key: Any) -> None:
    dpop = DPoPKey(key)
    proof = dpop.proof("get", "https://API.example:8443/a/b?q=1#f", token="tok-1", nonce="n-1")
    head, claims = verified(proof)
    assert head["typ"] == "dpop+jwt" and head["alg"] == dpop.alg
    assert claims["htm"] == "GET" and claims["htu"] == "https://API.example:8443/a/b"
    assert claims["ath"] == ath("tok-1") and claims["nonce"] == "n-1"
    assert isinstance(claims["iat"], int) and len(claims["jti"]) >= 16
    assert import_jwk(head["jwk"]).thumbprint() == dpop.thumbprint  # RFC 7638, by joserfc


def test_i16_04_default_key_is_p256_es256_and_per_client(issuer: TestIssuer) -> None:
    a = ClientCredentials(issuer.token_endpoint, "app", "secret", dpop=True)
    b = ClientCredentials(issuer.token_endpoint, "app", "secret", dpop=True)
    assert a.dpop_key is not None and b.dpop_key is not None
    assert a.dpop_key.alg == "ES256" and a.dpop_key.jwk["crv"] == "P-256"
    assert a.dpop_key.thumbprint != b.dpop_key.thumbprint
    assert not PRIVATE_MEMBERS & set(a.dpop_key.jwk) and "PRIVATE" not in repr(a) + repr(a.dpop_key)


@pytest.mark.parametrize(
    "dpop",
    [
        pytest.param("yes", id="i16_04_not_a_key"),
        pytest.param(ec.generate_private_key(ec.SECP256K1()), id="i16_04_secp256k1"),
        pytest.param(rsa.generate_private_key(65537, 1024), id="i16_04_rsa_1024"),
    ],
)
def test_i16_04_a_wrong_dpop_key_fails_at_start_up(issuer: TestIssuer, dpop: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"DPoP|dpop"):
        ClientCredentials(issuer.token_endpoint, "app", "secret", dpop=dpop)


# -- the token request (RFC 9449 §5, §8) ---------------------------------------------------


def test_i16_04_rfc9449_5_token_request_carries_a_proof_and_gets_a_bound_token(issuer: TestIssuer) -> None:
    client = ClientCredentials(issuer.token_endpoint, "app", "secret", dpop=True)
    token = client.token()
    assert client.token_response()["token_type"] == "DPoP"
    assert client.dpop_key is not None
    assert b64json(token.split(".")[1])["cnf"] == {"jkt": client.dpop_key.thumbprint}
    sent = [r for r in issuer.requests if r.path.endswith("/token")][-1]
    _, claims = verified(header(Seen(*sent), "DPoP") or "")
    assert claims["htm"] == "POST" and claims["htu"] == issuer.token_endpoint and "ath" not in claims


def test_i16_04_rfc9449_8_token_endpoint_nonce_one_retry_then_remembered() -> None:
    with TestIssuer(clients={"app": "secret"}, dpop_nonce=True) as iss:
        client = ClientCredentials(iss.token_endpoint, "app", "secret", dpop=True)
        client.token()
        assert client.requests_sent == 2  # use_dpop_nonce, then with the nonce
        proofs = [header(Seen(*r), "DPoP") or "" for r in iss.requests]
        assert "nonce" not in verified(proofs[-2])[1]
        assert verified(proofs[-1])[1]["nonce"] == iss.dpop.nonce
        client.invalidate()
        client.token()
        assert client.requests_sent == 3  # the remembered nonce is sent at once


def test_i16_04_rfc9449_8_token_endpoint_nonce_is_retried_once_only(recorder: Any) -> None:
    count = iter(range(100))

    def always_nonce(seen: Seen) -> Reply:
        body = json.dumps({"error": "use_dpop_nonce", "error_description": "nonce"}).encode()
        return 400, {"DPoP-Nonce": f"n{next(count)}"}, body

    as_ = recorder(always_nonce)
    client = ClientCredentials(as_.url + "/token", "app", "secret", dpop=True)
    with pytest.raises(TokenRequestError) as info:
        client.token()
    assert info.value.error == "use_dpop_nonce"
    assert len(as_.seen) == 2


def test_i16_04_rfc9449_5_bearer_answer_to_a_dpop_request_is_refused(recorder: Any) -> None:
    as_ = recorder(lambda s: (200, {}, json.dumps({"access_token": "t", "token_type": "Bearer"}).encode()))
    client = ClientCredentials(as_.url + "/token", "app", "secret", dpop=True)
    with pytest.raises(TokenRequestError, match="DPoP-bound") as info:
        client.token()
    assert info.value.hint is not None and "dpop" in info.value.hint


# -- the resource request (RFC 9449 §7.1, §9) ---------------------------------------------


def test_i16_04_rfc9449_7_1_fresh_proof_for_every_request(issuer: TestIssuer, recorder: Any) -> None:
    api = recorder(ok)
    client = ClientCredentials(issuer.token_endpoint, "app", "secret", dpop=True)
    with requests.Session() as s:
        s.get(api.url + "/assets?page=2#x", auth=client, timeout=5)
        s.post(api.url + "/assets", json={}, auth=client, timeout=5)
    token = client.token()
    jtis = set()
    for seen, method in zip(api.seen, ("GET", "POST")):
        assert header(seen, "Authorization") == f"DPoP {token}"
        _, claims = verified(header(seen, "DPoP") or "")
        assert claims["htm"] == method and claims["htu"] == api.url + "/assets"  # no query, no fragment
        assert claims["ath"] == ath(token)
        jtis.add(claims["jti"])
    assert len(jtis) == 2


def nonce_resource(nonce: str, *, always: bool = False) -> Callable[[Seen], Reply]:
    def reply(seen: Seen) -> Reply:
        proof = header(seen, "DPoP") or ".e30."
        if always or b64json(proof.split(".")[1]).get("nonce") != nonce:
            challenge = 'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"'
            return 401, {"WWW-Authenticate": challenge, "DPoP-Nonce": nonce}, b"{}"
        return 200, {}, b"{}"

    return reply


def test_i16_04_rfc9449_9_resource_nonce_one_retry_then_remembered(issuer: TestIssuer, recorder: Any) -> None:
    api = recorder(nonce_resource("rs-nonce-1"))
    client = ClientCredentials(issuer.token_endpoint, "app", "secret", dpop=True)
    assert requests.get(api.url + "/a", auth=client, timeout=5).status_code == 200
    assert len(api.seen) == 2
    first, second = (verified(header(s, "DPoP") or "")[1] for s in api.seen)
    assert "nonce" not in first and second["nonce"] == "rs-nonce-1" and first["jti"] != second["jti"]
    assert requests.get(api.url + "/b", auth=client, timeout=5).status_code == 200
    assert len(api.seen) == 3  # the nonce was remembered for the origin
    assert client.requests_sent == 1  # use_dpop_nonce does not cost a new token


def test_i16_04_rfc9449_9_resource_nonce_is_retried_once_only(issuer: TestIssuer, recorder: Any) -> None:
    api = recorder(nonce_resource("n", always=True))
    client = ClientCredentials(issuer.token_endpoint, "app", "secret", dpop=True)
    assert requests.get(api.url + "/a", auth=client, timeout=5).status_code == 401
    assert len(api.seen) == 2


def test_i16_04_rfc9449_7_1_invalid_token_under_dpop_renews_once(issuer: TestIssuer, recorder: Any) -> None:
    calls = iter(range(100))

    def expired_first(seen: Seen) -> Reply:
        if next(calls) == 0:
            return 401, {"WWW-Authenticate": 'DPoP error="invalid_token", algs="ES256"'}, b"{}"
        return 200, {}, b"{}"

    api = recorder(expired_first)
    client = ClientCredentials(issuer.token_endpoint, "app", "secret", dpop=True)
    assert requests.get(api.url + "/a", auth=client, timeout=5).status_code == 200
    first, second = (header(s, "Authorization") for s in api.seen)
    assert first != second and client.requests_sent == 2


def redirect_to(target: str) -> Callable[[Seen], Reply]:
    return lambda seen: (302, {"Location": target}, b"{}")


def test_i16_04_r2_02_no_token_or_proof_to_another_origin(issuer: TestIssuer, recorder: Any) -> None:
    elsewhere = recorder(nonce_resource("evil"))  # would ask for a nonce retry, with our token
    api = recorder(redirect_to(elsewhere.url + "/steal"))
    client = ClientCredentials(issuer.token_endpoint, "app", "secret", dpop=True)
    requests.get(api.url + "/a", auth=client, timeout=5)
    assert len(elsewhere.seen) == 1  # no retry on another origin
    assert header(elsewhere.seen[0], "Authorization") is None
    assert header(elsewhere.seen[0], "DPoP") is None
    assert client.nonce_for(("http", "127.0.0.1", int(elsewhere.url.rsplit(":", 1)[1]))) is None


def test_i16_04_rfc9449_4_2_same_origin_redirect_gets_a_proof_for_the_new_url(
    issuer: TestIssuer, recorder: Any
) -> None:
    api = recorder(lambda seen: redirect_to("/moved?x=1")(seen) if seen.path == "/a" else ok(seen))
    client = ClientCredentials(issuer.token_endpoint, "app", "secret", dpop=True)
    assert requests.post(api.url + "/a", auth=client, timeout=5).status_code == 200
    first, second = (verified(header(s, "DPoP") or "")[1] for s in api.seen)
    assert (first["htm"], first["htu"]) == ("POST", api.url + "/a")
    assert (second["htm"], second["htu"]) == ("GET", api.url + "/moved")  # 302 POST -> GET, as requests does
    assert first["jti"] != second["jti"]


def test_i16_04_bearer_client_sends_no_proof(issuer: TestIssuer, recorder: Any) -> None:
    api = recorder(ok)
    client = ClientCredentials(issuer.token_endpoint, "app", "secret")
    requests.get(api.url + "/a", auth=client, timeout=5)
    assert header(api.seen[0], "DPoP") is None
    assert (header(api.seen[0], "Authorization") or "").startswith("Bearer ")


def test_i16_04_rfc9449_8_nonces_are_kept_for_a_bounded_number_of_origins(issuer: TestIssuer) -> None:
    client = ClientCredentials(issuer.token_endpoint, "app", "secret", dpop=True)
    for port in range(100):
        client.remember_nonce(("https", "api.example", port), f"n{port}")
    assert client.nonce_for(("https", "api.example", 0)) is None  # the oldest were dropped
    assert client.nonce_for(("https", "api.example", 99)) == "n99"
    assert len(client._nonces) == 64
    client.remember_nonce(("https", "big.example", 443), "x" * 513)
    client.remember_nonce(("https", "ctl.example", 443), "a\nb")
    assert client.nonce_for(("https", "big.example", 443)) is None
    assert client.nonce_for(("https", "ctl.example", 443)) is None
