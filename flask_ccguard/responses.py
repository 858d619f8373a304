"""Default error responses: challenges for each accepted scheme (RFC 9110 §11.6.1, RFC 6750 §3), a JSON body.

:func:`error_response` is registered for :class:`~flask_ccguard.CCGuardError`
by :meth:`CCGuard.init_app` unless the application already handles it.
Applications replace it with Flask's own handler, and may call it from there::

    @app.errorhandler(CCGuardError)
    def refused(error):
        response = error_response(error)
        response.headers["X-Request-Id"] = g.request_id
        return response

The challenges are built here, where the accepted schemes and the common
auth-params are known (:class:`~flask_ccguard.state.CCGuardState`'s
``schemes`` and ``challenge_params``); errors only name their code and status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from flask import Response, current_app, has_request_context, jsonify, request

from .core.errors import CCGuardError, format_challenge
from .protection import RESOURCES
from .resource_metadata import challenge_params as resource_challenge_params

__all__ = ["BEARER", "Scheme", "challenges", "error_response"]

#: An accepted scheme and its own auth-params, e.g. ``("DPoP", {"algs": "ES256 PS256"})``.
Scheme = tuple[str, Mapping[str, str]]
#: What the extension offers unless configured otherwise.
BEARER: tuple[Scheme, ...] = (("Bearer", {}),)


def challenges(
    error: CCGuardError | None,
    schemes: Iterable[Scheme] = BEARER,
    params: Mapping[str, str | None] | None = None,
) -> list[str]:
    """One ``WWW-Authenticate`` challenge per accepted scheme, in order.

    Each challenge carries, in this order: ``params`` (common to every scheme,
    e.g. ``realm``, ``resource_metadata`` of RFC 9728 §5.1; None values are
    left out), then the error's own params (``error``, ``error_description``,
    ``scope``; RFC 6750 §3) on the challenges of :attr:`error.scheme
    <flask_ccguard.CCGuardError.scheme>` (every scheme when it is None), then
    the scheme's own params (e.g. ``algs``, RFC 9449 §7.1). Values are quoted
    and escaped by :func:`~flask_ccguard.core.errors.quote_param`.

    For example ``challenges(InvalidToken(), (("DPoP", {"algs": "ES256"}),
    ("Bearer", {})), {"realm": "api"})`` gives::

        ['DPoP realm="api", error="invalid_token", error_description="The access token is invalid.", algs="ES256"',
         'Bearer realm="api", error="invalid_token", error_description="The access token is invalid."']

    :param error: the refusal, or None for the challenges alone.
    :param schemes: ``(scheme, its params)`` pairs.
    :param params: auth-params of every challenge.
    """
    common = [(name, value) for name, value in (params or {}).items() if value is not None]
    own = error.challenge_params() if error is not None else []
    return [
        format_challenge(
            scheme,
            common + (own if error is None or error.scheme in (None, scheme) else []) + list(extra.items()),
        )
        for scheme, extra in schemes
    ]


def error_response(error: CCGuardError, realm: str | None = None) -> Response:
    """The response for ``error``: its status, challenges, headers and JSON body.

    * ``WWW-Authenticate: Bearer realm="…", error="…", error_description="…"``
      (plus ``scope="…"`` when scopes are missing) for each scheme the app
      accepts, as one comma-separated field (RFC 9110 §11.6.1), with every
      value escaped so that nothing from the request can break the header;
      none on 503, which is not a challenge;
    * ``{"error": "…", "error_description": "…"}``;
    * the error's own headers: ``Retry-After`` on 503 (RFC 9110 §10.2.3).

    :param realm: the challenge's realm; by default ``CCGUARD_REALM`` of the
        current app.
    """
    state = current_app.extensions["ccguard"]
    response = jsonify(error.to_dict())
    response.status_code = error.status
    if error.has_challenge:
        params = {"realm": (state.realm if realm is None else realm) or None, **state.challenge_params}
        if RESOURCES and has_request_context():
            # A blueprint that is a resource of its own names its own document (RFC 9728 §5.1).
            params.update(resource_challenge_params(current_app._get_current_object(), request.endpoint))  # type: ignore[attr-defined]
        response.headers["WWW-Authenticate"] = ", ".join(challenges(error, state.schemes, params))
    response.headers.update(error.headers())
    return response
