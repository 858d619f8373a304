"""Parsing of client-credentials token requests (RFC 6749 §2.3.1, §4.4.2, §5.2)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import parse_qs

from ..core.fetch.basic_auth import parse_basic_authorization


class OAuthError(Exception):
    """An RFC 6749 §5.2 error response of the token endpoint.

    ``basic_realm`` is set when the client used HTTP Basic: the response
    then carries a matching ``WWW-Authenticate`` challenge.
    """

    def __init__(self, status: int, error: str, description: str, basic_realm: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description
        self.basic_realm = basic_realm


def parameters(content_type: str, body: bytes) -> dict[str, list[str]]:
    """The request's parameters: a form (RFC 6749 §4.4.2) or a JSON object.

    JSON bodies are what some providers (Aidbox) accept; a JSON list value
    becomes a repeated parameter, other non-strings their JSON text.
    """
    media_type = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise OAuthError(400, "invalid_request", "body is not UTF-8") from None
    if media_type != "application/json":
        return parse_qs(text, keep_blank_values=True)
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        # RecursionError: nesting deeper than the interpreter's stack (a body
        # of "[" * 100000): bad input, a 400 like any other, never a 500.
        raise OAuthError(400, "invalid_request", "body is not JSON") from None
    if not isinstance(document, dict):
        raise OAuthError(400, "invalid_request", "body is not a JSON object")
    params: dict[str, list[str]] = {}
    for name, value in document.items():
        values = value if isinstance(value, list) else [value]
        params[name] = [v if isinstance(v, str) else json.dumps(v) for v in values]
    return params


def single(params: Mapping[str, list[str]], name: str) -> str | None:
    """The one value of ``name``, or None if absent."""
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        # RFC 6749 §3.2: parameters MUST NOT be included more than once.
        raise OAuthError(400, "invalid_request", f"{name} given more than once")
    return values[0]


def basic_credentials(authorization: str, realm: str) -> tuple[str, str] | None:
    """client_id and secret from HTTP Basic, or None if Basic was not used."""
    try:
        return parse_basic_authorization(authorization)
    except ValueError:
        raise OAuthError(401, "invalid_client", "malformed Basic credentials", realm) from None
