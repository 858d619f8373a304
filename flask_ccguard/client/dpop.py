"""DPoP proofs (RFC 9449 §4.2) signed by the token client, with ``cryptography``.

A :class:`DPoPKey` holds the client's private key (generated per client
object by default: ES256 on P-256) and signs one proof JWT per request.
The proof's header carries only the public key (§4.2: the ``jwk`` MUST NOT
contain a private key); ``ath`` binds the proof to the access token (§4.2,
§7.1); ``htu`` is the target URI without query and fragment (§4.2).

This module signs; it verifies nothing (the client imports no verification code).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any, Union
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ..core.errors import ConfigurationError

__all__ = ["DPOP_ALGORITHMS", "DPoPKey", "ath", "htu"]

PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey]

#: Algorithms the client signs proofs with (asymmetric only, RFC 9449 §4.2).
DPOP_ALGORITHMS = ("ES256", "ES384", "PS256", "RS256", "EdDSA")
_CURVES = {"ES256": ("P-256", ec.SECP256R1(), hashes.SHA256()), "ES384": ("P-384", ec.SECP384R1(), hashes.SHA384())}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64(value: int, size: int) -> str:
    return _b64(value.to_bytes(size, "big"))


def htu(url: str) -> str:
    """The ``htu`` for ``url``: the URI without userinfo, query and fragment (RFC 9449 §4.2).

    Userinfo (``user:password@``) is dropped: a proof is a bearer of its claims
    to the resource and anything that logs it, and RFC 3986 §3.2.1 deprecates
    passwords in URIs; the server compares the URL it received, which never
    carries userinfo (RFC 9110 §4.2.4).
    """
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))


def ath(token: str) -> str:
    """base64url(SHA-256(ASCII token)) (RFC 9449 §4.2)."""
    return _b64(hashlib.sha256(token.encode("ascii")).digest())


class DPoPKey:
    """A DPoP key pair and the proofs it signs.

    :param key: a ``cryptography`` private key (EC P-256/P-384, RSA ≥ 2048, Ed25519);
        None generates a P-256 key (ES256).
    :param alg: the JWS algorithm; by default the one the key's type implies
        (``ES256``, ``ES384``, ``PS256``, ``EdDSA``).
    :raises ConfigurationError: a key or algorithm that cannot sign DPoP proofs.
    """

    def __init__(self, key: Any = None, alg: str | None = None) -> None:
        if key is None:
            key = ec.generate_private_key(ec.SECP256R1())
        if isinstance(key, ec.EllipticCurvePrivateKey):
            default = {"secp256r1": "ES256", "secp384r1": "ES384"}.get(key.curve.name)
            if default is None or alg not in (None, default):
                raise ConfigurationError("a DPoP EC key must be P-256 (ES256) or P-384 (ES384).")
        elif isinstance(key, rsa.RSAPrivateKey):
            default = "PS256"
            if key.key_size < 2048 or alg not in (None, "PS256", "RS256"):
                raise ConfigurationError("a DPoP RSA key must have 2048 bits or more and sign PS256 or RS256.")
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            default = "EdDSA"
            if alg not in (None, "EdDSA"):
                raise ConfigurationError("a DPoP Ed25519 key signs EdDSA.")
        else:
            raise ConfigurationError(
                "dpop must be True or a private key (EC P-256/P-384, RSA, Ed25519) from the cryptography package."
            )
        self._key: PrivateKey = key
        self.alg: str = alg or default
        self.jwk: dict[str, str] = self._public_jwk()
        members = {k: self.jwk[k] for k in sorted(self.jwk)}  # RFC 7638 §3.2: required members, sorted
        #: RFC 7638 JWK SHA-256 thumbprint: the token's ``cnf.jkt`` (RFC 9449 §6.1).
        self.thumbprint = _b64(hashlib.sha256(json.dumps(members, separators=(",", ":")).encode()).digest())

    def __repr__(self) -> str:
        return f"DPoPKey(alg={self.alg!r}, jkt={self.thumbprint!r})"

    @classmethod
    def load(cls, pem: bytes, alg: str | None = None) -> DPoPKey:
        """A key from an unencrypted PKCS#8 PEM (as :meth:`pem` writes it)."""
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise ConfigurationError("the DPoP key file is not an unencrypted PEM private key.") from None
        return cls(key, alg)

    def pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (keep the file private)."""
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def _public_jwk(self) -> dict[str, str]:
        """Only the public members (RFC 9449 §4.2: never the private key)."""
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            crv, _, _ = _CURVES[self.alg]
            point = key.public_key().public_numbers()
            size = (key.curve.key_size + 7) // 8
            return {"crv": crv, "kty": "EC", "x": _int_b64(point.x, size), "y": _int_b64(point.y, size)}
        if isinstance(key, rsa.RSAPrivateKey):
            numbers = key.public_key().public_numbers()
            return {
                "e": _int_b64(numbers.e, (numbers.e.bit_length() + 7) // 8),
                "kty": "RSA",
                "n": _int_b64(numbers.n, (numbers.n.bit_length() + 7) // 8),
            }
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}  # RFC 8037 §2

    def _sign(self, data: bytes) -> bytes:
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            _, curve, digest = _CURVES[self.alg]
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
            size = (curve.key_size + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")  # RFC 7518 §3.4: R || S, not DER
        if isinstance(key, rsa.RSAPrivateKey):
            if self.alg == "RS256":
                return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)  # RFC 7518 §3.5
            return key.sign(data, pss, hashes.SHA256())
        return key.sign(data)

    def proof(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        nonce: str | None = None,
        iat: int | None = None,
        jti: str | None = None,
    ) -> str:
        """A fresh DPoP proof JWT (RFC 9449 §4.2) for one request.

        :param token: the access token sent with it (adds ``ath``); None on a token request.
        :param nonce: the server's last ``DPoP-Nonce`` (RFC 9449 §8, §9).
        """
        header = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk}
        claims: dict[str, Any] = {
            "jti": jti or secrets.token_urlsafe(24),  # unique per proof (§4.2, §11.1 replay)
            "htm": method.upper(),
            "htu": htu(url),
            "iat": int(time.time()) if iat is None else iat,
        }
        if token is not None:
            claims["ath"] = ath(token)
        if nonce is not None:
            claims["nonce"] = nonce
        signing_input = ".".join(_b64(json.dumps(p, separators=(",", ":")).encode()) for p in (header, claims))
        return signing_input + "." + _b64(self._sign(signing_input.encode("ascii")))
