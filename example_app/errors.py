"""JSON error responses for everything that is not a token error.

Token errors (``CCGuardError``) are answered by flask_ccguard per RFC 6750 §3;
the token endpoint answers per RFC 6749 §5.2. Everything else -- validation,
404, 405, 413, and any bug -- is a grpc-gateway style JSON status, so no
client ever sees an HTML page or a traceback.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError

from .validation import ApiError

log = logging.getLogger("example_app")


def _respond(error: ApiError, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(error.body())
    response.status_code = error.status
    response.headers.update(headers or {})
    return response


def _api_error(exc: ApiError) -> Response:
    return _respond(exc)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    messages = {
        404: "not found",
        405: "method not allowed",
        413: "the request body is too large",
    }
    message = messages.get(status, exc.name.lower())
    # Keep Allow on 405 (RFC 9110 §15.5.6) and any other header werkzeug set.
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return _respond(ApiError(status, message), headers)


def _unexpected(exc: Exception) -> Response:
    # The details go to the log only; the client gets a plain 500.
    log.error("unexpected error", exc_info=exc)
    return _respond(ApiError(500, "internal error"))


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(InternalServerError, _unexpected)
    app.register_error_handler(Exception, _unexpected)
