"""Strict parsing of a compact JWS (RFC 7515 §7.1) before any key work.

A token is accepted for verification only if it is ASCII, within the size
limit, has exactly three segments of canonical base64url (RFC 7515 §2: no
padding, no other alphabet, no stray bits), and its header and payload are
UTF-8 JSON objects (RFC 7519 §7.2) without duplicate members or non-finite
numbers.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from binascii import a2b_base64
from typing import Any, Callable

from .errors import InvalidToken

__all__ = ["ParsedToken", "b64url_decode", "b64url_encode", "parse_compact"]


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


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# The last character of a segment whose length is 2 or 3 modulo 4 carries 4 or
# 2 unused bits; canonical base64url (RFC 4648 §3.5) leaves them zero.
_CLEAN_LAST = {0: "", 2: _ALPHABET[::16], 3: _ALPHABET[::4]}
_PADDING = {0: b"", 2: b"==", 3: b"="}
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def _decode_standard(standard: bytes, segment: str) -> bytes:
    """Decode ``segment`` from ``standard``, its bytes already mapped to the standard alphabet.

    The caller has refused ``+``, ``/`` and ``=``. The non-strict decoder
    skips any other character outside the alphabet, which makes the output
    shorter than the length of ``segment`` predicts, so one length check
    finds them; the last character's unused bits are checked directly.
    """
    size, rem = divmod(len(segment), 4)
    if rem == 1 or (rem and segment[-1] not in _CLEAN_LAST[rem]):
        raise _malformed("a segment is not canonical base64url")
    try:
        raw = a2b_base64(standard + _PADDING[rem])
    except binascii.Error:
        raise _malformed("a segment is not base64url") from None
    if len(raw) != size * 3 + (rem and rem - 1):
        raise _malformed("a segment is not canonical base64url")
    return raw


def b64url_decode(segment: str) -> bytes:
    """Decode canonical unpadded base64url, or raise :class:`InvalidToken`."""
    if not segment.isascii() or "+" in segment or "/" in segment or "=" in segment:
        raise _malformed("a segment is not canonical base64url")
    return _decode_standard(segment.encode("ascii").translate(_TO_STANDARD), segment)


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2), as :func:`b64url_decode` reads it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # RFC 7515 §5.2 / RFC 7519 §7.2: duplicate names MUST be rejected or
        # the last one used; we reject, so no two parsers disagree on a claim.
        raise ValueError("duplicate member")
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError("non-finite number")


def _finite_float(text: str) -> float:
    # RFC 8259 §6: numbers outside the range of a double have no agreed value;
    # Python reads 1e999 as inf, which json.dumps writes as ``Infinity`` (not
    # JSON) when the claims are echoed back. Only called for numbers with a
    # fraction or exponent, so integer claims keep the C fast path.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("non-finite number")
    return value


_decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_float=_finite_float, parse_constant=_no_constant)


# The decoder's C scanner; typeshed does not list the attribute.
_scan: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
        # Fast path: an object from the first to the last character (what
        # every issuer sends). Anything else, such as surrounding whitespace,
        # goes through the full decoder, which also names the error.
        try:
            obj, end = _scan(text, 0) if text[:1] == "{" else (None, -1)
        except StopIteration:
            end = -1
        if end != len(text):
            obj = _decoder.decode(text)
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
    # Canonical base64url has no '+', '/' or '='; with those refused, one
    # translation of the whole token feeds the fast standard decoder.
    if "+" in token or "/" in token or "=" in token:
        raise _malformed("a segment is not canonical base64url")
    raw = token.encode("ascii")
    standard = raw.translate(_TO_STANDARD)
    h_end = len(header_b64)
    p_end = h_end + 1 + len(payload_b64)
    header = _json_object(_decode_standard(standard[:h_end], header_b64), "header")
    payload = _json_object(_decode_standard(standard[h_end + 1 : p_end], payload_b64), "payload")
    signature = _decode_standard(standard[p_end + 1 :], signature_b64)
    return ParsedToken(header, payload, raw[:p_end], signature)
