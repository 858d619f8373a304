"""Which of an issuer's keys verifies a token's signature (RFC 7515 §5.2), with Entra ID's key-issuer rule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .keys import VerifyingKey
from .tenants import PLACEHOLDER

__all__ = ["first_verifying", "key_issuer_matches"]


def first_verifying(
    keys: tuple[VerifyingKey, ...],
    alg: str,
    iss: Any,
    claims: Mapping[str, Any],
    signing_input: bytes,
    signature: bytes,
) -> tuple[VerifyingKey | None, bool]:
    """The first of ``keys`` that verifies the signature, and whether one was skipped for its ``issuer``."""
    wrong_issuer = False
    for key in keys:
        if key.issuer is not None and not key_issuer_matches(key, iss, claims):
            wrong_issuer = True
            continue
        if key.verify(alg, signing_input, signature):
            return key, wrong_issuer
    return None, wrong_issuer


def key_issuer_matches(key: VerifyingKey, iss: Any, claims: Mapping[str, Any]) -> bool:
    """Entra ID's signing-key issuer check: a JWK's ``issuer`` member must equal
    the token's ``iss``, after a ``{tenantid}`` in it is replaced by ``tid``."""
    expected = key.issuer
    assert expected is not None
    if PLACEHOLDER in expected:
        tid = claims.get("tid")
        if not isinstance(tid, str) or not tid:
            return False
        expected = expected.replace(PLACEHOLDER, tid)
    return bool(expected == iss)
