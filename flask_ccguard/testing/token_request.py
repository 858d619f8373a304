"""Parsing of client-credentials token requests (RFC 6749 §2.3.1, §4.4.2, §5.2)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from ..core.fetch.basic_auth import parse_basic_authorization
from .minting import json_bytes

_NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
#: The answer to a token request by another method than POST (RFC 6749 §3.2).
NOT_POST = (
    405,
    [("Allow", "POST"), *_NO_STORE],
    json_bytes({"error": "invalid_request", "error_description": "use POST"}),
)


class OAuthError(Exception):
    """An RFC 6749 §5.2 error response of the token endpoint.

    ``basic_realm`` is set when the client used HTTP Basic: the response
    then carries a matching ``WWW-Authenticate`` challenge; ``dpop_nonce``
    is sent as ``DPoP-Nonce`` (RFC 9449 §8).
    """

    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        basic_realm: str | None = None,
        *,
        dpop_nonce: str | None = None,
    ) -> None:
        super().__init__(error)
        self.dpop_nonce = dpop_nonce
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


def grant(
    headers: Mapping[str, str],
    body: bytes,
    realm: str,
    client: Callable[[str], tuple[str, dict[str, Any]] | None],
) -> dict[str, Any]:
    """The claims of the token a client-credentials request is granted (RFC 6749 §4.4).

    :param realm: the Basic realm of a ``401`` to a client that used Basic.
    :param client: client_id -> (secret, claims of its tokens), or None if unknown.
    :raises OAuthError: the RFC 6749 §5.2 error to answer instead.
    """
    params = parameters(headers.get("Content-Type", ""), body)
    basic = basic_credentials(headers.get("Authorization", ""), realm)

    client_id = single(params, "client_id")
    secret = single(params, "client_secret")
    if basic is not None:
        # RFC 6749 §2.3: one authentication method per request.
        if secret is not None:
            raise OAuthError(400, "invalid_request", "client credentials sent by two methods")
        if client_id is not None and client_id != basic[0]:
            raise OAuthError(400, "invalid_request", "client_id differs from Basic")
        client_id, secret = basic
    grant_type = single(params, "grant_type")
    if grant_type is None:
        raise OAuthError(400, "invalid_request", "grant_type is required")

    known = client(client_id) if client_id is not None else None
    if known is None or secret is None or not hmac.compare_digest(known[0].encode(), secret.encode()):
        raise OAuthError(
            401,
            "invalid_client",
            "client authentication failed",
            realm if basic is not None else None,
        )
    if grant_type != "client_credentials":
        raise OAuthError(400, "unsupported_grant_type", "only client_credentials is supported")
    assert client_id is not None
    claims = dict(known[1])

    scope = single(params, "scope")
    if scope is not None:
        requested = scope.split()
        allowed = claims.get("scope")
        if isinstance(allowed, str) and not set(requested) <= set(allowed.split()):
            raise OAuthError(400, "invalid_scope", "scope not granted to this client")
        claims["scope"] = " ".join(requested)
    # RFC 8707 `resource` (repeatable) and Auth0-style `audience` -> aud.
    audiences = params.get("resource", []) + params.get("audience", [])
    if audiences:
        claims["aud"] = audiences[0] if len(audiences) == 1 else audiences
    claims.setdefault("sub", client_id)
    claims["client_id"] = client_id
    return claims


def answer(issue: Callable[[], dict[str, Any]]) -> tuple[int, list[tuple[str, str]], bytes]:
    """The token endpoint's response: ``issue()``'s answer (RFC 6749 §5.1) or its error (§5.2), never cached."""
    try:
        result = issue()
    except OAuthError as exc:
        extra = list(_NO_STORE)
        if exc.basic_realm is not None:
            extra.append(("WWW-Authenticate", f'Basic realm="{exc.basic_realm}"'))
        if exc.dpop_nonce is not None:
            extra.append(("DPoP-Nonce", exc.dpop_nonce))
        error = {"error": exc.error, "error_description": exc.description}
        return exc.status, extra, json_bytes(error)
    return 200, list(_NO_STORE), json_bytes(result)
