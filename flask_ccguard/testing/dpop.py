"""DPoP keys and proofs for tests (RFC 9449 §4.2), and token-binding claims (RFC 9449 §6, RFC 8705 §3.1).

Made with ``cryptography`` and the RFCs only, independent of flask_ccguard's
client and validator, so that each is checked against a second implementation.
Use :func:`generate_dpop_key` and :func:`dpop_proof` to call your own
DPoP-protected API in tests, with a token from
:meth:`~flask_ccguard.testing.TestIssuer.mint` ``(dpop_key=key)``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from .minting import ALGORITHMS, PrivateKey, SigningKey, _generate, _public_jwk, b64url, compact, json_bytes, merge

__all__ = ["cert_thumbprint", "dpop_proof", "generate_dpop_key", "jwk_thumbprint", "public_jwk"]

#: RFC 7638 §3.2: the members a thumbprint covers, per key type.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
_DEFAULT_ALG = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def generate_dpop_key(alg: str = "ES256") -> PrivateKey:
    """A new private key for ``alg`` (ES256 by default; any asymmetric algorithm TestIssuer signs with)."""
    if alg not in ALGORITHMS:
        raise ValueError(f"unsupported DPoP algorithm {alg!r}; one of {', '.join(ALGORITHMS)}")
    return _generate(ALGORITHMS[alg][0])


def _alg_for(key: PrivateKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return _DEFAULT_ALG[key.curve.name]
    return "PS256" if isinstance(key, rsa.RSAPrivateKey) else "EdDSA"


def public_jwk(key: Any, alg: str | None = None) -> dict[str, Any]:
    """The public JWK of a private or public key, or a JWK dict (its public members only)."""
    if isinstance(key, Mapping):
        kty = key.get("kty")
        if kty not in _THUMBPRINT_MEMBERS:
            raise ValueError("a DPoP JWK needs kty EC, RSA or OKP")
        return {m: key[m] for m in _THUMBPRINT_MEMBERS[str(kty)]}
    if isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
        raise TypeError("pass the private key or a JWK dict")
    jwk = _public_jwk(alg or _alg_for(key), "", key)
    return {m: jwk[m] for m in _THUMBPRINT_MEMBERS[jwk["kty"]]}


def jwk_thumbprint(key: Any) -> str:
    """The RFC 7638 SHA-256 thumbprint of a key or JWK: a token's ``cnf.jkt`` (RFC 9449 §6.1)."""
    jwk = public_jwk(key)
    canonical = json.dumps({m: jwk[m] for m in sorted(jwk)}, separators=(",", ":")).encode("utf-8")
    return b64url(hashlib.sha256(canonical).digest())


def cert_thumbprint(cert: Any) -> str:
    """``x5t#S256`` (RFC 8705 §3.1): base64url SHA-256 of the DER certificate.

    :param cert: DER bytes, PEM bytes or text, or a ``cryptography`` certificate.
    """
    if isinstance(cert, x509.Certificate):
        der = cert.public_bytes(Encoding.DER)
    elif isinstance(cert, str) or (isinstance(cert, bytes) and cert.lstrip().startswith(b"-----BEGIN")):
        pem = cert.encode("ascii") if isinstance(cert, str) else cert
        der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    elif isinstance(cert, bytes):
        der = cert
    else:
        raise TypeError("cert must be DER bytes, PEM, or an x509.Certificate")
    return b64url(hashlib.sha256(der).digest())


def htu(url: str) -> str:
    """``url`` without query and fragment (RFC 9449 §4.2)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


def dpop_proof(
    key: PrivateKey,
    method: str,
    url: str,
    token: str | None = None,
    nonce: str | None = None,
    jti: str | None = None,
    iat: int | None = None,
    *,
    alg: str | None = None,
    header: Mapping[str, Any] | None = None,
    claims: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> str:
    """A DPoP proof JWT (RFC 9449 §4.2) signed by ``key``.

    :param method: the request's method (``htm``).
    :param url: the request's URL; ``htu`` is it without query and fragment.
    :param token: the access token the proof goes with (adds ``ath``).
    :param nonce: the server's ``DPoP-Nonce``.
    :param jti: default a random one; :param iat: default now.
    :param alg: default ES256 for P-256, PS256 for RSA, EdDSA for Ed25519.
    :param header: merged over the header (``typ``, ``alg``, ``jwk``); None removes a member.
    :param claims: merged over the claims; None removes one (``claims={"jti": None}``).
    :param overrides: more claims merged over them, the same way (``htm=None``, ``htu="…"``).
    """
    alg = alg or _alg_for(key)
    head: dict[str, Any] = {"typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(key, alg)}
    body: dict[str, Any] = {
        "jti": jti or secrets.token_urlsafe(16),
        "htm": method,
        "htu": htu(url),
        "iat": int(time.time()) if iat is None else iat,
    }
    if token is not None:
        body["ath"] = b64url(hashlib.sha256(token.encode("ascii")).digest())
    if nonce is not None:
        body["nonce"] = nonce
    merge(head, header)
    merge(body, claims)
    merge(body, overrides)
    signer = SigningKey(alg, "", key, {}).signature
    return compact(json_bytes(head), json_bytes(body), signer)


def binding_claims(dpop_key: Any = None, cert: Any = None, cnf: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``cnf`` claim for a DPoP key (``jkt``) and/or certificate (``x5t#S256``), over ``cnf``."""
    confirmation = dict(cnf or {})
    if dpop_key is not None:
        confirmation["jkt"] = jwk_thumbprint(dpop_key)
    if cert is not None:
        confirmation["x5t#S256"] = cert_thumbprint(cert)
    return confirmation
