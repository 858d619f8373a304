"""DPoP at the resource server (RFC 9449), issue 16 item 1: proofs, replay, nonces, htu."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import random
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_ccguard.core.dpop import (
    DEFAULT_DPOP_ALGORITHMS,
    MAX_PROOF_BYTES,
    DPoPVerifier,
    jwk_thumbprint,
    refuse_bound_bearer,
    single_proof,
    token_jkt,
)
from flask_ccguard.core.dpop_nonce import HmacNonceSource
from flask_ccguard.core.errors import (
    CCGuardError,
    ConfigurationError,
    InvalidDPoPProof,
    InvalidToken,
    UseDPoPNonce,
)
from flask_ccguard.core.replay import ReplayMemoryStore, ReplayStoreFull
from flask_ccguard.core.replay_store import ReplayStoreUnavailable
from flask_ccguard.core.request_url import (
    effective_request_url,
    normalize_url,
    parse_public_base_url,
    parse_trusted_proxies,
)
from flask_ccguard.responses import challenges

NOW = 1_800_000_000.0
URL = "https://api.example.com/items"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjbGllbnQifQ.c2ln"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(obj: Any) -> str:
    return b64(json.dumps(obj).encode())


def _int(value: int, size: int | None = None) -> str:
    size = size or (value.bit_length() + 7) // 8
    return b64(value.to_bytes(size, "big"))


class Signer:
    """A client key that signs proofs; test code uses cryptography directly."""

    def __init__(self, alg: str, rsa_bits: int = 2048) -> None:
        self.alg = alg
        self.key: Any
        if alg.startswith(("RS", "PS")):
            self.key = rsa.generate_private_key(65537, rsa_bits)
            nums = self.key.public_key().public_numbers()
            self.jwk = {"kty": "RSA", "n": _int(nums.n), "e": _int(nums.e)}
        elif alg.startswith("ES"):
            curve, crv, size = {
                "ES256": (ec.SECP256R1(), "P-256", 32),
                "ES384": (ec.SECP384R1(), "P-384", 48),
                "ES512": (ec.SECP521R1(), "P-521", 66),
            }[alg]
            self.size = size
            self.key = ec.generate_private_key(curve)
            nums = self.key.public_key().public_numbers()
            self.jwk = {"kty": "EC", "crv": crv, "x": _int(nums.x, size), "y": _int(nums.y, size)}
        else:
            self.key = ed25519.Ed25519PrivateKey.generate()
            raw = self.key.public_key().public_bytes_raw()
            self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}

    def sign(self, signing_input: bytes, alg: str | None = None) -> bytes:
        alg = alg or self.alg
        hash_alg = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}.get(alg[-3:])
        if alg == "EdDSA":
            return bytes(self.key.sign(signing_input))
        assert hash_alg is not None
        if alg.startswith("RS"):
            return bytes(self.key.sign(signing_input, padding.PKCS1v15(), hash_alg))
        if alg.startswith("PS"):
            pss = padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=hash_alg.digest_size)
            return bytes(self.key.sign(signing_input, pss, hash_alg))
        r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hash_alg)))
        return r.to_bytes(self.size, "big") + s.to_bytes(self.size, "big")

    @property
    def jkt(self) -> str:
        return jwk_thumbprint(self.jwk)


SIGNERS = {alg: Signer(alg) for alg in ("ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA")}
ES = SIGNERS["ES256"]
OTHER = Signer("ES256")


def ath(token: str = TOKEN) -> str:
    return b64(hashlib.sha256(token.encode()).digest())


def make_proof(
    signer: Signer = ES,
    *,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    sign_with: Signer | None = None,
) -> str:
    h: dict[str, Any] = {"typ": "dpop+jwt", "alg": signer.alg, "jwk": signer.jwk}
    c: dict[str, Any] = {"jti": uuid.uuid4().hex, "htm": "GET", "htu": URL, "iat": int(NOW), "ath": ath()}
    h.update(header or {})
    c.update(claims or {})
    for name in drop:
        h.pop(name, None)
        c.pop(name, None)
    signing_input = f"{b64json(h)}.{b64json(c)}".encode()
    return signing_input.decode() + "." + b64((sign_with or signer).sign(signing_input))


def verifier(**options: Any) -> DPoPVerifier:
    options.setdefault("clock", lambda: NOW)
    return DPoPVerifier(**options)


def verify(proof: str, v: DPoPVerifier | None = None, **request: Any) -> Any:
    request.setdefault("method", "GET")
    request.setdefault("url", URL)
    request.setdefault("access_token", TOKEN)
    request.setdefault("jkt", ES.jkt)
    return (v or verifier()).verify(proof, **request)


# --- accepted proofs ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg", sorted(SIGNERS), ids=lambda a: f"RFC9449-4.3-valid-{a}")
def test_valid_proof_is_accepted_and_returns_its_thumbprint(alg: str) -> None:
    signer = SIGNERS[alg]
    result = verify(make_proof(signer, claims={"jti": "j-1"}), jkt=signer.jkt)
    assert (result.jkt, result.jti, result.htm, result.iat) == (signer.jkt, "j-1", "GET", NOW)


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"iat": int(NOW) - 60}, id="RFC9449-11.1-iat-oldest-accepted"),
        pytest.param({"iat": int(NOW) + 10}, id="RFC9449-11.1-iat-newest-accepted"),
        pytest.param({"iat": NOW - 0.5}, id="RFC7519-2-iat-fractional"),
        pytest.param({"htu": URL + "?page=2#top"}, id="RFC9449-4.3-htu-query-fragment-ignored"),
        pytest.param({"htu": "HTTPS://API.example.com:443/items"}, id="RFC9449-4.3-htu-normalised"),
        pytest.param({"nonce": "abc"}, id="RFC9449-4.2-unrequested-nonce-ignored"),
    ],
)
def test_proof_variants_that_are_accepted(claims: dict[str, Any]) -> None:
    verify(make_proof(claims=claims))


def test_rfc7638_3_1_thumbprint_example() -> None:
    # The RFC 7638 §3.1 example key and its thumbprint.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


# --- refused proofs: one row per rule ----------------------------------------------------------

REFUSED: list[Any] = [
    # §4.2 / §4.3 step 4: explicit typing
    ({"drop": ("typ",)}, "bad_typ", "RFC9449-4.3-typ-missing"),
    ({"header": {"typ": "JWT"}}, "bad_typ", "RFC9449-4.3-typ-jwt"),
    ({"header": {"typ": ["dpop+jwt"]}}, "bad_typ", "RFC9449-4.3-typ-not-string"),
    # §4.3 step 5: asymmetric algorithm from the allowlist
    ({"header": {"alg": "none"}}, "bad_alg", "RFC9449-4.3-alg-none"),
    ({"header": {"alg": "HS256"}}, "bad_alg", "RFC9449-4.3-alg-HS256"),
    ({"header": {"alg": "RS512"}, "signer": "RS256"}, "bad_alg", "RFC9449-4.3-alg-not-allowed"),
    ({"header": {"alg": ["ES256"]}}, "bad_alg", "RFC9449-4.3-alg-not-string"),
    ({"header": {"crit": ["exp"]}}, "bad_header", "RFC7515-4.1.11-crit"),
    # §4.3 step 7: a public key, usable for alg
    ({"drop": ("jwk",)}, "bad_jwk", "RFC9449-4.3-jwk-missing"),
    ({"header": {"jwk": "key"}}, "bad_jwk", "RFC9449-4.3-jwk-not-object"),
    ({"header": {"jwk": {**ES.jwk, "d": "AAAA"}}}, "bad_jwk", "RFC9449-4.3-jwk-private-d"),
    ({"header": {"jwk": {"kty": "oct", "k": "c2VjcmV0"}}}, "bad_jwk", "RFC9449-4.3-jwk-symmetric"),
    ({"header": {"alg": "RS256"}}, "bad_jwk", "RFC9449-4.3-jwk-type-does-not-fit-alg"),
    ({"header": {"jwk": {**ES.jwk, "alg": "ES384"}}}, "bad_jwk", "RFC7517-4.4-jwk-alg-differs"),
    # §4.3 step 6: signature with the embedded key
    ({"sign_with": OTHER}, "bad_signature", "RFC9449-4.3-signature-other-key"),
    # §4.2: required claims
    ({"drop": ("jti",)}, "bad_jti", "RFC9449-4.2-jti-missing"),
    ({"claims": {"jti": 42}}, "bad_jti", "RFC9449-4.2-jti-not-string"),
    ({"claims": {"jti": ""}}, "bad_jti", "RFC9449-4.2-jti-empty"),
    ({"claims": {"jti": "x" * 257}}, "bad_jti", "RFC9449-4.2-jti-too-long"),
    ({"drop": ("htm",)}, "htm_mismatch", "RFC9449-4.3-htm-missing"),
    ({"claims": {"htm": "POST"}}, "htm_mismatch", "RFC9449-4.3-htm-other-method"),
    ({"claims": {"htm": "get"}}, "htm_mismatch", "RFC9449-4.3-htm-case"),
    ({"drop": ("htu",)}, "htu_mismatch", "RFC9449-4.3-htu-missing"),
    ({"claims": {"htu": "https://api.example.com/other"}}, "htu_mismatch", "RFC9449-4.3-htu-other-path"),
    ({"claims": {"htu": "https://evil.example/items"}}, "htu_mismatch", "RFC9449-4.3-htu-other-host"),
    ({"claims": {"htu": "http://api.example.com/items"}}, "htu_mismatch", "RFC9449-4.3-htu-other-scheme"),
    ({"claims": {"htu": "https://api.example.com:8443/items"}}, "htu_mismatch", "RFC9449-4.3-htu-other-port"),
    ({"claims": {"htu": "/items"}}, "htu_mismatch", "RFC9449-4.3-htu-relative"),
    ({"claims": {"htu": 1}}, "htu_mismatch", "RFC9449-4.3-htu-not-string"),
    ({"claims": {"htu": "https://api.example.com/it\tems"}}, "htu_mismatch", "RFC3986-2-htu-tab"),
    ({"drop": ("iat",)}, "bad_iat", "RFC9449-4.2-iat-missing"),
    ({"claims": {"iat": str(int(NOW))}}, "bad_iat", "RFC9449-4.2-iat-string"),
    ({"claims": {"iat": True}}, "bad_iat", "RFC9449-4.2-iat-bool"),
    ({"claims": {"iat": int(NOW) - 61}}, "iat_window", "RFC9449-11.1-iat-too-old"),
    ({"claims": {"iat": int(NOW) + 11}}, "iat_window", "RFC9449-11.1-iat-in-future"),
    ({"drop": ("ath",)}, "ath_mismatch", "RFC9449-4.3-ath-missing"),
    ({"claims": {"ath": ath("another-token")}}, "ath_mismatch", "RFC9449-4.3-ath-other-token"),
    ({"claims": {"ath": 5}}, "ath_mismatch", "RFC9449-4.3-ath-not-string"),
    ({"claims": {"ath": ath() + "="}}, "ath_mismatch", "RFC9449-4.2-ath-padded"),
    ({"jkt": OTHER.jkt}, "jkt_mismatch", "RFC9449-6.1-jkt-other-key"),
    ({"claims": {"nonce": 7}}, "bad_nonce", "RFC9449-4.2-nonce-not-string"),
]


@pytest.mark.parametrize(("case", "reason"), [r[:2] for r in REFUSED], ids=[r[2] for r in REFUSED])
def test_proof_breaking_a_rule_is_refused(case: dict[str, Any], reason: str) -> None:
    case = dict(case)
    jkt = case.pop("jkt", ES.jkt)
    signer = SIGNERS[case.pop("signer", "ES256")]
    proof = make_proof(signer, **case)
    with pytest.raises(InvalidDPoPProof) as info:
        verify(proof, jkt=jkt if signer is ES else signer.jkt)
    assert info.value.reason == reason
    assert info.value.status == 401 and info.value.error == "invalid_dpop_proof"
    assert info.value.scheme == "DPoP"


def test_rfc9449_4_3_proof_signed_with_the_key_it_names_but_refused_alg_is_not_verified() -> None:
    with pytest.raises(ConfigurationError):
        DPoPVerifier(algorithms=["HS256"])
    with pytest.raises(ConfigurationError):
        DPoPVerifier(algorithms=["none"])
    assert "none" not in DEFAULT_DPOP_ALGORITHMS and not any(a.startswith("HS") for a in DEFAULT_DPOP_ALGORITHMS)


def test_rfc9449_7_1_unbound_token_skips_only_the_binding_check() -> None:
    assert verify(make_proof(OTHER), jkt=None).jkt == OTHER.jkt


# --- replay (§11.1) ----------------------------------------------------------------------------


def test_rfc9449_11_1_same_jti_twice_is_refused() -> None:
    v = verifier()
    proof = make_proof(claims={"jti": "once"})
    verify(proof, v)
    with pytest.raises(InvalidDPoPProof) as info:
        verify(proof, v)
    assert info.value.reason == "replayed"


def test_rfc9449_11_1_same_jti_from_another_key_is_accepted() -> None:
    v = verifier()
    verify(make_proof(claims={"jti": "shared"}), v)
    verify(make_proof(OTHER, claims={"jti": "shared"}), v, jkt=OTHER.jkt)


def test_rfc9449_11_1_jti_is_burned_only_after_every_other_check() -> None:
    v = verifier(nonce_source=HmacNonceSource(b"k" * 32, clock=lambda: NOW))
    for bad in (
        make_proof(claims={"jti": "late", "ath": ath("x")}),
        make_proof(claims={"jti": "late"}),  # no nonce: use_dpop_nonce
    ):
        with pytest.raises(InvalidDPoPProof):
            verify(bad, v)
    nonce = HmacNonceSource(b"k" * 32, clock=lambda: NOW).current()
    verify(make_proof(claims={"jti": "late", "nonce": nonce}), v)


def test_spring_18120_verifiers_sharing_a_store_refuse_a_replay_across_processes() -> None:
    store = ReplayMemoryStore()
    proof = make_proof()
    verify(proof, verifier(replay_store=store))
    with pytest.raises(InvalidDPoPProof, match="already been used"):
        verify(proof, verifier(replay_store=store))


def test_rfc9449_11_1_replay_key_is_a_hash_and_ttl_covers_the_window() -> None:
    seen: list[tuple[bytes, float]] = []

    class Recording:
        def add_if_absent(self, key: bytes, value: bytes, ttl: float) -> bool:
            seen.append((key, ttl))
            return True

    verify(make_proof(claims={"jti": "J" * 200, "iat": int(NOW) - 20}), verifier(replay_store=Recording()))
    ((key, ttl),) = seen
    assert len(key) == 32 and b"JJJJ" not in key
    assert 40 <= ttl <= 42  # accepted until iat + 60 s


def test_replay_store_expiry_and_size_bound() -> None:
    now = [0.0]
    store = ReplayMemoryStore(max_entries=2, clock=lambda: now[0])
    assert store.add_if_absent(b"a", b"1", 10) and not store.add_if_absent(b"a", b"1", 10)
    assert store.add_if_absent(b"b", b"1", 10)
    with pytest.raises(ReplayStoreFull):
        store.add_if_absent(b"c", b"1", 10)
    now[0] = 10.5
    assert store.add_if_absent(b"a", b"1", 10) and store.add_if_absent(b"c", b"1", 10)
    assert len(store.data) == 2


def test_rfc9449_11_1_full_replay_store_refuses_rather_than_forgets() -> None:
    v = verifier(replay_store=ReplayMemoryStore(max_entries=1))
    verify(make_proof(), v)
    with pytest.raises(ReplayStoreUnavailable) as info:
        verify(make_proof(), v)
    assert info.value.reason == "replay_store_full" and info.value.status == 503


# --- nonces (§9) -------------------------------------------------------------------------------

SECRET = b"s" * 32


def nonce_verifier(at: float = NOW) -> DPoPVerifier:
    return verifier(nonce_source=HmacNonceSource(SECRET, step=300, clock=lambda: at))


def test_rfc9449_9_missing_nonce_asks_for_one() -> None:
    with pytest.raises(UseDPoPNonce) as info:
        verify(make_proof(), nonce_verifier())
    error = info.value
    current = HmacNonceSource(SECRET, clock=lambda: NOW).current()
    assert error.nonce == current and error.headers() == {"DPoP-Nonce": current}
    assert (error.status, error.error) == (401, "use_dpop_nonce")
    assert challenges(error, (("DPoP", {}), ("Bearer", {})))[0].startswith('DPoP error="use_dpop_nonce"')


@pytest.mark.parametrize(
    ("issued_at", "accepted"),
    [
        pytest.param(NOW, True, id="RFC9449-9-current-step"),
        pytest.param(NOW - 300, True, id="RFC9449-9-previous-step"),
        pytest.param(NOW - 600, False, id="RFC9449-9-stale-two-steps"),
        pytest.param(NOW + 300, False, id="RFC9449-9-future-step"),
    ],
)
def test_rfc9449_9_nonce_rotation(issued_at: float, accepted: bool) -> None:
    nonce = HmacNonceSource(SECRET, step=300, clock=lambda: issued_at).current()
    proof = make_proof(claims={"nonce": nonce})
    if accepted:
        result = verify(proof, nonce_verifier())
        assert result.nonce == nonce
        # RFC 9449 §8.2: a proof with the previous nonce is told the current one.
        current = HmacNonceSource(SECRET, step=300, clock=lambda: NOW).current()
        assert result.next_nonce == (None if issued_at == NOW else current)
    else:
        with pytest.raises(UseDPoPNonce) as info:
            verify(proof, nonce_verifier())
        assert info.value.reason == "stale_nonce" and info.value.nonce != nonce


@pytest.mark.parametrize("nonce", [["x"], "x" * 32, "é" * 32, ""], ids=lambda n: f"RFC9449-9-bad-nonce-{n!r:.8}")
def test_rfc9449_9_foreign_nonce_asks_for_a_fresh_one(nonce: Any) -> None:
    with pytest.raises(UseDPoPNonce):
        verify(make_proof(claims={"nonce": nonce}), nonce_verifier())


def test_rfc9449_9_short_secret_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="at least 32"):
        HmacNonceSource(b"short")


# --- errors ------------------------------------------------------------------------------------


def test_rfc9449_7_1_invalid_proof_challenge_uses_the_dpop_scheme() -> None:
    error = InvalidDPoPProof('bad "x"')
    assert isinstance(error, CCGuardError)
    assert challenges(error, (("Bearer", {}), ("DPoP", {})), {"realm": "api"}) == [
        'Bearer realm="api"',
        'DPoP realm="api", error="invalid_dpop_proof", error_description="bad ?x?"',
    ]
    assert error.to_dict() == {"error": "invalid_dpop_proof", "error_description": 'bad "x"'}


def test_rfc9449_7_2_bound_token_sent_as_bearer_is_refused() -> None:
    with pytest.raises(InvalidToken) as info:
        refuse_bound_bearer({"cnf": {"jkt": ES.jkt}})
    assert info.value.reason == "dpop_bound_as_bearer"
    refuse_bound_bearer({"cnf": {"x5t#S256": "abc"}})
    refuse_bound_bearer({})


@pytest.mark.parametrize("cnf", [["jkt"], {"jkt": 5}, {"jkt": ""}], ids=["cnf-list", "jkt-int", "jkt-empty"])
def test_rfc7800_3_1_malformed_cnf_is_an_invalid_token(cnf: Any) -> None:
    with pytest.raises(InvalidToken):
        token_jkt({"cnf": cnf})


def test_auth0_1_9_2_extra_cnf_members() -> None:
    claims = {"cnf": {"jkt": ES.jkt, "kc-jkt-type": "dpop", "x5t#S256": "abc"}}
    assert verify(make_proof(), jkt=token_jkt(claims)).jkt == ES.jkt


@pytest.mark.parametrize(
    "values",
    [None, [], [""], ["a.b.c", "d.e.f"], ["a.b.c, d.e.f"]],
    ids=["RFC9449-4.3-none", "RFC9449-4.3-empty-list", "RFC9449-4.3-blank", "RFC9449-4.3-two", "RFC9449-4.3-joined"],
)
def test_rfc9449_4_3_exactly_one_dpop_header(values: Any) -> None:
    with pytest.raises(InvalidDPoPProof):
        single_proof(values)


def test_rfc9449_4_3_single_header_is_returned() -> None:
    assert single_proof(["a.b.c"]) == single_proof(" a.b.c ") == "a.b.c"


# --- malformed proofs and keys never give another exception -------------------------------------


def _with_header(header: Any, signer: Signer = ES) -> str:
    payload = b64json({"jti": "m", "htm": "GET", "htu": URL, "iat": int(NOW), "ath": ath()})
    h = header if isinstance(header, str) else b64json(header)
    signing_input = f"{h}.{payload}".encode()
    return signing_input.decode() + "." + b64(signer.sign(signing_input, "ES256"))


def _rsa_jwk(bits: int) -> dict[str, str]:
    nums = rsa.generate_private_key(65537, bits).public_key().public_numbers()
    return {"kty": "RSA", "n": _int(nums.n), "e": _int(nums.e)}


MALFORMED_JWKS: list[Any] = [
    pytest.param({}, id="empty"),
    pytest.param({"kty": ["EC"]}, id="kty-list"),
    pytest.param({"kty": "EC", "crv": "P-256", "x": 5, "y": ES.jwk["y"]}, id="x-int"),
    pytest.param({**ES.jwk, "x": "!!!"}, id="x-not-base64"),
    pytest.param({**ES.jwk, "x": ES.jwk["x"] + "="}, id="x-padded"),
    pytest.param({**ES.jwk, "x": ES.jwk["x"][:-2]}, id="x-short"),
    pytest.param({**ES.jwk, "y": b64(b"\x01" * 32)}, id="ec-point-off-curve"),
    pytest.param({**ES.jwk, "x": ES.jwk["y"], "y": ES.jwk["x"]}, id="keycloak-49440-ec-xy-swapped"),
    pytest.param({**ES.jwk, "crv": "P-999"}, id="crv-unknown"),
    pytest.param({**ES.jwk, "crv": {"a": 1}}, id="crv-object"),
    pytest.param({**ES.jwk, "use": "enc"}, id="use-enc"),
    pytest.param({**ES.jwk, "key_ops": "verify"}, id="key-ops-string"),
    pytest.param({**ES.jwk, "p": "AQAB"}, id="private-p"),
    pytest.param({**ES.jwk, "alg": ["ES256"]}, id="alg-list"),
    pytest.param({"kty": "RSA", "n": "AQAB", "e": "AQAB"}, id="rsa-tiny"),
    pytest.param(_rsa_jwk(1024), id="rsa-1024"),
    pytest.param({**SIGNERS["RS256"].jwk, "n": "AA" + SIGNERS["RS256"].jwk["n"]}, id="rsa-leading-zero"),
    pytest.param({**SIGNERS["RS256"].jwk, "e": "Ag"}, id="rsa-even-exponent"),
    pytest.param({"kty": "OKP", "crv": "Ed25519", "x": b64(b"\x01" + b"\x00" * 31)}, id="ed25519-small-order"),
    pytest.param({"kty": "OKP", "crv": "Ed25519", "x": b64(b"\x00" * 16)}, id="ed25519-short"),
    pytest.param({"kty": "OKP", "crv": "X25519", "x": b64(b"\x09" * 32)}, id="okp-x25519"),
]


@pytest.mark.parametrize("jwk", MALFORMED_JWKS)
def test_better_auth_10039_malformed_jwk(jwk: Any) -> None:
    with pytest.raises(InvalidDPoPProof) as info:
        verify(_with_header({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}))
    assert info.value.reason == "bad_jwk"


_VALID = make_proof(claims={"jti": "fuzz"})
_rng = random.Random(9449)
_MUTATIONS = []
for _ in range(40):
    i = _rng.randrange(len(_VALID))
    # Never the character already there: the mutation must change the proof.
    char = _rng.choice([c for c in "A_-.=+/ \x00é," if c != _VALID[i]])
    _MUTATIONS.append(_VALID[:i] + char + _VALID[i + 1 :])

MALFORMED_PROOFS: list[Any] = [
    pytest.param("", id="RFC7515-7.1-empty"),
    pytest.param("abc", id="RFC7515-7.1-one-segment"),
    pytest.param("a.b", id="RFC7515-7.1-two-segments"),
    pytest.param("..", id="RFC7515-7.1-empty-segments"),
    pytest.param("a.b.c.d.e", id="RFC7516-jwe"),
    pytest.param(_VALID + "." + _VALID, id="RFC7515-7.1-too-many-segments"),
    pytest.param(_VALID.rsplit(".", 1)[0] + ".", id="RFC7515-7.1-unsigned"),
    pytest.param("é.é.é", id="RFC7515-7.1-non-ascii"),
    pytest.param(b"\xff.\xff.\xff", id="RFC7515-7.1-bytes"),
    pytest.param(None, id="RFC7515-7.1-none"),
    pytest.param(12, id="RFC7515-7.1-int"),
    pytest.param("A" * (MAX_PROOF_BYTES + 1), id="RFC9449-4.3-too-large"),
    pytest.param(_VALID + "," + _VALID, id="RFC9449-4.3-duplicate-headers-joined"),
    pytest.param(f"{b64(b'not json')}.{b64json({})}.AA", id="RFC7515-5.2-header-not-json"),
    pytest.param(f"{b64json([1])}.{b64json({})}.AA", id="RFC7515-5.2-header-array"),
    pytest.param(b64(b'{"a":1,"a":2}') + ".e30.AA", id="RFC7515-5.2-duplicate-member"),
    pytest.param(b64(b'{"a":NaN}') + ".e30.AA", id="RFC7159-6-nan"),
    pytest.param(b64(b"[" * 5000) + ".e30.AA", id="RFC7159-deep-nesting"),
    pytest.param(b64(b"\xff\xfe") + ".e30.AA", id="RFC7515-5.2-header-not-utf8"),
    pytest.param(_with_header({"typ": "dpop+jwt", "alg": "ES256", "jwk": ES.jwk})[:-3] + "!!!", id="RFC7515-sig-bad"),
    pytest.param(_with_header({"typ": "dpop+jwt", "alg": "ES256", "jwk": [ES.jwk]}), id="RFC9449-4.3-jwk-list"),
    pytest.param(
        make_proof(claims={"jti": "x"})[:-4] + "AAAA",
        id="RFC9449-4.3-signature-tampered",
    ),
    pytest.param(
        f"{b64json({'typ': 'dpop+jwt', 'alg': 'ES256', 'jwk': ES.jwk})}.{b64(b'[]')}.AA",
        id="RFC7519-7.2-payload-array",
    ),
    *[pytest.param(m, id=f"fuzz-mutation-{n}") for n, m in enumerate(_MUTATIONS)],
]


@pytest.mark.parametrize("proof", MALFORMED_PROOFS)
def test_malformed_proof_is_an_invalid_proof_never_another_error(proof: Any) -> None:
    with pytest.raises(InvalidDPoPProof) as info:
        verify(proof)
    assert len(info.value.description) < 100 and "AAAA" not in info.value.description


# --- htu normalisation (RFC 3986 §6.2.2, §6.2.3) -------------------------------------------------

NORMALISE = [
    ("HTTPS://API.Example.COM/items", "https://api.example.com/items", "RFC3986-6.2.2.1-case"),
    ("https://api.example.com:443/items", "https://api.example.com/items", "RFC3986-6.2.3-default-port"),
    ("http://api.example.com:80/", "http://api.example.com/", "RFC3986-6.2.3-default-port-http"),
    ("https://api.example.com:/items", "https://api.example.com/items", "RFC3986-6.2.3-empty-port"),
    ("https://api.example.com:8443/a", "https://api.example.com:8443/a", "RFC3986-6.2.3-other-port-kept"),
    ("https://api.example.com", "https://api.example.com/", "RFC3986-6.2.3-empty-path"),
    ("https://api.example.com/%7Eme/%2fx%2F", "https://api.example.com/~me/%2Fx%2F", "RFC3986-6.2.2.2-pct"),
    ("https://api.example.com/a/./b/../c", "https://api.example.com/a/c", "RFC3986-6.2.2.3-dot-segments"),
    ("https://api.example.com/a?x=1#f", "https://api.example.com/a", "RFC9449-4.3-query-fragment"),
    ("https://api.example.com./a", "https://api.example.com./a", "RFC3986-3.2.2-trailing-dot-kept"),
    ("https://[::1]:8443/a", "https://[::1]:8443/a", "RFC3986-3.2.2-ipv6"),
    ("https://user@api.example.com/a", None, "RFC3986-3.2.1-userinfo-refused"),
    ("ftp://api.example.com/a", None, "RFC9449-4.3-scheme-not-http"),
    ("https://api.example.com/%zz", None, "RFC3986-2.1-bad-pct"),
    ("https://api.example.com/a b", None, "RFC3986-2-space"),
    ("https://api.example.com:99999/", None, "RFC3986-3.2.3-port-range"),
    ("https:///a", None, "RFC3986-3.2.2-no-host"),
    ("https://api.éxample.com/", None, "RFC3986-2-non-ascii"),
]


@pytest.mark.parametrize(("url", "expected"), [n[:2] for n in NORMALISE], ids=[n[2] for n in NORMALISE])
def test_htu_normalisation(url: str, expected: str | None) -> None:
    assert normalize_url(url) == expected


# --- effective request URL ------------------------------------------------------------------------

PROXY = parse_trusted_proxies(["10.0.0.0/8", "::1"])
PREFIX_TOO = frozenset({"x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix"})

EFFECTIVE = [
    (
        {"public_base_url": "https://api.example.com", "headers": {"Host": "evil.example"}},
        "https://api.example.com/items",
        "public-base-url-ignores-host",
    ),
    (
        {
            "public_base_url": "https://api.example.com/",
            "headers": {"X-Forwarded-Host": "evil.example"},
            "remote_addr": "10.0.0.1",
        },
        "https://api.example.com/items",
        "public-base-url-ignores-forwarding-headers",
    ),
    ({"headers": {"Host": "evil.example"}}, "http://app.internal:8000/items", "RFC9449-4.3-host-header-never-used"),
    (
        {"headers": {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com"}, "remote_addr": "10.1.2.3"},
        "https://api.example.com/items",
        "trusted-proxy-x-forwarded",
    ),
    (
        {
            "headers": {"x-forwarded-proto": "http, https", "x-forwarded-host": "evil.example, api.example.com"},
            "remote_addr": "10.1.2.3",
        },
        "https://api.example.com/items",
        "trusted-proxy-rightmost-value",
    ),
    (
        {
            "headers": {"Forwarded": 'for=1.2.3.4;proto=http, for=5.6.7.8;host="api.example.com";proto=https'},
            "remote_addr": "::1",
            "forwarded_headers": frozenset({"forwarded"}),
        },
        "https://api.example.com/items",
        "RFC7239-forwarded-last-element",
    ),
    (
        {
            "headers": {"Forwarded": "host=api.example.com;proto=https", "X-Forwarded-Host": "evil.example"},
            "remote_addr": "10.0.0.1",
            "forwarded_headers": frozenset({"forwarded"}),
        },
        "https://api.example.com/items",
        "RFC7239-forwarded-wins",
    ),
    (
        {"headers": {"Forwarded": 'host="unterminated'}, "remote_addr": "10.0.0.1"},
        "http://app.internal:8000/items",
        "RFC7239-malformed-ignored",
    ),
    (
        {
            "headers": {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com"},
            "remote_addr": "203.0.113.9",
        },
        "http://app.internal:8000/items",
        "untrusted-proxy-headers-ignored",
    ),
    (
        {"headers": {"X-Forwarded-Host": "api.example.com"}, "remote_addr": None},
        "http://app.internal:8000/items",
        "no-remote-address-headers-ignored",
    ),
    (
        {"headers": {"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "a b"}, "remote_addr": "10.0.0.1"},
        "http://app.internal:8000/items",
        "trusted-proxy-bad-values-ignored",
    ),
    (
        {
            "headers": {
                "X-Forwarded-Prefix": "/svc1/",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "api.example.com",
            },
            "remote_addr": "10.0.0.1",
            "forwarded_headers": PREFIX_TOO,
        },
        "https://api.example.com/svc1/items",
        "spring-17202-path-stripping-proxy-prefix",
    ),
    (
        {"public_base_url": "https://api.example.com/svc1"},
        "https://api.example.com/svc1/items",
        "spring-17202-path-stripping-proxy-public-base-url",
    ),
    (
        {"headers": {"X-Forwarded-Prefix": "/svc1"}, "remote_addr": "203.0.113.9"},
        "http://app.internal:8000/items",
        "untrusted-prefix-ignored",
    ),
]


@pytest.mark.parametrize(("options", "expected"), [e[:2] for e in EFFECTIVE], ids=[e[2] for e in EFFECTIVE])
def test_effective_request_url(options: dict[str, Any], expected: str) -> None:
    options = {"headers": {}, "remote_addr": "10.0.0.1", **options}
    url = effective_request_url(
        scheme="http", server_host="app.internal:8000", path="/items", trusted_proxies=PROXY, **options
    )
    assert url == expected


def test_effective_request_url_quotes_a_decoded_path() -> None:
    url = effective_request_url(
        scheme="https", server_host="api.example.com", path="/a b/ü", headers={}, remote_addr=None
    )
    assert url == "https://api.example.com/a%20b/%C3%BC"
    assert normalize_url(url) == url


def test_trusted_proxies_configuration_errors_name_the_option() -> None:
    with pytest.raises(ConfigurationError, match="CCGUARD_TRUSTED_PROXIES"):
        parse_trusted_proxies(["10.0.0.0/8", "proxy.internal"])
    with pytest.raises(ConfigurationError, match="list"):
        parse_trusted_proxies("10.0.0.1")


def test_auth0_1_9_1_host_header_htu() -> None:
    # A proof made for another server with the same path: with the host taken
    # from the Host header the attacker sets, it would match.
    proof = make_proof(claims={"htu": "https://other.example/items"})
    url = effective_request_url(
        scheme="https",
        server_host="api.example.com",
        path="/items",
        headers={"Host": "other.example"},
        remote_addr="203.0.113.9",
        public_base_url="https://api.example.com",
    )
    with pytest.raises(InvalidDPoPProof) as info:
        verify(proof, url=url)
    assert info.value.reason == "htu_mismatch"


def test_spring_17202_path_stripping_proxy() -> None:
    proof = make_proof(claims={"htu": "https://api.example.com/svc1/items"})
    url = effective_request_url(
        scheme="http",
        server_host="app.internal:8000",
        path="/items",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com", "X-Forwarded-Prefix": "/svc1"},
        remote_addr="10.0.0.1",
        trusted_proxies=PROXY,
        forwarded_headers=PREFIX_TOO,
    )
    assert verify(proof, url=url).htu == "https://api.example.com/svc1/items"


def test_i16_01_proof_key_is_prepared_once_per_header(monkeypatch: pytest.MonkeyPatch) -> None:
    import flask_ccguard.core.dpop as dpop
    import flask_ccguard.core.keys as keys

    calls: list[str] = []
    real = keys.prepare_jwk

    def counting(jwk: Any, allowed: frozenset[str]) -> Any:
        calls.append(jwk["kty"])
        return real(jwk, allowed)

    monkeypatch.setattr(dpop, "prepare_jwk", counting)
    monkeypatch.setattr(dpop, "KEY_CACHE_SIZE", 1)
    v = verifier()
    verify(make_proof(), v)
    verify(make_proof(), v)
    assert calls == ["EC"]
    verify(make_proof(OTHER), v, jkt=OTHER.jkt)  # evicts ES's key (bound of 1)
    verify(make_proof(), v)
    assert calls == ["EC", "EC", "EC"]
    for _ in range(2):  # a refused key is never cached
        with pytest.raises(InvalidDPoPProof):
            verify(make_proof(header={"jwk": {**ES.jwk, "d": "AAAA"}}), v)
    assert len(calls) == 5


# --- property-based: only InvalidDPoPProof ever leaves verify() -----------------------------------

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None)
_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
_json = st.recursive(
    _json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
)
_jwk_members = st.sampled_from(["kty", "crv", "x", "y", "n", "e", "d", "alg", "use", "key_ops", "kid", "k"])
_jwk_values = _json | st.sampled_from([*ES.jwk.values(), *SIGNERS["RS256"].jwk.values(), "RSA", "OKP", "EC", "sig"])


@FUZZ
@given(
    jwk_changes=st.dictionaries(_jwk_members, _jwk_values, max_size=4),
    header_changes=st.dictionaries(st.sampled_from(["typ", "alg", "crit", "kid", "x5c"]), _json, max_size=2),
    claim_changes=st.dictionaries(
        st.sampled_from(["jti", "htm", "htu", "iat", "ath", "nonce", "exp"]), _json | st.just(int(NOW)), max_size=3
    ),
)
def test_fuzzed_header_jwk_and_claims_give_only_invalid_dpop_proof(
    jwk_changes: dict[str, Any], header_changes: dict[str, Any], claim_changes: dict[str, Any]
) -> None:
    header = {"jwk": {**ES.jwk, **jwk_changes}, **header_changes}
    proof = make_proof(header=header, claims=claim_changes)
    with contextlib.suppress(InvalidDPoPProof):  # accepted, or refused with our error: nothing else
        verify(proof)


@FUZZ
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/., é\x00", max_size=300))
def test_fuzzed_proof_text_gives_only_invalid_dpop_proof(proof: str) -> None:
    with pytest.raises(InvalidDPoPProof):
        verify(proof)


def test_rfc9449_11_1_concurrent_replays_accept_exactly_one() -> None:
    import threading

    store = ReplayMemoryStore()
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(store.add_if_absent(b"k" * 32, b"1", 60))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("HTTPS://API.example.com:443/", "https://api.example.com"),
        ("https://api.example.com/svc1/", "https://api.example.com/svc1"),
        ("http://localhost:8000", "http://localhost:8000"),
    ],
)
def test_public_base_url_is_normalised_once(value: str, expected: str) -> None:
    assert parse_public_base_url(value) == expected


@pytest.mark.parametrize(
    "value", ["api.example.com", "/svc1", "https://api.example.com/?x=1", "https://u@api.example.com", "ftp://a", 5]
)
def test_public_base_url_configuration_error_names_the_option(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="CCGUARD_PUBLIC_BASE_URL"):
        parse_public_base_url(value)
