"""View decorators, their imperative twin and ``current_token`` (RFC 6750 §2-3).

``require_token``, ``require_roles`` and ``require_scopes`` wrap
:func:`verify_token_in_request`, which reads the request's bearer token,
validates it once per request (later calls reuse it), checks roles and
scopes, and raises a :class:`~flask_ccguard.CCGuardError` that the app's
error handler turns into the RFC 6750 response.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from inspect import iscoroutinefunction
from typing import Any, Callable, Literal, TypeVar, cast, overload

from flask import Request, Response, abort, after_this_request, current_app, has_request_context, request
from werkzeug.local import LocalProxy

from .core.authorization import lacking
from .core.bearer import is_b64token
from .core.claims import VerifiedToken
from .core.errors import CCGuardError, InsufficientScope
from .core.request import BEARER_REQUEST
from .http_request import describe
from .protection import RESOURCES, requirement
from .request_token import form_body, token_from_request
from .resource_metadata import check_audience
from .route_order import remember
from .signals import announce_rejected, announce_verified, token_verified
from .state import get_state
from .view_marks import Clause, record

__all__ = [
    "current_token",
    "require_roles",
    "require_scopes",
    "require_token",
    "verify_token_in_request",
]

F = TypeVar("F", bound=Callable[..., Any])
Match = Literal["all", "any"]

# The request's VerifiedToken is kept on the request object itself: it lives
# exactly as long as the request (``g`` belongs to the app context, which an
# outer ``with app.app_context()`` shares between requests).
_TOKEN_ATTR = "_ccguard_token"
_DECORATORS = "@require_token, @require_roles, @require_scopes or guard.protect()"


def check_match(match: str) -> None:
    """Refuse a ``match`` other than ``"all"`` or ``"any"`` (at decoration time)."""
    if match not in ("all", "any"):
        raise ValueError(f"match must be 'all' or 'any', not {match!r}")


def names(values: Iterable[str], what: str) -> tuple[str, ...]:
    """``values`` as a tuple of role or scope names, checked."""
    if isinstance(values, str):
        # roles="admin" would otherwise demand the roles "a", "d", "m", ...
        raise TypeError(f"{what} must be a list of names, e.g. {what}=[{values!r}]")
    result = tuple(values)
    if not all(isinstance(v, str) and v for v in result):
        raise TypeError(f"{what} must be non-empty strings, got {result!r}")
    return result


def _cached(req: Request | None = None) -> VerifiedToken | None:
    if req is None:
        req = request._get_current_object()  # type: ignore[attr-defined]
    return cast("VerifiedToken | None", getattr(req, _TOKEN_ATTR, None))


def _with_nonce(nonce: str) -> Callable[[Response], Response]:
    def add(response: Response) -> Response:
        response.headers.setdefault("DPoP-Nonce", nonce)
        return response

    return add


def _validated_token(req: Request) -> VerifiedToken:
    token: VerifiedToken | None = getattr(req, _TOKEN_ATTR, None)
    if token is None:
        state = get_state()
        validator = state.validator
        header = req.environ.get("HTTP_AUTHORIZATION")
        if (
            header is not None
            and header[:7].lower() == "bearer "
            and not state.allow_query_token
            and not state.allow_form_token
        ):
            # The common case, "Bearer <b64token>" exactly: the token is what
            # the general path would extract, found without its regexes.
            probe = header[7:]
            raw = probe if is_b64token(probe) else token_from_request(state, req)
            bearer = True
        else:
            raw = token_from_request(state, req)
            bearer = False
        # Described only when a binding step (DPoP, mTLS) will read it.
        bindings = validator.pipeline.bindings
        sender = state.sender
        if not bindings:
            described = None
        elif bearer and sender.bearer_only_suffices(bindings):
            # RFC 9449 §7.2: the step reads only the scheme of a Bearer request.
            described = BEARER_REQUEST
        else:
            described = describe(req, sender)
        token = validator.validate(raw, described)
        if RESOURCES:
            # The app has resources of its own (guard.protect(bp, resource=...)): the endpoint's must be named.
            check_audience(current_app._get_current_object(), req.endpoint, token)  # type: ignore[attr-defined]
        if sender.nonce is not None and "HTTP_DPOP" in req.environ:
            # RFC 9449 §8.2: a DPoP client learns the next nonce from any response.
            after_this_request(_with_nonce(sender.nonce.current()))
        setattr(req, _TOKEN_ATTR, token)
        if token_verified.receivers:  # blinker's send() costs even with no receiver
            announce_verified(current_app._get_current_object(), token)  # type: ignore[attr-defined]
    return token


def _check_permissions(token: VerifiedToken, roles: tuple[str, ...], scopes: tuple[str, ...], match: str) -> None:
    # Each claim is parsed only when the view asks for it.
    role_problem = lacking(token.roles, roles, match, "role(s)") if roles else None
    scope_problem = lacking(token.scopes, scopes, match, "scope(s)") if scopes else None
    if scope_problem:
        # Only when the scopes as granted fall short: a broader scope may imply the rest.
        hierarchy = get_state().settings.get("CCGUARD_SCOPE_HIERARCHY")
        if hierarchy is not None:
            scope_problem = lacking(hierarchy.expand(token.scopes), scopes, match, "scope(s)")
    if role_problem or scope_problem:
        # RFC 6750 §3.1: insufficient_scope is a 403, and its scope attribute
        # names the scopes a new token needs: all the operation requires
        # (RFC 9728 §5.1), not only this clause's, or the client would step up
        # one refusal at a time.
        raise InsufficientScope(
            " ".join(p for p in (role_problem, scope_problem) if p),
            scopes=_all_scopes(scopes) if scope_problem else (),
            roles=roles if role_problem else (),
        )


def _all_scopes(scopes: tuple[str, ...]) -> tuple[str, ...]:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    endpoint = request.endpoint
    declared = requirement(app, endpoint).scopes if endpoint is not None else ()
    return tuple(dict.fromkeys((*declared, *scopes)))


def verify_token_in_request(
    roles: Iterable[str] = (), scopes: Iterable[str] = (), match: Match = "all"
) -> VerifiedToken:
    """Require a valid bearer token with ``roles`` and ``scopes`` in this request.

    The token is validated at the first call of a request and reused by
    later ones (stacked decorators, :meth:`CCGuard.protect`). An ``OPTIONS``
    request without credentials (a CORS preflight) is answered with Flask's
    default ``OPTIONS`` response at once: the rest of the view never runs
    for it. With credentials, it is checked like any other request.

    :param match: ``"all"``: every role and every scope is needed; ``"any"``:
        one of the roles and one of the scopes is enough.
    :returns: the :class:`~flask_ccguard.VerifiedToken`, also
        :data:`current_token`.
    :raises CCGuardError: :class:`~flask_ccguard.MissingToken`,
        :class:`~flask_ccguard.InvalidRequest`, :class:`~flask_ccguard.InvalidToken`,
        :class:`~flask_ccguard.InsufficientScope` or
        :class:`~flask_ccguard.KeysUnavailable`; each is logged and sent
        as :data:`~flask_ccguard.token_rejected`.
    """
    roles, scopes = names(roles, "roles"), names(scopes, "scopes")
    check_match(match)
    token = verify_request(roles, scopes, match)
    if token is None:
        # The caller's code after this call must not run unauthenticated.
        if request.routing_exception is not None:
            raise request.routing_exception  # in a before_request function: Flask's 404/405
        abort(current_app.make_default_options_response())
    return token


def _has_credentials(req: Request) -> bool:
    # Browsers send CORS preflights without credentials (Fetch standard,
    # "CORS-preflight request"); any credential means a real request to check.
    if "HTTP_AUTHORIZATION" in req.environ:
        return True
    state = get_state()
    if state.allow_query_token and "access_token" in req.args:
        return True
    return state.allow_form_token and form_body(req) and "access_token" in req.form


def verify_request(roles: tuple[str, ...], scopes: tuple[str, ...], match: str) -> VerifiedToken | None:
    # verify_token_in_request() without re-checking arguments the decorators
    # checked once, at decoration time. None: an OPTIONS request without
    # credentials, which the caller answers without running the view.
    req: Request = request._get_current_object()  # type: ignore[attr-defined]
    if req.method == "OPTIONS" and not _has_credentials(req):
        return None
    try:
        token = _validated_token(req)
        if roles or scopes:
            _check_permissions(token, roles, scopes, match)
    except CCGuardError as error:
        announce_rejected(current_app._get_current_object(), error, req.method, req.path)  # type: ignore[attr-defined]
        raise
    return token


def _guard(roles: tuple[str, ...], scopes: tuple[str, ...], match: Match, written: str) -> Callable[[F], F]:
    check_match(match)
    # What protection.requirements() reads back (the routes map, scopes_supported).
    clause = Clause(roles, scopes, match)

    def decorator(view: F) -> F:
        # A route decorator below this one has registered the bare view: see route_order.
        remember(view, written)
        if not iscoroutinefunction(view):
            # Flask's ensure_sync() returns a plain function as it is; asking
            # once here spares every request the inspection.
            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if verify_request(roles, scopes, match) is None:
                    return current_app.make_default_options_response()
                return view(*args, **kwargs)

            record(wrapper, clause)
            return cast(F, wrapper)

        @functools.wraps(view)
        def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            if verify_request(roles, scopes, match) is None:
                return current_app.make_default_options_response()
            # ensure_sync: Flask runs the coroutine function (Flask async views).
            return current_app.ensure_sync(view)(*args, **kwargs)

        record(async_wrapper, clause)
        return cast(F, async_wrapper)

    return decorator


def _given(values: tuple[Any, ...], what: str, decorator: str) -> tuple[str, ...]:
    if not values:
        raise TypeError(f"{decorator}() needs at least one name; use @require_token to require only a valid token")
    if any(not isinstance(v, str) for v in values):
        raise TypeError(f"pass {what} as separate arguments, e.g. {decorator}('a', 'b')")
    return names(values, what)


@overload
def require_token(view: F) -> F: ...
@overload
def require_token(view: None = None) -> Callable[[F], F]: ...
def require_token(view: F | None = None) -> F | Callable[[F], F]:
    """Require a valid bearer token; use bare (``@require_token``) or called."""
    decorator: Callable[[F], F] = _guard((), (), "all", "@require_token")
    return decorator if view is None else decorator(view)


def _written(decorator: str, values: tuple[str, ...], match: str) -> str:
    # The decorator as a user writes it, for route_order's message.
    args = [repr(v) for v in values] + ([f"match={match!r}"] if match != "all" else [])
    return f"@{decorator}({', '.join(args)})"


def require_roles(*roles: str, match: Match = "all") -> Callable[[F], F]:
    """Require a valid token holding ``roles`` (all, or any one with ``match="any"``)."""
    given = _given(roles, "roles", "require_roles")
    return _guard(given, (), match, _written("require_roles", given, match))


def require_scopes(*scopes: str, match: Match = "all") -> Callable[[F], F]:
    """Require a valid token holding ``scopes`` (all, or any one with ``match="any"``)."""
    given = _given(scopes, "scopes", "require_scopes")
    return _guard((), given, match, _written("require_scopes", given, match))


def _current_token() -> VerifiedToken:
    token = _cached() if has_request_context() else None
    if token is None:
        raise RuntimeError(
            f"current_token is only set in a view protected by {_DECORATORS}, "
            "or after verify_token_in_request(); add one of them to this view."
        )
    return token


#: The :class:`~flask_ccguard.VerifiedToken` of the current request.
current_token: VerifiedToken = LocalProxy(_current_token)  # type: ignore[assignment]
