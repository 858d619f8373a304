"""Default error responses: RFC 6750 §3 challenges with a JSON body.

:func:`error_response` is registered for :class:`~flask_ccguard.CCGuardError`
by :meth:`CCGuard.init_app` unless the application already handles it.
Applications replace it with Flask's own handler, and may call it from there::

    @app.errorhandler(CCGuardError)
    def refused(error):
        response = error_response(error)
        response.headers["X-Request-Id"] = g.request_id
        return response
"""

from __future__ import annotations

from flask import Response, current_app, jsonify

from .core.errors import CCGuardError, KeysUnavailable

__all__ = ["error_response"]


def error_response(error: CCGuardError, realm: str | None = None) -> Response:
    """The response for ``error``: its status, challenge and JSON body.

    * ``WWW-Authenticate: Bearer realm="…", error="…", error_description="…"``
      (plus ``scope="…"`` when scopes are missing), with every value escaped
      so that nothing from the request can break the header; none on 503,
      which is not a challenge;
    * ``{"error": "…", "error_description": "…"}``;
    * ``Retry-After`` on 503 (RFC 9110 §10.2.3).

    :param realm: the challenge's realm; by default ``CCGUARD_REALM`` of the
        current app.
    """
    if realm is None:
        realm = current_app.extensions["ccguard"].realm
    response = jsonify(error.to_dict())
    response.status_code = error.status
    if error.has_challenge:
        response.headers["WWW-Authenticate"] = error.challenge(realm)
    if isinstance(error, KeysUnavailable):
        response.headers["Retry-After"] = str(error.retry_after)
    return response
