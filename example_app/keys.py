"""The issuer's RS256 signing keys: files with mode 0600, JWKS, compact JWS.

The current key is ``signing_key.pem`` in the instance folder and the one it
replaced is ``signing_key.previous.pem``; both are published in the JWKS
(RFC 7517 §5) so tokens signed before a rotation keep verifying. Key ids are
RFC 7638 thumbprints. Files are re-read when they change on disk, so
``flask --app example_app rotate-key`` takes effect in a running server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CURRENT = "signing_key.pem"
PREVIOUS = "signing_key.previous.pem"
ALGORITHM = "RS256"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64(value: int) -> str:
    # RFC 7518 §6.3.1.1: minimal big-endian octets.
    return b64url(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey
    jwk: dict[str, Any]

    @classmethod
    def from_private(cls, private: rsa.RSAPrivateKey) -> SigningKey:
        numbers = private.public_key().public_numbers()
        members = {"e": _int_b64(numbers.e), "kty": "RSA", "n": _int_b64(numbers.n)}
        # RFC 7638 §3: SHA-256 over the required members, sorted, no spaces.
        thumbprint = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
        kid = b64url(thumbprint)
        return cls(kid, private, {**members, "kid": kid, "use": "sig", "alg": ALGORITHM})

    def sign(self, payload: dict[str, Any], typ: str = "at+jwt") -> str:
        """A compact JWS (RFC 7515 §7.1) of ``payload``."""
        header = {"alg": ALGORITHM, "typ": typ, "kid": self.kid}
        signing_input = ".".join(b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload))
        signature = self.private.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)


def _write_new_key(path: str) -> None:
    """Generate an RSA-2048 key into ``path``, created with mode 0600 or not at all."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = f"{path}.{os.getpid()}.tmp"
    # O_EXCL + mode: the key is never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    os.replace(tmp, path)


class KeyStore:
    """The instance folder's signing keys, reloaded when the files change."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._stamp: tuple[Any, ...] | None = None
        self._keys: tuple[SigningKey, ...] = ()

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def ensure(self) -> bool:
        """Create the signing key on first start; True if it was created."""
        path = self._path(CURRENT)
        if os.path.exists(path):
            return False
        _write_new_key(path)
        return True

    def rotate(self) -> SigningKey:
        """Make a new current key; the old one stays published as previous."""
        with self._lock:
            current = self._path(CURRENT)
            if os.path.exists(current):
                os.replace(current, self._path(PREVIOUS))
            _write_new_key(current)
            self._stamp = None
        return self.current()

    def _load(self) -> tuple[SigningKey, ...]:
        stamps: list[tuple[str, int | None, int | None, int | None]] = []
        for name in (CURRENT, PREVIOUS):
            try:
                info = os.stat(self._path(name))
                stamps.append((name, info.st_mtime_ns, info.st_ino, info.st_size))
            except FileNotFoundError:
                stamps.append((name, None, None, None))
        stamp = tuple(stamps)
        with self._lock:
            if stamp != self._stamp:
                keys = []
                for name in (CURRENT, PREVIOUS):
                    try:
                        with open(self._path(name), "rb") as handle:
                            private = serialization.load_pem_private_key(handle.read(), password=None)
                    except FileNotFoundError:
                        continue
                    if not isinstance(private, rsa.RSAPrivateKey):
                        raise RuntimeError(f"{name} is not an RSA private key")
                    keys.append(SigningKey.from_private(private))
                if not keys or not os.path.exists(self._path(CURRENT)):
                    raise RuntimeError(f"no signing key {CURRENT} in {self.folder}")
                self._keys, self._stamp = tuple(keys), stamp
            return self._keys

    def current(self) -> SigningKey:
        return self._load()[0]

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set (RFC 7517 §5): current key first."""
        return {"keys": [key.jwk for key in self._load()]}
