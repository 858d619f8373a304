"""Open views in a protected app: ``@public`` and the contradiction check.

A view is declared open with :func:`public` or ``guard.exempt(view |
ViewClass | blueprint | "endpoint")`` (the idiom of Flask-WTF's ``CSRFProtect.exempt``);
both record it through :func:`~flask_ccguard.protection.mark_public`.
:meth:`CCGuard.protect <flask_ccguard.CCGuard.protect>` then lets its
requests through without a token. ``@public`` on one method of a
``MethodView`` opens only the requests that method serves. A view declared open that also carries a
ccguard decorator contradicts itself: :func:`check_exemptions` refuses it at
start-up, naming the view.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from flask import Flask

from .core.errors import ConfigurationError
from .protection import is_public, mark_public, protected_inside_public
from .view_marks import ATTRIBUTE, method_clauses, public_methods

__all__ = ["check_exemptions", "public"]

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

F = TypeVar("F", bound=Callable[..., Any])


def _contradiction(name: str, endpoint: str | None) -> ConfigurationError:
    where = f" (endpoint {endpoint!r})" if endpoint else ""
    return ConfigurationError(
        f"The view {name!r}{where} is declared public (@public or guard.exempt()) and also carries "
        "@require_token, @require_roles or @require_scopes: it cannot be both open and protected. "
        "Remove the decorator to serve it open, or the exemption to protect it."
    )


def _class_wide(name: str, endpoint: str, method: str) -> ConfigurationError:
    return ConfigurationError(
        f"The class-based view {name!r} (endpoint {endpoint!r}) declares its method {method.lower()}() "
        "@public, but @require_token, @require_roles or @require_scopes wraps the whole view (its "
        "'decorators' attribute, or a decorator around as_view()), so every method needs a token. "
        "Put the decorator on the methods to protect instead, or remove @public."
    )


def public(view: F) -> F:
    """Declare ``view`` open: :meth:`CCGuard.protect <flask_ccguard.CCGuard.protect>`
    does not apply to it and ``flask ccguard routes`` lists it as public.

    Use it under the route decorator, like the ccguard decorators::

        @app.get("/health")
        @public
        def health():
            return {"ok": True}

    On one method of a ``MethodView`` it opens the requests that method
    serves (``get`` serves HEAD too without a ``head``), the others stay
    protected; on ``dispatch_request``, the whole view.

    :raises ConfigurationError: ``view`` carries a ccguard decorator (also
        checked at start-up when ``@public`` is written above it).
    """
    if getattr(view, ATTRIBUTE, ()):
        raise _contradiction(getattr(view, "__name__", repr(view)), None)
    mark_public(view)
    return view


def check_exemptions(app: Flask) -> None:
    """Refuse a view of ``app`` that is declared open and carries a ccguard decorator.

    Likewise a blueprint declared public (``guard.exempt(bp)``) that is, or
    holds, a blueprint given to ``guard.protect()``: its views would be served
    open while ``protect()`` says they need a token.

    :raises ConfigurationError: naming the first such view and its endpoint,
        or the two blueprints.
    """
    for endpoint, view in list(app.view_functions.items()):
        # A class-based view may carry the decorators on its methods instead.
        clauses = method_clauses(view, _METHODS)
        wrapped = bool(getattr(view, ATTRIBUTE, ()))
        if (wrapped or any(clauses.values())) and is_public(app, endpoint):
            raise _contradiction(getattr(view, "__name__", endpoint), endpoint)
        opened = sorted(public_methods(view, _METHODS))
        if opened:
            cls_name = getattr(view, "view_class").__name__  # noqa: B009 (a MethodView's view function)
            if wrapped:
                # A decorator around the view function runs for every method: it
                # cannot tell the @public one apart, so @public would silently lose.
                raise _class_wide(cls_name, endpoint, opened[0])
            guarded = [m for m in opened if clauses.get(m)]
            if guarded:
                raise _contradiction(f"{cls_name}.{guarded[0].lower()}", endpoint)
        both = protected_inside_public(app, endpoint)
        if both is not None:
            public_bp, protected_bp = both
            inside = "" if public_bp is protected_bp else f", which holds the blueprint {protected_bp.name!r},"
            raise ConfigurationError(
                f"The blueprint {public_bp.name!r} is declared public (guard.exempt()){inside} and "
                f"guard.protect() was called on {protected_bp.name!r}: its views (endpoint {endpoint!r}) "
                "cannot be both open and protected. Remove the exemption to protect them, or the "
                "guard.protect() call to serve them open; exempt single views with @public."
            )
