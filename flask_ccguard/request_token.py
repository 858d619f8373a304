"""Reading the bearer token from a Flask request (RFC 6750 §2), and saying what was sent instead.

:func:`token_from_request` is the general path of :mod:`.decorators` (header, and
the query string or form body when allowed); a missing token's message names what
the request carried instead of a bearer token, never the value itself.
"""

from __future__ import annotations

import re

from flask import Request, Response, after_this_request

from .core.bearer import extract_token
from .core.errors import MissingToken
from .state import CCGuardState

__all__ = ["form_body", "token_from_request"]


def _cache_private(response: Response) -> Response:
    # RFC 6750 §2.3: success responses to a query token SHOULD be "private".
    if 200 <= response.status_code < 300 and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "private"
    return response


# A scheme name short and plain enough to repeat without echoing a credential
# (RFC 9110 §11.1: auth-scheme = token); anything else stays unnamed.
_SCHEME_NAME = re.compile(r"[A-Za-z][A-Za-z-]{0,19}")
_SEND_BEARER = "send it in the Authorization header as 'Bearer <token>'."


def form_body(req: Request) -> bool:
    """Whether ``req``'s body may carry ``access_token``: RFC 6750 §2.2 allows only
    a single-part form-encoded body of a method with body semantics."""
    return req.method not in ("GET", "HEAD") and req.mimetype == "application/x-www-form-urlencoded"


def _missing_because(state: CCGuardState, req: Request) -> str | None:
    """What the request sent instead of a bearer token (never the value itself), or None."""
    header = req.environ.get("HTTP_AUTHORIZATION")
    if header is not None:
        scheme, separator, _ = header.strip(" \t").replace("\t", " ").partition(" ")
        if not scheme:
            return "The Authorization header is empty; this API expects 'Bearer <token>'."
        if not separator:
            # One word: most likely a token without its scheme; never repeat it.
            return "The Authorization header has no scheme before its credentials; this API expects 'Bearer <token>'."
        if _SCHEME_NAME.fullmatch(scheme):
            return f"The Authorization header uses the {scheme!r} scheme; this API expects 'Bearer <token>'."
        return "The Authorization header uses an unrecognised scheme; this API expects 'Bearer <token>'."
    if not state.allow_query_token and "access_token" in req.args:
        return "A token was sent in the query string, which this API does not accept; " + _SEND_BEARER
    if not state.allow_form_token and form_body(req) and "access_token" in req.form:
        return "A token was sent in the form body, which this API does not accept; " + _SEND_BEARER
    return None


def token_from_request(state: CCGuardState, req: Request) -> str:
    try:
        return _read_token(state, req)
    except MissingToken:
        # Still RFC 6750 §3.1's bare 401 (no error code): only the text says more.
        raise MissingToken(_missing_because(state, req)) from None


def _read_token(state: CCGuardState, req: Request) -> str:
    # WSGI hands over every Authorization field as one HTTP_AUTHORIZATION value
    # (joined by commas), so this is what request.headers.getlist() would
    # return, without its walk over the whole environ.
    header = req.environ.get("HTTP_AUTHORIZATION")
    authorization = [] if header is None else [header]
    dpop = state.sender.dpop_scheme
    if not state.allow_query_token and not state.allow_form_token:
        return extract_token(authorization, dpop=dpop)
    query = req.args.getlist("access_token") if state.allow_query_token else None
    form = req.form.getlist("access_token") if state.allow_form_token and form_body(req) else None
    token = extract_token(authorization, query=query, form=form, dpop=dpop)
    if query:
        after_this_request(_cache_private)
    return token
