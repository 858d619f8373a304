"""Algorithms and keys (RFC 7518 §3, RFC 8725 §3.1-3.5): no forged signature, no wrong key, no weak key."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from flask_ccguard import ConfigurationError, InvalidToken, TokenValidator
from flask_ccguard.testing import TestIssuer
from tests.conftest import b64json, b64url

from .support import claims_for, forge, make_validator, raw_signature, rejection, segments

ALGS = ("RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA")
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493


@pytest.fixture(scope="module")
def issuer() -> Iterator[TestIssuer]:
    with TestIssuer(algorithms=ALGS) as iss:
        yield iss


@pytest.fixture(scope="module")
def validator(issuer: TestIssuer) -> TokenValidator:
    v = make_validator(issuer, algorithms=ALGS)
    v.validate(issuer.mint())
    return v


def _kid(issuer: TestIssuer, alg: str) -> str:
    kid: str = issuer.public_jwk(alg)["kid"]
    return kid


# -- "none" in every spelling (RFC 8725 §3.1, jwt_tool -X a) ---------------------------

NONE_SPELLINGS: list[tuple[str, Any]] = [
    ("none", "none"),
    ("None", "None"),
    ("NONE", "NONE"),
    ("nOnE", "nOnE"),
    ("NoNe", "NoNe"),
    ("nonE", "nonE"),
    ("leading-space", " none"),
    ("trailing-space", "none "),
    ("trailing-nul", "none\x00"),
    ("fullwidth", "\uff4e\uff4f\uff4e\uff45"),
    ("empty-string", ""),
    ("json-null", None),
    ("json-list", ["none"]),
    ("json-object", {"none": True}),
    ("json-number", 0),
    ("json-true", True),
    ("missing", "__missing__"),
]


@pytest.mark.parametrize("signature", [b"", b"\x00"], ids=["empty-sig", "one-byte-sig"])
@pytest.mark.parametrize(
    "alg", [s[1] for s in NONE_SPELLINGS], ids=[f"jwt_tool-none-alg-{s[0]}" for s in NONE_SPELLINGS]
)
def test_unsigned_token_is_refused_in_every_spelling_of_none(
    issuer: TestIssuer, validator: TokenValidator, alg: Any, signature: bytes
) -> None:
    header: dict[str, Any] = {"alg": alg, "kid": _kid(issuer, "RS256")}
    if alg == "__missing__":
        del header["alg"]
    exc = rejection(validator, forge(header, claims_for(issuer), signature))
    assert isinstance(exc, InvalidToken)
    assert exc.reason in ("unsigned", "algorithm")


@pytest.mark.parametrize(
    "algorithms",
    [["none"], ["None"], ["HS256"], ["hs256"], ["RS256", "HS512"], ["RS256", "NONE"]],
    ids=[
        "RFC8725-3.1-config-none",
        "RFC8725-3.1-config-None",
        "RFC8725-3.1-config-hs256",
        "RFC8725-3.1-config-hs256-lowercase",
        "RFC8725-3.1-config-mixed-hmac",
        "RFC8725-3.1-config-mixed-none",
    ],
)
def test_none_and_hmac_are_refused_at_configuration(issuer: TestIssuer, algorithms: list[str]) -> None:
    with pytest.raises(ConfigurationError, match="unsigned and HMAC tokens are refused"):
        make_validator(issuer, algorithms=algorithms)


# -- HMAC keyed with the issuer's public key (CVE-2015-9235, CVE-2016-10555, ...) ---------


def _rsa_public(issuer: TestIssuer) -> rsa.RSAPublicKey:
    key = issuer.key_for("RS256").public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def _pem(issuer: TestIssuer) -> bytes:
    return _rsa_public(issuer).public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _der(issuer: TestIssuer) -> bytes:
    return _rsa_public(issuer).public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


SECRETS: list[tuple[str, str, Callable[[TestIssuer], bytes]]] = [
    ("CVE-2015-9235-hs256-with-rsa-pem", "HS256", _pem),
    ("CVE-2015-9235-hs384-with-rsa-pem", "HS384", _pem),
    ("CVE-2015-9235-hs512-with-rsa-pem", "HS512", _pem),
    ("CVE-2016-10555-hs256-with-pem-no-trailing-newline", "HS256", lambda iss: _pem(iss).rstrip(b"\n")),
    (
        "CVE-2017-11424-hs256-with-pkcs1-pem",
        "HS256",
        lambda iss: _rsa_public(iss).public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
    ),
    ("CVE-2015-9235-hs256-with-rsa-der", "HS256", _der),
    (
        "CVE-2015-9235-hs256-with-pkcs1-der",
        "HS256",
        lambda iss: _rsa_public(iss).public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1),
    ),
    ("CVE-2015-9235-hs256-with-bare-base64-der", "HS256", lambda iss: base64.b64encode(_der(iss))),
    ("CVE-2015-9235-hs256-with-jwk-json", "HS256", lambda iss: json.dumps(iss.public_jwk("RS256")).encode()),
    (
        "CVE-2015-9235-hs256-with-jwk-json-compact",
        "HS256",
        lambda iss: json.dumps(iss.public_jwk("RS256"), separators=(",", ":")).encode(),
    ),
    (
        "CVE-2015-9235-hs256-with-jwk-n-bytes",
        "HS256",
        lambda iss: base64.urlsafe_b64decode(iss.public_jwk("RS256")["n"] + "=="),
    ),
    (
        "CVE-2024-33663-hs256-with-openssh-ecdsa-key",
        "HS256",
        lambda iss: (
            iss.key_for("ES256")
            .public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        ),
    ),
    (
        "CVE-2022-29217-hs256-with-ssh-ed25519-key",
        "HS256",
        lambda iss: (
            iss.key_for("EdDSA")
            .public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        ),
    ),
    (
        "CVE-2015-9235-hs256-with-ec-pem",
        "HS256",
        lambda iss: (
            iss.key_for("ES256")
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        ),
    ),
    ("jwt_tool-blank-hmac-secret", "HS256", lambda iss: b""),
]


@pytest.mark.parametrize(("hs_alg", "secret"), [s[1:] for s in SECRETS], ids=[s[0] for s in SECRETS])
def test_hmac_keyed_with_the_issuers_public_key_is_refused(
    issuer: TestIssuer, validator: TokenValidator, hs_alg: str, secret: Callable[[TestIssuer], bytes]
) -> None:
    for kid in (_kid(issuer, "RS256"), None):
        header = {"alg": hs_alg, "typ": "at+jwt", **({"kid": kid} if kid else {})}
        token = issuer.sign(header, claims_for(issuer), alg=hs_alg, secret=secret(issuer))
        assert rejection(validator, token).reason == "algorithm"


# -- key-type and padding confusion (RFC 8725 §3.1, RFC 7518 §3.3-3.5) -----------------


def _relabel(sign_alg: str, header_alg: str, kid_of: str) -> Callable[[TestIssuer], str]:
    """Signed with the key for ``sign_alg``, but the header says ``header_alg`` and names ``kid_of``'s key."""

    def build(iss: TestIssuer) -> str:
        header = {"alg": header_alg, "kid": _kid(iss, kid_of)}
        return forge(header, claims_for(iss), b"", private=iss.key_for(sign_alg), alg=sign_alg)

    return build


CONFUSIONS: list[tuple[str, Callable[[TestIssuer], str]]] = [
    ("RFC7518-3.5-rs256-signature-labelled-ps256", _relabel("RS256", "PS256", "RS256")),
    ("RFC7518-3.5-ps256-signature-labelled-rs256", _relabel("PS256", "RS256", "PS256")),
    ("RFC7518-3.3-ps256-signature-with-rs256-kid", _relabel("PS256", "PS256", "RS256")),
    ("RFC8725-3.1-es256-signature-labelled-rs256", _relabel("ES256", "RS256", "ES256")),
    ("RFC8725-3.1-rs256-signature-with-es256-kid", _relabel("RS256", "RS256", "ES256")),
    ("RFC8725-3.1-eddsa-signature-labelled-es256", _relabel("EdDSA", "ES256", "EdDSA")),
    ("RFC8725-3.1-es256-signature-labelled-eddsa", _relabel("ES256", "EdDSA", "ES256")),
    ("RFC7518-3.4-es256-signature-labelled-es384", _relabel("ES256", "ES384", "ES256")),
    ("RFC7518-3.4-es384-signature-with-es512-kid", _relabel("ES384", "ES384", "ES512")),
    ("RFC7518-3.4-es512-signature-labelled-es256", _relabel("ES512", "ES256", "ES512")),
    ("RFC8037-3.1-eddsa-signature-with-rs256-kid", _relabel("EdDSA", "EdDSA", "RS256")),
]


@pytest.mark.parametrize("build", [c[1] for c in CONFUSIONS], ids=[c[0] for c in CONFUSIONS])
def test_signature_with_another_algorithm_or_key_type_is_refused(
    issuer: TestIssuer, validator: TokenValidator, build: Callable[[TestIssuer], str]
) -> None:
    assert isinstance(rejection(validator, build(issuer)), InvalidToken)


UNSUPPORTED = [
    "ES256K",
    "RS1",
    "RSA-OAEP",
    "dir",
    "A256KW",
    "Ed25519",
    "Ed448",
    "EdDSA448",
    "rs256",
    "RS256 ",
    "PS256\n",
]


@pytest.mark.parametrize("alg", UNSUPPORTED, ids=[f"RFC8725-3.1-unlisted-alg-{a.strip()}" for a in UNSUPPORTED])
def test_algorithm_outside_the_allowlist_is_refused(issuer: TestIssuer, validator: TokenValidator, alg: str) -> None:
    token = forge({"alg": alg, "kid": _kid(issuer, "RS256")}, claims_for(issuer), b"", private=issuer.key_for("RS256"))
    assert rejection(validator, token).reason == "algorithm"


def test_algorithm_allowed_by_the_key_but_not_the_validator_is_refused(issuer: TestIssuer) -> None:
    strict = make_validator(issuer, algorithms=["ES256"])
    assert rejection(strict, issuer.mint(alg="RS256")).reason == "algorithm"
    assert strict.validate(issuer.mint(alg="ES256")).subject == "test-client"


# -- zero-value and out-of-range signatures (CVE-2022-21449, CVE-2020-28042) ------------


def _with_signature(alg: str, signature: Callable[[TestIssuer], bytes]) -> Callable[[TestIssuer], str]:
    def build(iss: TestIssuer) -> str:
        parts = segments(iss.mint(alg=alg))
        return parts[0] + "." + parts[1] + "." + b64url(signature(iss))

    return build


def _n(iss: TestIssuer) -> int:
    return _rsa_public(iss).public_numbers().n


def _valid_sig(alg: str) -> Callable[[TestIssuer], bytes]:
    return lambda iss: base64.urlsafe_b64decode(segments(iss.mint(alg=alg))[2] + "==")


SIGNATURES: list[tuple[str, str, Callable[[TestIssuer], bytes]]] = [
    ("CVE-2022-21449-es256-r0-s0", "ES256", lambda iss: bytes(64)),
    ("CVE-2022-21449-es384-r0-s0", "ES384", lambda iss: bytes(96)),
    ("CVE-2022-21449-es512-r0-s0", "ES512", lambda iss: bytes(132)),
    ("CVE-2022-21449-es256-r0-s-valid", "ES256", lambda iss: bytes(32) + _valid_sig("ES256")(iss)[32:]),
    ("CVE-2022-21449-es256-r-valid-s0", "ES256", lambda iss: _valid_sig("ES256")(iss)[:32] + bytes(32)),
    ("CVE-2022-21449-es256-r-n-s-n", "ES256", lambda iss: P256_ORDER.to_bytes(32, "big") * 2),
    ("jwt_tool-psychic-signature-der-zero", "ES256", lambda iss: bytes.fromhex("3006020100020100")),
    ("RFC7518-3.4-es256-der-encoded-signature", "ES256", lambda iss: b"\x30\x44" + _valid_sig("ES256")(iss)),
    ("RFC7518-3.4-es256-signature-one-byte-short", "ES256", lambda iss: _valid_sig("ES256")(iss)[:-1]),
    ("CVE-2020-28042-rs256-single-zero-byte", "RS256", lambda iss: b"\x00"),
    ("CVE-2022-21449-rs256-all-zero", "RS256", lambda iss: bytes(256)),
    ("RFC8017-5.2.2-rs256-signature-one", "RS256", lambda iss: (1).to_bytes(256, "big")),
    ("RFC8017-5.2.2-rs256-signature-equals-modulus", "RS256", lambda iss: _n(iss).to_bytes(256, "big")),
    ("RFC8017-5.2.2-rs256-signature-modulus-minus-one", "RS256", lambda iss: (_n(iss) - 1).to_bytes(256, "big")),
    ("RFC7518-3.3-rs256-signature-leading-zero-added", "RS256", lambda iss: b"\x00" + _valid_sig("RS256")(iss)),
    ("RFC7518-3.5-ps256-all-zero", "PS256", lambda iss: bytes(256)),
    ("CVE-2022-21449-eddsa-all-zero", "EdDSA", lambda iss: bytes(64)),
    (
        "RFC8032-5.1.7-eddsa-s-not-below-order",
        "EdDSA",
        lambda iss: (
            _valid_sig("EdDSA")(iss)[:32]
            + (int.from_bytes(_valid_sig("EdDSA")(iss)[32:], "little") + ED25519_ORDER).to_bytes(32, "little")
        ),
    ),
    ("RFC8032-5.1.7-eddsa-identity-r-zero-s", "EdDSA", lambda iss: b"\x01" + bytes(63)),
]


@pytest.mark.parametrize(("alg", "signature"), [s[1:] for s in SIGNATURES], ids=[s[0] for s in SIGNATURES])
def test_zero_or_out_of_range_signature_is_refused(
    issuer: TestIssuer, validator: TokenValidator, alg: str, signature: Callable[[TestIssuer], bytes]
) -> None:
    assert rejection(validator, _with_signature(alg, signature)(issuer)).reason == "bad_signature"


def test_ecdsa_malleated_signature_is_still_verified_as_ecdsa(issuer: TestIssuer, validator: TokenValidator) -> None:
    # (r, n - s) is valid ECDSA: accepted, but it proves the check above can pass.
    token = issuer.mint(alg="ES256")
    sig = base64.urlsafe_b64decode(segments(token)[2] + "==")
    s = int.from_bytes(sig[32:], "big")
    twin = token.rsplit(".", 1)[0] + "." + b64url(sig[:32] + (P256_ORDER - s).to_bytes(32, "big"))
    assert validator.validate(twin).subject == "test-client"


# -- keys whose JWK forbids the use, weak keys, bad points (RFC 7517 §4, RFC 8725 §3.4-3.5) --


def _published(of: str, /, **changes: Any) -> Callable[[TestIssuer], dict[str, Any]]:
    """The issuer's own key for ``of``, published again under kid 'twin' with ``changes``."""

    def build(iss: TestIssuer) -> dict[str, Any]:
        jwk = {**iss.public_jwk(of), "kid": "twin"}
        for name, value in changes.items():
            if value is None:
                jwk.pop(name, None)
            else:
                jwk[name] = value
        return jwk

    return build


def _p256_point(x: int, y: int) -> Callable[[TestIssuer], dict[str, Any]]:
    return lambda iss: {
        "kty": "EC",
        "crv": "P-256",
        "kid": "twin",
        "x": b64url(x.to_bytes(32, "big")),
        "y": b64url(y.to_bytes(32, "big")),
    }


def _p384_point_as_p256(iss: TestIssuer) -> dict[str, Any]:
    return {**iss.public_jwk("ES384"), "crv": "P-256", "alg": "ES256", "kid": "twin"}


FORBIDDING: list[tuple[str, str, Callable[[TestIssuer], dict[str, Any]]]] = [
    ("RFC7517-4.2-use-enc", "RS256", _published("RS256", use="enc")),
    ("RFC7517-4.2-use-uppercase-SIG", "RS256", _published("RS256", use="SIG")),
    ("RFC7517-4.2-use-list", "RS256", _published("RS256", use=["sig"])),
    ("RFC7517-4.3-key-ops-encrypt", "RS256", _published("RS256", use=None, key_ops=["encrypt"])),
    ("RFC7517-4.3-key-ops-sign-only", "RS256", _published("RS256", use=None, key_ops=["sign"])),
    ("RFC7517-4.3-key-ops-string", "RS256", _published("RS256", use=None, key_ops="verify")),
    ("RFC7517-4.3-key-ops-empty", "RS256", _published("RS256", use=None, key_ops=[])),
    ("RFC7517-4.4-alg-rs384-for-rs256-token", "RS256", _published("RS256", alg="RS384")),
    ("RFC7517-4.4-alg-ps256-for-rs256-token", "RS256", _published("RS256", alg="PS256")),
    ("RFC7517-4.4-alg-hs256-on-rsa-key", "RS256", _published("RS256", alg="HS256")),
    ("RFC7517-4.4-alg-none-on-rsa-key", "RS256", _published("RS256", alg="none")),
    ("RFC7517-4.4-alg-es256-on-rsa-key", "RS256", _published("RS256", alg="ES256")),
    ("RFC7517-4.4-alg-es384-on-p256-key", "ES256", _published("ES256", alg="ES384")),
    ("RFC7517-4.1-kty-oct", "RS256", lambda iss: {"kty": "oct", "kid": "twin", "k": b64url(_pem(iss))}),
    ("RFC7517-4.1-kty-lowercase-rsa", "RS256", _published("RS256", kty="rsa")),
    ("RFC7518-6.3.2-published-private-rsa-key", "RS256", _published("RS256", d="AQAB")),
    ("RFC7518-6.2.2-published-private-ec-key", "ES256", _published("ES256", d="AQAB")),
    ("RFC8037-2-published-private-okp-key", "EdDSA", _published("EdDSA", d="AQAB")),
    ("RFC7518-6.3.1-rsa-exponent-one", "RS256", _published("RS256", e="AQ")),
    ("RFC7518-6.3.1-rsa-no-modulus", "RS256", _published("RS256", n=None)),
    ("RFC8725-3.4-invalid-curve-point-zero", "ES256", _p256_point(0, 0)),
    ("RFC8725-3.4-invalid-curve-point-one-one", "ES256", _p256_point(1, 1)),
    ("RFC8725-3.4-invalid-curve-point-y-off-by-one", "ES256", lambda iss: _off_by_one_y(iss)),
    ("RFC8725-3.4-invalid-curve-p384-point-as-p256", "ES256", _p384_point_as_p256),
    ("RFC7518-6.2.1-ec-unknown-curve", "ES256", _published("ES256", crv="secp256k1", alg=None)),
    ("RFC8037-2-okp-x25519-key-for-eddsa", "EdDSA", _published("EdDSA", crv="X25519", alg=None)),
    ("RFC8032-5.1.3-ed25519-x-wrong-length", "EdDSA", _published("EdDSA", x=b64url(bytes(31)))),
]


def _off_by_one_y(iss: TestIssuer) -> dict[str, Any]:
    jwk = _published("ES256")(iss)
    y = int.from_bytes(base64.urlsafe_b64decode(jwk["y"] + "=="), "big")
    jwk["y"] = b64url(((y + 1) % (2**256)).to_bytes(32, "big"))
    return jwk


def _fresh_validator_with(issuer: TestIssuer, jwk: dict[str, Any]) -> TokenValidator:
    issuer.extra_jwks = [jwk]
    try:
        v = make_validator(issuer, algorithms=ALGS)
        v.validate(issuer.mint())  # loads the set, twin included if it were usable
    finally:
        issuer.extra_jwks = []
    return v


@pytest.mark.parametrize(("alg", "jwk"), [f[1:] for f in FORBIDDING], ids=[f[0] for f in FORBIDDING])
def test_key_whose_jwk_forbids_the_use_verifies_nothing(
    issuer: TestIssuer, alg: str, jwk: Callable[[TestIssuer], dict[str, Any]]
) -> None:
    v = _fresh_validator_with(issuer, jwk(issuer))
    assert rejection(v, issuer.mint(alg=alg, kid="twin")).reason == "unknown_kid"


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"], ids=lambda a: f"RFC7517-4-control-usable-twin-{a}")
def test_a_twin_key_without_forbidding_members_verifies(issuer: TestIssuer, alg: str) -> None:
    # The control for the table above: the same twin, unmodified, is usable.
    v = _fresh_validator_with(issuer, _published(alg)(issuer))
    assert v.validate(issuer.mint(alg=alg, kid="twin")).subject == "test-client"


@pytest.mark.parametrize(
    "bits",
    [1024, 1536, 2047],
    ids=["RFC7518-3.3-rsa-1024-bit", "RFC7518-3.3-rsa-1536-bit", "RFC7518-3.3-rsa-2047-bit"],
)
def test_weak_rsa_key_is_never_used(issuer: TestIssuer, bits: int) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    numbers = weak.public_key().public_numbers()
    size = (numbers.n.bit_length() + 7) // 8
    jwk = {"kty": "RSA", "kid": "twin", "n": b64url(numbers.n.to_bytes(size, "big")), "e": "AQAB"}
    v = _fresh_validator_with(issuer, jwk)
    assert "twin" not in v.key_set(issuer.issuer)
    token = forge({"alg": "RS256", "kid": "twin"}, claims_for(issuer), b"", private=weak)
    assert rejection(v, token).reason == "unknown_kid"


SMALL_ORDER_ED25519 = [
    ("identity", b"\x01" + bytes(31)),
    ("order-2", (2**255 - 20).to_bytes(32, "little")),
    ("order-4-zero", bytes(32)),
    ("order-8", (2707385501144840649318225287225658788936804267575313519463743609750303402022).to_bytes(32, "little")),
    (
        "order-8-negated",
        (55188659117513257062467267217118295137698188065244968500265048394206261417927).to_bytes(32, "little"),
    ),
    ("non-canonical-identity", (2**255 - 18).to_bytes(32, "little")),
]


@pytest.mark.parametrize(
    "point",
    [p[1] for p in SMALL_ORDER_ED25519],
    ids=[f"RFC8032-5.1.7-small-order-ed25519-{p[0]}" for p in SMALL_ORDER_ED25519],
)
def test_small_order_ed25519_key_cannot_verify_a_universal_forgery(issuer: TestIssuer, point: bytes) -> None:
    # With a small-order public key A, R = identity and S = 0 satisfy
    # [S]B = R + [k]A for many messages: anyone could sign anything.
    v = _fresh_validator_with(issuer, {"kty": "OKP", "crv": "Ed25519", "kid": "twin", "x": b64url(point)})
    forged = forge({"alg": "EdDSA", "kid": "twin"}, claims_for(issuer), b"\x01" + bytes(63))
    assert "twin" not in v.key_set(issuer.issuer)
    assert isinstance(rejection(v, forged), InvalidToken)


def test_unencoded_payload_option_is_refused(issuer: TestIssuer, validator: TokenValidator) -> None:
    header = {"alg": "RS256", "kid": _kid(issuer, "RS256"), "b64": False, "crit": ["b64"]}
    token = b64json(header) + "." + b64json(claims_for(issuer)) + ".x"
    signed = token[:-2] + "." + b64url(raw_signature(issuer.key_for("RS256"), "RS256", token[:-2]))
    assert rejection(validator, signed).reason == "crit"


def test_p256_key_of_another_issuer_does_not_verify(issuer: TestIssuer, validator: TokenValidator) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    token = forge(
        {"alg": "ES256", "kid": _kid(issuer, "ES256")}, claims_for(issuer), b"", private=stranger, alg="ES256"
    )
    assert rejection(validator, token).reason == "bad_signature"


CRIT: list[tuple[str, Any]] = [
    ("RFC7515-4.1.11-unknown-crit", ["exp"]),
    ("RFC7515-4.1.11-crit-names-absent-member", ["x-absent"]),
    ("RFC7515-4.1.11-crit-empty-list", []),
    ("RFC7515-4.1.11-crit-not-a-list", "b64"),
    ("RFC7515-4.1.11-crit-nested-list", [[]]),
    ("RFC7515-4.1.11-crit-object-member", [{}]),
    ("RFC7515-4.1.11-crit-number-member", [1]),
    ("RFC7515-4.1.11-crit-null", None),
]


@pytest.mark.parametrize("crit", [c[1] for c in CRIT], ids=[c[0] for c in CRIT])
def test_unknown_or_malformed_critical_header_is_refused(
    issuer: TestIssuer, validator: TokenValidator, crit: Any
) -> None:
    header = {"alg": "RS256", "kid": _kid(issuer, "RS256"), "crit": crit}
    for token in (issuer.sign(header, claims_for(issuer)), forge(header, claims_for(issuer), b"\x00")):
        assert rejection(validator, token).reason == "crit"
