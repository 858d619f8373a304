"""Strict request parsing: JSON bodies, query parameters, page tokens.

Every failure is an :class:`ApiError`, answered as a JSON body shaped like
RKVST's grpc-gateway status (``{"code", "message", "details"}``), never a 500.
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
    for name in request.args:
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
