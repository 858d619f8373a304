"""Find the one bearer token of a request (RFC 6750 §2), without any web framework.

The caller passes what it read from the request: the ``Authorization``
header values, and the ``access_token`` query and form values only when those
methods are enabled. :func:`extract_token` returns the token or raises
:class:`~flask_ccguard.core.errors.MissingToken` (no bearer credentials: 401
without an error code, RFC 6750 §3.1) or
:class:`~flask_ccguard.core.errors.InvalidRequest` (malformed, or more than
one token: 400).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .errors import InvalidRequest, MissingToken

__all__ = ["extract_token", "is_b64token", "parse_authorization"]

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_B64TOKEN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
# RFC 9110 §11.4: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
_CREDENTIALS = re.compile(r"([^ \t,]+)(?:([ \t]+)(.*))?", re.DOTALL)
# A server that receives two Authorization fields may join them with a comma
# (RFC 9110 §5.3, and WSGI does so): a Bearer credential after a comma.
_JOINED_BEARER = re.compile(r",[ \t]*bearer(?:[ \t]|$)", re.IGNORECASE)

# The common case, "Bearer <b64token>", in one pass over the header; anything
# else takes the general path below, which also classifies what is wrong.
_PLAIN_BEARER = re.compile(r"[ \t]*[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*)[ \t]*")

_MALFORMED_HEADER = "The Authorization header is malformed; send 'Authorization: Bearer <token>'."
_SEVERAL_HEADERS = "The request carries more than one Authorization header."


def is_b64token(value: str) -> bool:
    """Whether ``value`` matches the RFC 6750 §2.1 ``b64token`` grammar."""
    # The same test as _B64TOKEN.fullmatch(value), twice as fast on a 1 KB
    # token: after the trailing "=", nothing may remain once the allowed
    # characters are deleted.
    body = value.rstrip("=")
    return bool(body) and body.isascii() and not body.encode("ascii").translate(None, _B64TOKEN_CHARS)


def parse_authorization(value: str, *, dpop: bool = False) -> str | None:
    """The bearer token of one ``Authorization`` header value.

    :param dpop: also read ``DPoP <token>`` (RFC 9449 §7.1: the same token68
        syntax); the ``binding`` step then requires its proof.
    :returns: the token, or None when the credentials use another scheme
        (``Basic``, ``DPoP`` unless ``dpop``, …) and so carry no bearer token.
    :raises InvalidRequest: for ``Bearer`` credentials that are not exactly
        ``Bearer`` 1*SP b64token, or two credentials joined by a comma.
    """
    plain = _PLAIN_BEARER.fullmatch(value)
    if plain is not None:
        return plain.group(1)
    value = value.strip(" \t")
    match = _CREDENTIALS.fullmatch(value)
    # Auth schemes are case-insensitive (RFC 9110 §11.1).
    if match is None or match.group(1).lower() not in (("bearer", "dpop") if dpop else ("bearer",)):
        if _JOINED_BEARER.search(value):
            raise InvalidRequest(_SEVERAL_HEADERS, reason="multiple_tokens")
        return None
    separator, token = match.group(2), match.group(3)
    if separator is not None and token is not None and separator.strip(" ") == "" and is_b64token(token):
        return token
    if token is not None and "," in token:
        raise InvalidRequest(_SEVERAL_HEADERS, reason="multiple_tokens")
    raise InvalidRequest(_MALFORMED_HEADER, reason="malformed_header")


def _parameter(values: Sequence[str] | None, where: str) -> str | None:
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequest(f"The {where} carries more than one access_token.", reason="multiple_tokens")
    if not is_b64token(values[0]):
        raise InvalidRequest(f"The access_token in the {where} is malformed.", reason="malformed_parameter")
    return values[0]


def extract_token(
    authorization: Sequence[str],
    *,
    query: Sequence[str] | None = None,
    form: Sequence[str] | None = None,
    dpop: bool = False,
) -> str:
    """The request's single bearer token.

    :param authorization: the values of every ``Authorization`` header field.
    :param query: the ``access_token`` URI query values (RFC 6750 §2.3), or
        None when that method is not enabled.
    :param form: the ``access_token`` values of a form-encoded body
        (RFC 6750 §2.2), or None when that method is not enabled or the
        request does not qualify (the caller checks method and media type).
    :param dpop: also accept ``Authorization: DPoP <token>`` (RFC 9449 §7.1).
    :raises MissingToken: when the request has no bearer credentials.
    :raises InvalidRequest: when it has malformed ones, or more than one.
    """
    if query is None and form is None and len(authorization) == 1:
        # Only the header is read: its bearer token, if it has one, is the token.
        token = parse_authorization(authorization[0], dpop=dpop)
        if token is not None:
            return token
    if len(authorization) > 1:
        # RFC 9110 §11.6.2: Authorization holds one set of credentials.
        raise InvalidRequest(_SEVERAL_HEADERS, reason="multiple_tokens")
    found = [
        token
        for token in (
            parse_authorization(authorization[0], dpop=dpop) if authorization else None,
            _parameter(query, "query string"),
            _parameter(form, "form body"),
        )
        if token is not None
    ]
    if not found:
        raise MissingToken()
    if len(found) > 1:
        # RFC 6750 §2: clients MUST NOT use more than one method per request.
        raise InvalidRequest("The access token was sent by more than one method.", reason="multiple_methods")
    return found[0]
