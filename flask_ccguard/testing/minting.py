"""Signing keys, JWKs and compact JWS for the test issuer (RFC 7515, 7517, 7518, 8037).

Independent of flask_ccguard's validator on purpose: everything here is
``cryptography`` and the RFCs, so the validator is checked against a second
implementation.
"""

from __future__ import annotations

import base64
import collections
import enum
import json
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# A runtime alias: Union, not X | Y, while Python 3.9 is supported.
PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey]

#: alg -> (key family, hash). RFC 7518 §3.1 and RFC 8037 §3.1 (EdDSA).
ALGORITHMS: dict[str, tuple[str, hashes.HashAlgorithm | None]] = {
    "RS256": ("RSA", hashes.SHA256()),
    "RS384": ("RSA", hashes.SHA384()),
    "RS512": ("RSA", hashes.SHA512()),
    "PS256": ("RSA", hashes.SHA256()),
    "PS384": ("RSA", hashes.SHA384()),
    "PS512": ("RSA", hashes.SHA512()),
    "ES256": ("P-256", hashes.SHA256()),
    "ES384": ("P-384", hashes.SHA384()),
    "ES512": ("P-521", hashes.SHA512()),
    "EdDSA": ("Ed25519", None),
}
SUPPORTED_ALGORITHMS: tuple[str, ...] = tuple(ALGORITHMS)

_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_HMAC_HASHES: dict[str, hashes.HashAlgorithm] = {
    "HS256": hashes.SHA256(),
    "HS384": hashes.SHA384(),
    "HS512": hashes.SHA512(),
}


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """The bytes of unpadded base64url (RFC 7515 §2); padding or a non-string is refused.

    :raises ValueError: (``binascii.Error`` included) for anything else.
    """
    if not isinstance(text, str) or "=" in text:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def json_bytes(value: Any) -> bytes:
    """Compact JSON, as JOSE implementations emit it."""
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def check_alg(alg: str) -> None:
    """:raises ValueError: if the issuer has no key type for ``alg``."""
    if alg not in ALGORITHMS:
        raise ValueError(f"unsupported algorithm {alg!r}; TestIssuer signs with " + ", ".join(SUPPORTED_ALGORITHMS))


def _int_b64(value: int, size: int | None = None) -> str:
    # RFC 7518 §6.3.1.1: n/e are minimal big-endian; §6.2.1.2: EC x/y are
    # the full coordinate length of the curve.
    length = size if size is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url(value.to_bytes(length, "big"))


def _generate(family: str) -> PrivateKey:
    if family == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if family == "Ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(_CURVES[family])


class _KeyPool:
    """Process-wide free list of private keys, so a fresh issuer is cheap.

    RSA generation costs ~50-100 ms. A key is lent to one live issuer at a
    time (two live issuers never share key material, so a token of one can
    never verify at the other) and returns to the pool when that issuer
    stops; it gets a new kid whenever it is lent again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: dict[str, list[PrivateKey]] = collections.defaultdict(list)
        #: Keys generated so far (the rest were reused), for tests.
        self.generated = 0

    def take(self, family: str) -> PrivateKey:
        with self._lock:
            if self._free[family]:
                return self._free[family].pop()
            self.generated += 1
        return _generate(family)  # outside the lock: other families need not wait

    def give_back(self, family: str, key: PrivateKey) -> None:
        with self._lock:
            self._free[family].append(key)


_POOL = _KeyPool()


def _public_jwk(alg: str, kid: str, key: PrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any]
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        jwk = {"kty": "RSA", "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        point = key.public_key().public_numbers()
        size = (key.curve.key_size + 7) // 8
        jwk = {
            "kty": "EC",
            "crv": ALGORITHMS[alg][0],
            "x": _int_b64(point.x, size),
            "y": _int_b64(point.y, size),
        }
    else:
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}  # RFC 8037 §2
    jwk.update({"kid": kid, "use": "sig", "alg": alg})
    return jwk


@dataclass
class SigningKey:
    """A private key lent from the pool, with its kid and published JWK."""

    alg: str
    kid: str
    private: PrivateKey
    jwk: dict[str, Any]

    @classmethod
    def lend(cls, alg: str) -> SigningKey:
        private = _POOL.take(ALGORITHMS[alg][0])
        kid = secrets.token_urlsafe(8)
        return cls(alg, kid, private, _public_jwk(alg, kid, private))

    def give_back(self) -> None:
        _POOL.give_back(ALGORITHMS[self.alg][0], self.private)

    def signature(self, data: bytes) -> bytes:
        """The JWS signature of ``data`` for :attr:`alg` (RFC 7518 §3)."""
        key, hash_alg = self.private, ALGORITHMS[self.alg][1]
        if isinstance(key, rsa.RSAPrivateKey):
            assert hash_alg is not None
            pad: padding.AsymmetricPadding = padding.PKCS1v15()
            if self.alg.startswith("PS"):
                # RFC 7518 §3.5: MGF1 with the same hash, salt as long as it.
                pad = padding.PSS(padding.MGF1(hash_alg), salt_length=hash_alg.digest_size)
            return key.sign(data, pad, hash_alg)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            assert hash_alg is not None
            # RFC 7518 §3.4: JOSE wants R || S, each the curve's byte length,
            # not the DER sequence cryptography returns.
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_alg)))
            size = (key.curve.key_size + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        return key.sign(data)


def hmac_signer(alg: str, secret: bytes) -> Callable[[bytes], bytes]:
    """An HS256/384/512 signer, for algorithm-confusion tests only."""
    if alg not in _HMAC_HASHES:
        raise ValueError(f"{alg!r} is not an HMAC algorithm")

    def sign(data: bytes) -> bytes:
        mac = hmac.HMAC(secret, _HMAC_HASHES[alg])
        mac.update(data)
        return mac.finalize()

    return sign


def compact(header: bytes, payload: bytes, signer: Callable[[bytes], bytes]) -> str:
    """RFC 7515 §7.1 compact serialization of already-encoded JSON parts."""
    signing_input = b64url(header) + "." + b64url(payload)
    return signing_input + "." + b64url(signer(signing_input.encode("ascii")))


class Default(enum.Enum):
    """Sentinel of :meth:`~flask_ccguard.testing.TestIssuer.mint`'s ``kid``: the current key's."""

    KID = "current key's kid"


def no_signature(data: bytes) -> bytes:
    """The signature of an Unsecured JWS: empty (RFC 7518 §3.6)."""
    return b""


def merge(base: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` updated by ``extra``, where a value of None removes the member."""
    for name, value in (extra or {}).items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base
