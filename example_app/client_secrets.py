"""Client secrets at rest: SHA-256 hashes, legacy scrypt hashes, constant-time checks.

A client secret here is 256 random bits (``secrets.token_hex(32)``), never
chosen by a person. A slow password KDF (scrypt, RFC 7914) only helps
against guessing a low-entropy secret from a stolen hash; 2**256 secrets
cannot be guessed however fast the hash is, so a fast hash loses nothing
(OWASP's Password Storage Cheat Sheet and NIST SP 800-63B §5.1.1.2 ask for
slow KDFs for *memorized* secrets only). What a slow KDF does cost is the
token endpoint's availability: ~30 ms of CPU and ~16 MiB per attempt, which
anyone can make it spend (hardening round 2, finding 13). So new secrets are
stored as ``sha256$<base64 digest>`` and compared with
:func:`hmac.compare_digest`.

Databases made by earlier versions hold ``scrypt$N$r$p$salt$digest`` hashes:
they still verify, at most :data:`LEGACY_CONCURRENCY` at a time, and
:func:`needs_rehash` tells the caller to replace one by its SHA-256 form on
the first successful authentication.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading

SHA256_PREFIX = "sha256$"
SCRYPT_PREFIX = "scrypt$"
#: Legacy scrypt checks that may run at once (each holds ~16 MiB at N=2**14, r=8).
LEGACY_CONCURRENCY = 2
#: Seconds a legacy check waits for its turn before giving up.
LEGACY_WAIT = 10.0
#: What every secret this example ever issued looks like; anything else cannot
#: match a legacy hash, so it never reaches the KDF.
_ISSUED_SECRET = re.compile(r"[0-9a-f]{64}")
_legacy_slots = threading.BoundedSemaphore(LEGACY_CONCURRENCY)


class SecretCheckBusy(Exception):
    """Too many legacy (scrypt) checks are running; try again later."""


def _digest(secret: str) -> bytes:
    # surrogatepass: whatever str the request parser produced, no exception here.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def hash_secret(secret: str) -> str:
    """The stored form of a new secret: ``sha256$<base64 SHA-256>``."""
    return SHA256_PREFIX + base64.b64encode(_digest(secret)).decode("ascii")


def needs_rehash(stored: str) -> bool:
    """True for a legacy hash that should be replaced by :func:`hash_secret`."""
    return not stored.startswith(SHA256_PREFIX)


def _check_legacy(secret: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest, validate=True)
        salt_bytes = base64.b64decode(salt, validate=True)
        params = int(n), int(r), int(p)
    except (ValueError, binascii.Error):
        return False
    if not _ISSUED_SECRET.fullmatch(secret):
        return False
    if not _legacy_slots.acquire(timeout=LEGACY_WAIT):
        raise SecretCheckBusy
    try:
        actual = hashlib.scrypt(
            secret.encode(), salt=salt_bytes, n=params[0], r=params[1], p=params[2], dklen=len(expected)
        )
    finally:
        _legacy_slots.release()
    return hmac.compare_digest(actual, expected)


def check_secret(secret: str, stored: str) -> bool:
    """True if ``secret`` matches ``stored`` (either format), compared in constant time.

    :raises SecretCheckBusy: if a legacy hash cannot be checked now.
    """
    if stored.startswith(SHA256_PREFIX):
        try:
            expected = base64.b64decode(stored[len(SHA256_PREFIX) :], validate=True)
        except (ValueError, binascii.Error):
            return False
        return hmac.compare_digest(_digest(secret), expected)
    if stored.startswith(SCRYPT_PREFIX):
        return _check_legacy(secret, stored)
    return False


#: Checked against when the client is unknown: one SHA-256 and one compare,
#: as for a known client, and never the KDF.
DUMMY_HASH = hash_secret(secrets.token_hex(32))
