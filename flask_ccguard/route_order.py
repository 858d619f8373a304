"""The check that route decorators sit above ccguard's, else a view is served open.

``@require_token`` written above ``@app.route`` wraps the function *after*
the route registered it: the app serves the bare function and the check never
runs. Python gives a decorator no way to see that, so the decorators record
every function they wrap (:func:`remember`) and :func:`check_route_order`
looks for those originals among an app's views, at ``init_app`` and before
the app's first request (when every blueprint is registered).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable
from weakref import WeakKeyDictionary

from flask import Flask

from .core.errors import ConfigurationError

__all__ = ["check_route_order", "remember"]

#: Every function a ccguard decorator wrapped -> that decorator, as written.
_WRAPPED: WeakKeyDictionary[Callable[..., Any], str] = WeakKeyDictionary()
#: __wrapped__ links followed from a view; real decorator stacks are shallow.
_MAX_DEPTH = 32


def remember(original: Callable[..., Any], decorator: str) -> None:
    """Record that ``decorator`` (e.g. ``"@require_token"``) wrapped ``original``."""
    # A callable that takes no weak reference (a builtin) goes unchecked.
    with contextlib.suppress(TypeError):
        _WRAPPED.setdefault(original, decorator)


def _reaches(func: Any, original: Any) -> bool:
    # Whether func is a wrapper (functools.wraps sets __wrapped__) around original.
    for _ in range(_MAX_DEPTH):
        func = getattr(func, "__wrapped__", None)
        if func is None:
            return False
        if func is original:
            return True
    return False


def _left_open(func: Any, views: list[Any]) -> bool:
    if any(_reaches(view, func) for view in views):
        # The wrapper is served too: the bare function is a deliberate open twin.
        return False
    qualname = getattr(func, "__qualname__", "")
    if "<locals>" in qualname:
        # Defined in a function (an app factory): the wrapper is served nowhere.
        return True
    # Defined in a module: the decorator order is wrong when the module's name
    # for the function holds the wrapper instead (the function may be served
    # bare on purpose elsewhere and wrapped inline for another app).
    module = sys.modules.get(getattr(func, "__module__", None) or "")
    held = getattr(module, qualname, None) if module is not None and "." not in qualname else None
    return held is not None and _reaches(held, func)


def check_route_order(app: Flask) -> None:
    """Refuse to serve a view that a ccguard decorator wrapped after it was routed.

    :raises ConfigurationError: naming the view and showing the right order.
    """
    views = list(app.view_functions.items())
    for endpoint, func in views:
        try:
            decorator = _WRAPPED.get(func)
        except TypeError:  # an unhashable view object
            continue
        if decorator is None or not _left_open(func, [view for _, view in views]):
            continue
        name = getattr(func, "__name__", endpoint)
        route = f"@{endpoint.rpartition('.')[0]}.route(...)" if "." in endpoint else "@app.route(...)"
        raise ConfigurationError(
            f"The view {name!r} (endpoint {endpoint!r}) is served without its {decorator} check: "
            f"{decorator} is written above the route decorator, which had already registered the bare "
            f"function. Put the route decorator on top:\n\n    {route}\n    {decorator}\n    def {name}(...):"
        )
