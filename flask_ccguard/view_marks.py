"""What the decorators and ``@public`` write on a view, and how a class-based view's methods are read.

``@require_token``, ``@require_roles`` and ``@require_scopes`` add a
:class:`Clause` to the function they return (:data:`ATTRIBUTE`); ``@public``
marks a function (:data:`PUBLIC_ATTRIBUTE`). On a class-based view
(``View.as_view``) these may sit on ``dispatch_request`` (every method) or, for
a ``MethodView``, on the method that serves a request (``get`` serves HEAD when
there is no ``head``, as in Flask). :mod:`.protection` reads them back per endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable

from flask.views import MethodView

__all__ = [
    "ATTRIBUTE",
    "PUBLIC_ATTRIBUTE",
    "Clause",
    "method_clauses",
    "public_dispatch",
    "public_methods",
    "record",
]

#: The attribute the decorators set on the view they return.
ATTRIBUTE = "__ccguard__"
#: The attribute :func:`mark_public` sets on a view function.
PUBLIC_ATTRIBUTE = "__ccguard_public__"


@dataclass(frozen=True)
class Clause:
    """One declared requirement: a decorator or one ``guard.protect()`` call."""

    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    #: ``"all"`` or ``"any"``.
    match: str = "all"


def record(view: Callable[..., Any], clause: Clause) -> None:
    """Add ``clause`` to the requirements recorded on ``view`` (a decorator's wrapper)."""
    inner: tuple[Clause, ...] = getattr(view, ATTRIBUTE, ())
    # The outermost decorator is applied last but listed first, as written.
    setattr(view, ATTRIBUTE, (clause, *inner))


def _handler(cls: type, method: str) -> Any:
    # The method a MethodView runs for ``method``: get for HEAD without head, as Flask does.
    handler = getattr(cls, method.lower(), None)
    if handler is None and method == "HEAD":
        handler = getattr(cls, "get", None)
    return handler


def public_dispatch(cls: Any) -> bool:
    """Whether ``@public`` is written on a class-based view's ``dispatch_request`` (the whole view is open)."""
    return bool(getattr(getattr(cls, "dispatch_request", None), PUBLIC_ATTRIBUTE, False))


def method_clauses(view: Any, methods: Iterable[str]) -> dict[str, tuple[Clause, ...]]:
    """Per HTTP method, the clauses a class-based view (``View.as_view``) adds for it:
    those on ``dispatch_request`` (every method) and, for a ``MethodView`` only
    (a plain ``View``'s ``get`` is a helper), on the method serving it (``get``
    for HEAD without ``head``, as Flask does). Empty for a plain view function.
    """
    cls = getattr(view, "view_class", None)
    if not isinstance(cls, type):
        return {}
    every: tuple[Clause, ...] = getattr(getattr(cls, "dispatch_request", None), ATTRIBUTE, ())
    if not issubclass(cls, MethodView):
        return dict.fromkeys(methods, every)
    return {method: every + tuple(getattr(_handler(cls, method), ATTRIBUTE, ())) for method in methods}


def public_methods(view: Any, methods: Iterable[str]) -> frozenset[str]:
    """Those of ``methods`` a ``MethodView`` serves with a method declared
    ``@public`` (``get`` for HEAD without ``head``, as Flask does); empty for
    anything else (``@public`` on ``dispatch_request`` opens the whole view:
    :func:`is_public`).
    """
    cls = getattr(view, "view_class", None)
    if not isinstance(cls, type) or not issubclass(cls, MethodView):
        return frozenset()
    return frozenset(m for m in methods if getattr(_handler(cls, m), PUBLIC_ATTRIBUTE, False))
