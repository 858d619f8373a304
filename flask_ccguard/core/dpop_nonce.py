"""Server-provided DPoP nonces without server state (RFC 9449 §9, §11.2).

A nonce is an HMAC of the current time step under a secret, so every process
that holds the secret issues and accepts the same nonces without sharing
storage. The nonce of the current and of the previous step are accepted, so
a nonce lives between one and two steps.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Callable, Protocol

from .errors import ConfigurationError

__all__ = ["HmacNonceSource", "NonceSource"]

#: The shortest secret accepted: 32 bytes, the HMAC-SHA-256 block's security level.
MIN_SECRET_BYTES = 32


class NonceSource(Protocol):
    """Issues the nonce to send and judges the one a proof carries."""

    def current(self) -> str:
        """The nonce to send in ``DPoP-Nonce`` now."""

    def is_valid(self, nonce: str) -> bool:
        """Whether ``nonce`` is one this source issued recently."""


class HmacNonceSource:
    """Stateless rotating nonces: ``base64url(HMAC-SHA-256(secret, step))``, 32 characters.

    :param secret: at least 32 random bytes, the same in every process.
    :param step: seconds per rotation (default 300); a nonce is accepted for
        one to two steps.
    :param clock: wall-clock seconds, for tests.
    """

    def __init__(self, secret: bytes, *, step: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
            raise ConfigurationError(
                f"the DPoP nonce secret must be at least {MIN_SECRET_BYTES} random bytes (e.g. os.urandom(32))"
            )
        if not step > 0:
            raise ConfigurationError("the DPoP nonce step must be a positive number of seconds")
        self._secret = secret
        self._step = step
        self._clock = clock

    def _nonce(self, counter: int) -> str:
        mac = hmac.new(self._secret, b"ccguard-dpop-nonce:" + str(counter).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode("ascii")

    def _counter(self) -> int:
        return int(self._clock() // self._step)

    def current(self) -> str:
        return self._nonce(self._counter())

    def is_valid(self, nonce: str) -> bool:
        if not isinstance(nonce, str) or len(nonce) != 32:
            return False
        counter = self._counter()
        given = nonce.encode("ascii", "replace")
        # Both compared in constant time, and always both, so timing tells nothing.
        current = hmac.compare_digest(given, self._nonce(counter).encode())
        previous = hmac.compare_digest(given, self._nonce(counter - 1).encode())
        return current or previous
