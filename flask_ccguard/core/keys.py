"""Verification keys from JWKs (RFC 7517), bound to the algorithms they may verify (RFC 7518 §3).

Each usable JWK becomes a :class:`VerifyingKey` once, when the key set is
fetched: the public key is loaded (RSA and EC through python-jose's
cryptography backend, Ed25519 directly on ``cryptography``), and the padding
and hash objects each algorithm needs are built ahead, so verifying a token is
a single call into OpenSSL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Callable, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jose.backends.cryptography_backend import CryptographyECKey, CryptographyRSAKey

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "EC_COORDINATE_BYTES",
    "MAX_RSA_BITS",
    "MAX_RSA_EXPONENT",
    "MIN_RSA_BITS",
    "UnusableKey",
    "VerifyingKey",
    "algorithms_for_key_type",
    "prepare_jwk",
]

MIN_RSA_BITS = 2048
#: The largest RSA modulus accepted. Verification cost grows with the square
#: of the modulus; no issuer signs with more than 4096 bits, and a hostile key
#: set must not make each forged token cost many times a normal check.
MAX_RSA_BITS = 8192
#: RSA public exponents must be odd and 3 <= e < 2**32 (RFC 8017 §3.1 asks
#: for odd e >= 3). Issuers use 65537; the 32-bit cap keeps legacy 3 and
#: CryptoAPI's 32-bit exponents, while a check costs at most a few times one
#: with 65537 (measured: 34 vs 16 us at 2048 bits). A 3070-bit e under a
#: 3072-bit modulus (OpenSSL refuses e over 64 bits only above 3072) made
#: one check cost ~13 ms, ~400 times the 65537 figure.
MAX_RSA_EXPONENT = 2**32 - 1

#: algorithm -> (kty, crv or None, hash class or None)
ASYMMETRIC_ALGORITHMS: dict[str, tuple[str, str | None, Any]] = {
    "RS256": ("RSA", None, hashes.SHA256),
    "RS384": ("RSA", None, hashes.SHA384),
    "RS512": ("RSA", None, hashes.SHA512),
    "PS256": ("RSA", None, hashes.SHA256),
    "PS384": ("RSA", None, hashes.SHA384),
    "PS512": ("RSA", None, hashes.SHA512),
    "ES256": ("EC", "P-256", hashes.SHA256),
    "ES384": ("EC", "P-384", hashes.SHA384),
    "ES512": ("EC", "P-521", hashes.SHA512),
    "EdDSA": ("OKP", "Ed25519", None),
}

# RFC 8032 §5.1.3 / RFC 8725 §3.4: an Ed25519 public key of small order (the
# identity, order 2, 4 or 8) lets R = identity, S = 0 verify many messages, a
# universal forgery. Small-order points are exactly those with y in this set
# (mod p, so non-canonical encodings are caught too).
_ED25519_P = 2**255 - 19
_ED25519_Y8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022
_ED25519_SMALL_ORDER_Y = frozenset({0, 1, _ED25519_P - 1, _ED25519_Y8, _ED25519_P - _ED25519_Y8})

#: Octets of an EC public key coordinate (and of each half of a JWS signature) per curve (RFC 7518 §6.2.1.2, §3.4).
EC_COORDINATE_BYTES = {"P-256": 32, "P-384": 48, "P-521": 66}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")

Verify = Callable[[bytes, bytes], bool]
PublicKey = Union[rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey]


class UnusableKey(ValueError):
    """A JWK that cannot verify signatures; the message says why (safe to log)."""


def algorithms_for_key_type(kty: str, crv: str | None = None) -> frozenset[str]:
    """The JWS algorithms a key of this type (and curve) can verify."""
    return frozenset(
        alg
        for alg, (a_kty, a_crv, _) in ASYMMETRIC_ALGORITHMS.items()
        if a_kty == kty and (a_crv is None or a_crv == crv)
    )


class VerifyingKey:
    """A prepared public key and the algorithms it is allowed to verify.

    :ivar kid: the key id, or ``None``.
    :ivar algorithms: the algorithms this key verifies: those of its type,
        narrowed to the JWK's own ``alg`` if it states one, and to the
        validator's allowlist.
    :ivar issuer: the JWK's ``issuer`` member, if any (Microsoft Entra ID).
    :ivar fingerprint: a SHA-256 digest of everything that decides which
        tokens this key verifies: the public key (its DER
        SubjectPublicKeyInfo), ``kid``, algorithms and ``issuer``. Two
        fetches of the same JWK give the same fingerprint; new material under
        an old ``kid`` gives another.
    """

    __slots__ = ("_verifiers", "algorithms", "fingerprint", "issuer", "kid", "kty")

    def __init__(
        self,
        kid: str | None,
        kty: str,
        verifiers: Mapping[str, Verify],
        issuer: str | None = None,
        *,
        public: PublicKey,
    ) -> None:
        self.kid = kid
        self.kty = kty
        self.issuer = issuer
        self._verifiers = dict(verifiers)
        self.algorithms = frozenset(self._verifiers)
        der = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        names = json.dumps([kid, kty, sorted(self.algorithms), issuer]).encode()
        self.fingerprint = hashlib.sha256(names + b"\0" + der).digest()

    def verify(self, alg: str, signing_input: bytes, signature: bytes) -> bool:
        """True if ``signature`` is a valid ``alg`` signature over ``signing_input``.

        An algorithm this key may not verify is a failure, never an exception.
        """
        verifier = self._verifiers.get(alg)
        if verifier is None:
            return False
        try:
            return verifier(signing_input, signature)
        except (InvalidSignature, ValueError, TypeError, OverflowError):
            return False

    def __repr__(self) -> str:
        return f"VerifyingKey(kid={self.kid!r}, kty={self.kty!r}, algorithms={sorted(self.algorithms)})"


def _b64url_int(value: Any, member: str) -> int:
    return int.from_bytes(_b64url(value, member), "big")


def _b64url(value: Any, member: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise UnusableKey(f"member {member!r} is missing or not a string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise UnusableKey(f"member {member!r} is not base64url") from None


def _rsa_verifiers(public: rsa.RSAPublicKey, algs: frozenset[str]) -> dict[str, Verify]:
    out: dict[str, Verify] = {}
    for alg in algs:
        hash_cls = ASYMMETRIC_ALGORITHMS[alg][2]
        if alg.startswith("RS"):
            pad: padding.AsymmetricPadding = padding.PKCS1v15()
        else:
            # RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash output.
            pad = padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=hash_cls.digest_size)
        out[alg] = _rsa_verify(public, pad, hash_cls())
    return out


def _rsa_verify(public: rsa.RSAPublicKey, pad: padding.AsymmetricPadding, hash_alg: Any) -> Verify:
    size = (public.key_size + 7) // 8

    def verify(signing_input: bytes, signature: bytes) -> bool:
        # RFC 7518 §3.3: the signature is exactly as long as the modulus.
        if len(signature) != size:
            return False
        public.verify(signature, signing_input, pad, hash_alg)
        return True

    return verify


def _ec_verify(public: ec.EllipticCurvePublicKey, length: int, hash_cls: Any) -> Verify:
    algorithm = ec.ECDSA(hash_cls())

    def verify(signing_input: bytes, signature: bytes) -> bool:
        # RFC 7518 §3.4: R || S, each exactly as long as the curve's order.
        if len(signature) != 2 * length:
            return False
        r = int.from_bytes(signature[:length], "big")
        s = int.from_bytes(signature[length:], "big")
        if r == 0 or s == 0:  # never valid; refused outright (CVE-2022-21449)
            return False
        public.verify(encode_dss_signature(r, s), signing_input, algorithm)
        return True

    return verify


def _ed_verify(public: ed25519.Ed25519PublicKey) -> Verify:
    def verify(signing_input: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        public.verify(signature, signing_input)
        return True

    return verify


def prepare_jwk(jwk: Any, allowed: frozenset[str]) -> VerifyingKey:
    """Turn one JWK into a :class:`VerifyingKey`, or raise :class:`UnusableKey`.

    :param jwk: a member of a JWKS ``keys`` array.
    :param allowed: the validator's algorithm allowlist.
    """
    if not isinstance(jwk, dict):
        raise UnusableKey("not a JSON object")
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise UnusableKey("'kid' is not a string")
    kty = jwk.get("kty")
    if not isinstance(kty, str):
        raise UnusableKey("'kty' is missing")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise UnusableKey("'use' is not 'sig'")
    key_ops = jwk.get("key_ops")
    # RFC 7517 §4.3: an array of strings.
    if key_ops is not None and (
        not isinstance(key_ops, list) or not all(isinstance(op, str) for op in key_ops) or "verify" not in key_ops
    ):
        raise UnusableKey("'key_ops' does not allow 'verify'")
    if any(member in jwk for member in _PRIVATE_MEMBERS):
        raise UnusableKey("it holds private key material; refusing to use a published private key")
    crv = jwk.get("crv")
    if crv is not None and not isinstance(crv, str):
        raise UnusableKey("'crv' is not a string")
    algs = algorithms_for_key_type(kty, crv)
    if not algs:
        raise UnusableKey(f"unsupported key type {kty[:32]!r}" + (f" / curve {crv[:32]!r}" if crv else ""))
    stated = jwk.get("alg")
    if stated is not None:
        # RFC 7517 §4.4: a string. A list or object is unhashable and must not reach `in`.
        if not isinstance(stated, str):
            raise UnusableKey("'alg' is not a string")
        if stated not in algs:
            raise UnusableKey(f"its 'alg' {stated[:32]!r} does not fit key type {kty[:32]!r}")
        algs = frozenset((stated,))
    algs &= allowed
    if not algs:
        raise UnusableKey("none of its algorithms is allowed")
    issuer = jwk.get("issuer")
    if issuer is not None and not isinstance(issuer, str):
        # It restricts the key to one issuer; a restriction we cannot read must not be dropped.
        raise UnusableKey("'issuer' is not a string")

    if kty == "RSA":
        # Sizes are checked before anything is built from the numbers.
        bits = _b64url_int(jwk.get("n"), "n").bit_length()
        if bits < MIN_RSA_BITS:
            raise UnusableKey(f"RSA key of {bits} bits; at least {MIN_RSA_BITS} required")
        if bits > MAX_RSA_BITS:
            raise UnusableKey(f"RSA key of {bits} bits; at most {MAX_RSA_BITS} allowed")
        e = _b64url_int(jwk.get("e"), "e")
        if e < 3 or e > MAX_RSA_EXPONENT or e % 2 == 0:
            raise UnusableKey("RSA public exponent must be odd, at least 3 and below 2**32")
        try:
            public = CryptographyRSAKey(jwk, "RS256").prepared_key
        except Exception:
            raise UnusableKey("invalid RSA public key") from None
        return VerifyingKey(kid, kty, _rsa_verifiers(public, algs), issuer, public=public)

    if kty == "EC":
        _b64url_int(jwk.get("x"), "x")
        _b64url_int(jwk.get("y"), "y")
        (alg,) = algs
        try:
            public = CryptographyECKey(jwk, alg).prepared_key
        except Exception:
            # cryptography refuses points that are not on the curve
            raise UnusableKey("invalid EC public key (not a point on the curve)") from None
        verifiers = {alg: _ec_verify(public, EC_COORDINATE_BYTES[str(crv)], ASYMMETRIC_ALGORITHMS[alg][2])}
        return VerifyingKey(kid, kty, verifiers, issuer, public=public)

    # OKP / Ed25519
    raw = _b64url(jwk.get("x"), "x")
    if len(raw) != 32:
        raise UnusableKey("Ed25519 'x' must be 32 bytes")
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    if y % _ED25519_P in _ED25519_SMALL_ORDER_Y:
        raise UnusableKey("Ed25519 key of small order; it would verify forged signatures")
    try:
        ed_public = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise UnusableKey("invalid Ed25519 public key") from None
    return VerifyingKey(kid, kty, {"EdDSA": _ed_verify(ed_public)}, issuer, public=ed_public)
