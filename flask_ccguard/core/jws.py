"""Strict parsing of a compact JWS (RFC 7515 §7.1) before any key work.

A token is accepted for verification only if it is ASCII, within the size
limit, has exactly three segments of canonical base64url (RFC 7515 §2: no
padding, no other alphabet, no stray bits), and its header and payload are
UTF-8 JSON objects (RFC 7519 §7.2) without duplicate members or non-finite
numbers.
"""

from __future__ import annotations

import binascii
import json
from base64 import urlsafe_b64decode, urlsafe_b64encode
from typing import Any

from .errors import InvalidToken

__all__ = ["ParsedToken", "b64url_decode", "parse_compact"]


class ParsedToken:
    """The parts of a compact JWS, decoded but not verified."""

    __slots__ = ("header", "payload", "signature", "signing_input")

    def __init__(self, header: dict[str, Any], payload: dict[str, Any], signing_input: bytes, signature: bytes) -> None:
        self.header = header
        self.payload = payload
        self.signing_input = signing_input
        self.signature = signature


def _malformed(what: str) -> InvalidToken:
    return InvalidToken(f"The access token is malformed: {what}.", reason="malformed")


def b64url_decode(segment: str) -> bytes:
    """Decode canonical unpadded base64url, or raise :class:`InvalidToken`."""
    try:
        raw = urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise _malformed("a segment is not base64url") from None
    # Re-encoding catches what the decoder forgives: padding, '+' and '/',
    # characters outside the alphabet, and non-zero trailing bits.
    if urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != segment:
        raise _malformed("a segment is not canonical base64url")
    return raw


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # RFC 7515 §5.2 / RFC 7519 §7.2: duplicate names MUST be rejected or
        # the last one used; we reject, so no two parsers disagree on a claim.
        raise ValueError("duplicate member")
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError("non-finite number")


_decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        obj = _decoder.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise _malformed(f"the {what} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise _malformed(f"the {what} is not a JSON object")
    return obj


def parse_compact(token: Any, max_bytes: int) -> ParsedToken:
    """Split and decode a compact JWS.

    :raises InvalidToken: for anything that is not a well-formed compact JWS.
    """
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise _malformed("it is not ASCII") from None
    if not isinstance(token, str) or not token:
        raise _malformed("it is empty")
    if len(token) > max_bytes:
        raise InvalidToken("The access token is too large.", reason="too_large")
    if not token.isascii():
        raise _malformed("it is not ASCII")
    parts = token.split(".")
    if len(parts) != 3:
        if len(parts) == 5:
            raise InvalidToken("Encrypted (JWE) access tokens are not supported.", reason="malformed")
        raise _malformed("it does not have three segments")
    header_b64, payload_b64, signature_b64 = parts
    if not signature_b64:
        raise InvalidToken("The access token is not signed.", reason="unsigned")
    header = _json_object(b64url_decode(header_b64), "header")
    payload = _json_object(b64url_decode(payload_b64), "payload")
    signature = b64url_decode(signature_b64)
    signing_input = token[: len(header_b64) + 1 + len(payload_b64)].encode("ascii")
    return ParsedToken(header, payload, signing_input, signature)
