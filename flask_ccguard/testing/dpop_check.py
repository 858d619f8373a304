"""TestIssuer's check of the DPoP proof on a token request (RFC 9449 §4.3, §5, §8).

A minimal second implementation, on ``cryptography`` only: the validator's
DPoP code is checked against proofs and tokens this package makes, so the two
must not share code.
"""

from __future__ import annotations

import binascii
import json
import secrets
import threading
import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .dpop import htu, jwk_thumbprint
from .minting import b64url_decode
from .token_request import OAuthError

#: alg -> (kty, curve or None, hash or None) TestIssuer accepts in proofs (RFC 9449 §4.3 item 5: asymmetric only).
_ALGS: dict[str, tuple[str, Any, Any]] = {
    "ES256": ("EC", ec.SECP256R1(), hashes.SHA256()),
    "ES384": ("EC", ec.SECP384R1(), hashes.SHA384()),
    "ES512": ("EC", ec.SECP521R1(), hashes.SHA512()),
    "RS256": ("RSA", None, hashes.SHA256()),
    "PS256": ("RSA", None, hashes.SHA256()),
    "EdDSA": ("OKP", None, None),
}
_CRV = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_PRIVATE = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
#: seconds a proof's ``iat`` may be off from now (RFC 9449 §11.1: a short window)
IAT_WINDOW = 60
_MAX_PROOF = 8192
_MAX_SEEN = 100_000  # jtis remembered at most (a test issuer; beyond this, proofs are refused)


def _int(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


def _refuse(description: str) -> OAuthError:
    return OAuthError(400, "invalid_dpop_proof", description)


def _verify_signature(alg: str, jwk: dict[str, Any], data: bytes, sig: bytes) -> None:
    kty, curve, digest = _ALGS[alg]
    if jwk.get("kty") != kty:
        raise _refuse("the jwk's kty does not match alg")
    if kty == "EC":
        if jwk.get("crv") != _CRV[alg]:
            raise _refuse("the jwk's crv does not match alg")
        key = ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), curve).public_key()
        size = (curve.key_size + 7) // 8
        if len(sig) != 2 * size:
            raise _refuse("bad signature length")
        der = encode_dss_signature(int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big"))
        key.verify(der, data, ec.ECDSA(digest))
    elif kty == "RSA":
        rsa_key = rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
        if rsa_key.key_size < 2048:
            raise _refuse("RSA key shorter than 2048 bits")
        pad: padding.AsymmetricPadding = padding.PKCS1v15()
        if alg.startswith("PS"):
            pad = padding.PSS(padding.MGF1(digest), salt_length=digest.digest_size)
        rsa_key.verify(sig, data, pad, digest)
    else:
        if jwk.get("crv") != "Ed25519":
            raise _refuse("only Ed25519 OKP keys")
        ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"])).verify(sig, data)


class ProofChecker:
    """Checks token-request proofs; remembers each ``jti`` for the ``iat`` window (RFC 9449 §11.1)."""

    def __init__(self, *, nonce: bool = False) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}
        #: The nonce the token endpoint demands (RFC 9449 §8), when it demands one.
        self.nonce: str | None = secrets.token_urlsafe(16) if nonce else None

    def rotate_nonce(self) -> None:
        """A new nonce: proofs with the old one get ``use_dpop_nonce`` again."""
        if self.nonce is not None:
            self.nonce = secrets.token_urlsafe(16)

    def check(self, proof: str, method: str, url: str) -> str:
        """The RFC 7638 thumbprint of the key of a valid ``proof`` for ``method`` ``url``.

        :raises OAuthError: ``invalid_dpop_proof``, or ``use_dpop_nonce`` with a ``DPoP-Nonce`` header.
        """
        try:
            return self._check(proof, method, url)
        except (ValueError, TypeError, KeyError, binascii.Error, InvalidSignature, RecursionError):
            raise _refuse("the DPoP proof is malformed or its signature does not verify") from None

    def _check(self, proof: str, method: str, url: str) -> str:
        if len(proof) > _MAX_PROOF or proof.count(".") != 2:
            raise _refuse("a DPoP proof is one compact JWS")  # §4.3 item 2
        head_b64, claims_b64, sig_b64 = proof.split(".")
        header = json.loads(b64url_decode(head_b64))
        claims = json.loads(b64url_decode(claims_b64))
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise _refuse("header and claims must be JSON objects")
        if header.get("typ") != "dpop+jwt":  # §4.3 item 4
            raise _refuse("typ must be dpop+jwt")
        alg, jwk = header.get("alg"), header.get("jwk")
        if alg not in _ALGS:  # §4.3 item 5
            raise _refuse("alg must be an asymmetric algorithm")
        if not isinstance(jwk, dict) or _PRIVATE & set(jwk):  # §4.3 item 7
            raise _refuse("jwk must be a public key")
        _verify_signature(
            alg, jwk, (head_b64 + "." + claims_b64).encode("ascii"), b64url_decode(sig_b64)
        )  # §4.3 item 6
        for name in ("jti", "htm", "htu", "iat"):  # §4.3 item 3
            if name not in claims:
                raise _refuse(f"the proof has no {name}")
        if claims["htm"] != method:  # §4.3 item 8
            raise _refuse("htm does not match the request")
        if not isinstance(claims["htu"], str) or htu(claims["htu"]) != htu(url):  # §4.3 item 9
            raise _refuse("htu does not match the request")
        iat = claims["iat"]
        now = time.time()
        if not isinstance(iat, (int, float)) or isinstance(iat, bool) or abs(now - iat) > IAT_WINDOW:  # item 11
            raise _refuse("iat is outside the accepted window")
        if self.nonce is not None and claims.get("nonce") != self.nonce:  # §8, §4.3 item 10
            raise OAuthError(400, "use_dpop_nonce", "the token endpoint requires a DPoP nonce", dpop_nonce=self.nonce)
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise _refuse("jti must be a short string")
        with self._lock:  # §11.1: each proof once, within the window
            for old, at in list(self._seen.items()):
                if at < now - 2 * IAT_WINDOW:
                    del self._seen[old]
            if jti in self._seen or len(self._seen) >= _MAX_SEEN:
                raise _refuse("this proof was used before")
            self._seen[jti] = now
        return jwk_thumbprint(jwk)
