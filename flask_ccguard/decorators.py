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
from typing import Any, Callable, Literal, TypeVar, cast, overload

from flask import Response, after_this_request, current_app, g, has_request_context, request
from werkzeug.local import LocalProxy

from .core.bearer import extract_token
from .core.claims import VerifiedToken
from .core.errors import CCGuardError, InsufficientScope
from .signals import announce_rejected, announce_verified
from .state import CCGuardState, get_state

__all__ = [
    "current_token",
    "require_roles",
    "require_scopes",
    "require_token",
    "verify_token_in_request",
]

F = TypeVar("F", bound=Callable[..., Any])
Match = Literal["all", "any"]

_G_KEY = "_ccguard_token"
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


def _cached() -> VerifiedToken | None:
    # g belongs to the app context, which an outer `with app.app_context()`
    # shares between requests; the entry is only valid for its own request.
    entry = g.get(_G_KEY)
    if entry is not None and entry[0] is request._get_current_object():  # type: ignore[attr-defined]
        return cast(VerifiedToken, entry[1])
    return None


def _cache_private(response: Response) -> Response:
    # RFC 6750 §2.3: success responses to a query token SHOULD be "private".
    if 200 <= response.status_code < 300 and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "private"
    return response


def _token_from_request(state: CCGuardState) -> str:
    query = request.args.getlist("access_token") if state.allow_query_token else None
    form = None
    # RFC 6750 §2.2: only a single-part form-encoded body of a method with body semantics.
    if (
        state.allow_form_token
        and request.method not in ("GET", "HEAD")
        and request.mimetype == "application/x-www-form-urlencoded"
    ):
        form = request.form.getlist("access_token")
    token = extract_token(request.headers.getlist("Authorization"), query=query, form=form)
    if query:
        after_this_request(_cache_private)
    return token


def _validated_token() -> VerifiedToken:
    token = _cached()
    if token is None:
        state = get_state()
        token = state.validator.validate(_token_from_request(state))
        setattr(g, _G_KEY, (request._get_current_object(), token))  # type: ignore[attr-defined]
        announce_verified(current_app._get_current_object(), token)  # type: ignore[attr-defined]
    return token


def _lacking(have: frozenset[str], need: tuple[str, ...], match: str, what: str) -> str | None:
    if not need:
        return None
    if match == "any":
        return None if not have.isdisjoint(need) else f"The access token has none of the {what} {', '.join(need)}."
    missing = [n for n in need if n not in have]
    return f"The access token lacks the {what} {', '.join(missing)}." if missing else None


def _check_permissions(token: VerifiedToken, roles: tuple[str, ...], scopes: tuple[str, ...], match: str) -> None:
    role_problem = _lacking(token.roles, roles, match, "role(s)")
    scope_problem = _lacking(token.scopes, scopes, match, "scope(s)")
    if role_problem or scope_problem:
        # RFC 6750 §3.1: insufficient_scope is a 403, and its scope attribute
        # names the scopes a new token needs.
        raise InsufficientScope(
            " ".join(p for p in (role_problem, scope_problem) if p),
            scopes=scopes if scope_problem else (),
            roles=roles if role_problem else (),
        )


def verify_token_in_request(
    roles: Iterable[str] = (), scopes: Iterable[str] = (), match: Match = "all"
) -> VerifiedToken | None:
    """Require a valid bearer token with ``roles`` and ``scopes`` in this request.

    The token is validated at the first call of a request and reused by
    later ones (stacked decorators, :meth:`CCGuard.protect`). ``OPTIONS``
    requests (CORS preflights) pass and return None.

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
    if request.method == "OPTIONS":
        return None
    try:
        token = _validated_token()
        _check_permissions(token, roles, scopes, match)
    except CCGuardError as error:
        announce_rejected(current_app._get_current_object(), error, request.method, request.path)  # type: ignore[attr-defined]
        raise
    return token


def _guard(roles: tuple[str, ...], scopes: tuple[str, ...], match: Match) -> Callable[[F], F]:
    check_match(match)

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            verify_token_in_request(roles, scopes, match)
            # ensure_sync: the view may be a coroutine function (Flask async views).
            return current_app.ensure_sync(view)(*args, **kwargs)

        return cast(F, wrapper)

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
    decorator: Callable[[F], F] = _guard((), (), "all")
    return decorator if view is None else decorator(view)


def require_roles(*roles: str, match: Match = "all") -> Callable[[F], F]:
    """Require a valid token holding ``roles`` (all, or any one with ``match="any"``)."""
    return _guard(_given(roles, "roles", "require_roles"), (), match)


def require_scopes(*scopes: str, match: Match = "all") -> Callable[[F], F]:
    """Require a valid token holding ``scopes`` (all, or any one with ``match="any"``)."""
    return _guard((), _given(scopes, "scopes", "require_scopes"), match)


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
