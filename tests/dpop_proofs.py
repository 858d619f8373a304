"""A small DPoP client for tests: an EC P-256 key that signs proofs (RFC 9449 §4.2).

Independent of :mod:`flask_ccguard.core.dpop` (only ``cryptography``), so a
test's proof is not checked by the code that made it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

__all__ = ["DPoPKey", "b64"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class DPoPKey:
    """An ES256 client key: its JWK, its RFC 7638 thumbprint, and proofs."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        nums = self.key.public_key().public_numbers()
        self.jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64(nums.x.to_bytes(32, "big")),
            "y": b64(nums.y.to_bytes(32, "big")),
        }
        canonical = json.dumps(
            {k: self.jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True
        )
        self.jkt = b64(hashlib.sha256(canonical.encode()).digest())

    def proof(
        self,
        method: str,
        url: str,
        token: str | None = None,
        *,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
    ) -> str:
        """A proof for ``method`` ``url`` bound to ``token`` (``ath``); ``header``/``claims`` override, ``drop`` removes."""
        h: dict[str, Any] = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk}
        c: dict[str, Any] = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(time.time())}
        if token is not None:
            c["ath"] = b64(hashlib.sha256(token.encode()).digest())
        h.update(header or {})
        c.update(claims or {})
        for name in drop:
            h.pop(name, None)
            c.pop(name, None)
        signing_input = (b64(json.dumps(h).encode()) + "." + b64(json.dumps(c).encode())).encode()
        r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return signing_input.decode() + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
