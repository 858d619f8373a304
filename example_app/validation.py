"""Strict request parsing: JSON bodies, query parameters, page tokens.

Every failure is an :class:`ApiError`, answered as a JSON body shaped like
RKVST's grpc-gateway status (``{"code", "message", "details"}``), never a 500.
Every string a client sends passes :func:`check_text` here, so no handler
ever holds text that UTF-8 (and so sqlite) cannot encode.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, NoReturn

from flask import request

#: HTTP status -> gRPC status code (google.rpc.Code), as grpc-gateway maps them.
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 409: 6, 413: 8, 415: 3, 429: 8, 500: 13, 503: 14}
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
# "(?![\s\S])" ends the string in both Python and ECMA-262 (the OpenAPI
# document's regex dialect); "$" would also accept a trailing newline.
END = r"(?![\s\S])"
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}" + END)
# A surrogate code point: JSON's "\ud800" escape (RFC 8259 §8.2, §7), bytes
# json.loads decodes with surrogatepass, or an argv byte PEP 383 escaped put
# one in a Python string, and UTF-8 cannot encode it (RFC 3629 §3).
_SURROGATE = re.compile("[\ud800-\udfff]")
UNICODE_ERROR = "is not valid Unicode text: it holds a lone surrogate such as \\ud800"


class ApiError(Exception):
    """An error response: HTTP ``status`` and a safe ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"code": GRPC_CODES.get(self.status, 2), "message": self.message, "details": []}


def bad(message: str) -> NoReturn:
    raise ApiError(400, message)


def check_text(value: str, field: str) -> str:
    """``value`` if UTF-8 can encode it (no surrogates), else a 400 naming ``field``.

    Never echoes the value: the message stays plain ASCII whatever was sent.
    """
    if _SURROGATE.search(value):
        bad(f"{field} {UNICODE_ERROR}")
    return value


def _holds_surrogate(document: Any) -> bool:
    """Whether a string in decoded JSON, member names included, holds a surrogate.

    A loop, not recursion: a document json.loads just managed to nest
    cannot overflow the stack here.
    """
    pending: list[Any] = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return True
        elif isinstance(node, dict):
            pending.extend(node)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return False


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            bad(f"duplicate member {key!r} in the JSON body")
        result[key] = value
    return result


def _no_constants(name: str) -> NoReturn:
    bad(f"{name} is not valid JSON")


def json_object(allowed: Iterable[str], required: Iterable[str] = ()) -> dict[str, Any]:
    """The request body as a JSON object with only ``allowed`` members.

    :raises ApiError: 415 for another media type, 400 for anything malformed.
    """
    if request.mimetype != "application/json":
        raise ApiError(415, "the body must be application/json")
    try:
        text = request.get_data(cache=False).decode("utf-8")
        document = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        bad("the body is not valid JSON")
    if _holds_surrogate(document):
        bad(f"a string in the body {UNICODE_ERROR}")
    if not isinstance(document, dict):
        bad("the body must be a JSON object")
    unknown = sorted(set(document) - set(allowed))
    if unknown:
        bad(f"unknown field {unknown[0]!r}")
    for name in required:
        if name not in document:
            bad(f"{name!r} is required")
    return document


def check_query(allowed: Iterable[str]) -> None:
    """Refuse unknown or repeated query parameters."""
    allowed = set(allowed)
    for name, values in request.args.lists():
        check_text(name, "a query parameter name")
        for value in values:
            check_text(value, f"query parameter {name!r}")
        if name not in allowed:
            bad(f"unknown query parameter {name!r}")
        if len(request.args.getlist(name)) > 1:
            bad(f"query parameter {name!r} given more than once")


def string_map(value: Any, field: str, *, max_items: int = 50, max_length: int = 1024) -> dict[str, str]:
    """A JSON object of short names to strings."""
    if not isinstance(value, dict):
        bad(f"{field!r} must be an object of strings")
    if len(value) > max_items:
        bad(f"{field!r} has more than {max_items} entries")
    for key, item in value.items():
        if not NAME.match(key):
            bad(f"{field!r} key {key!r} must match {NAME.pattern}")
        if not isinstance(item, str) or len(item) > max_length:
            bad(f"{field!r}.{key} must be a string of at most {max_length} characters")
        check_text(item, f"{field!r}.{key}")
    return dict(value)


# -- paging ---------------------------------------------------------------------------


def page_request() -> tuple[int, int, dict[str, str]]:
    """(page_size, after_seq, filters) from ``page_size`` / ``page_token``.

    As RKVST's, the page token is opaque to clients and carries the original
    request, so later pages need only ``page_token``.
    """
    token = request.args.get("page_token", "")
    filters: dict[str, str] = {}
    after = 0
    size = DEFAULT_PAGE_SIZE
    if token:
        try:
            padded = token + "=" * (-len(token) % 4)
            state = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        except (ValueError, binascii.Error, UnicodeError, RecursionError):
            bad("page_token is not a token this server issued")
        if (
            not isinstance(state, dict)
            or set(state) != {"page_size", "after", "filters"}
            or not _int_in(state["page_size"], 1, MAX_PAGE_SIZE)
            or not _int_in(state["after"], 0, 2**62)
            or not isinstance(state["filters"], dict)
            or not all(isinstance(v, str) for v in state["filters"].values())
            # The tokens this server issues hold only text a client sent,
            # which check_text passed.
            or _holds_surrogate(state)
        ):
            bad("page_token is not a token this server issued")
        size, after, filters = state["page_size"], state["after"], state["filters"]
    raw_size = request.args.get("page_size")
    if raw_size is not None:
        if not re.fullmatch(r"[0-9]{1,3}", raw_size) or not 1 <= int(raw_size) <= MAX_PAGE_SIZE:
            bad(f"page_size must be a whole number from 1 to {MAX_PAGE_SIZE}")
        size = int(raw_size)
    return size, after, filters


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def next_page_token(size: int, last_seq: int, filters: Mapping[str, str]) -> str:
    state = {"page_size": size, "after": last_seq, "filters": dict(filters)}
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def rfc3339(timestamp: float) -> str:
    """``2021-09-21T16:43:19Z``: RFC 3339 in UTC, whole seconds, as RKVST shows times."""
    return datetime.fromtimestamp(int(timestamp), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
