"""Forge variants of a compact JWS (RFC 7515 §7.1) for the interop refusal tests.

Each helper changes one part of a real provider token and keeps the rest, so a
test can show that exactly that change is caught.
"""

from __future__ import annotations

import base64
import json
from typing import Any

__all__ = ["decode_part", "flip_signature", "unverified_claims", "unverified_header", "with_claims", "with_header"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode_part(segment: str) -> dict[str, Any]:
    """Decode a base64url JSON segment (header or payload)."""
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))


def _encode_part(value: dict[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def unverified_header(token: str) -> dict[str, Any]:
    return decode_part(token.split(".")[0])


def unverified_claims(token: str) -> dict[str, Any]:
    return decode_part(token.split(".")[1])


def _changed(part: str, changes: dict[str, Any]) -> str:
    members = decode_part(part)
    for name, value in changes.items():
        if value is None:
            members.pop(name, None)
        else:
            members[name] = value
    return _encode_part(members)


def with_claims(token: str, **changes: Any) -> str:
    """The token with payload claims changed (``None`` removes one); signature kept."""
    header, payload, signature = token.split(".")
    return f"{header}.{_changed(payload, changes)}.{signature}"


def with_header(token: str, **changes: Any) -> str:
    """The token with header parameters changed (``None`` removes one); signature kept."""
    header, payload, signature = token.split(".")
    return f"{_changed(header, changes)}.{payload}.{signature}"


def flip_signature(token: str) -> str:
    """The token with one bit of its signature flipped (length unchanged)."""
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{header}.{payload}.{_b64url(bytes(raw))}"
