"""The check that route decorators sit above ccguard's, else a view is served open.

``@require_token`` written above ``@app.route`` wraps the function *after*
the route registered it: the app serves the bare function and the check never
runs. Python gives a decorator no way to see that, so the decorators record
every function they wrap (:func:`remember`) and :func:`check_route_order`
looks for those originals - and every function they wrap in turn, through
``__wrapped__`` - among an app's views, at ``init_app`` and before
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


def _beneath(original: Any) -> list[Any]:
    # original and every function it wraps: a decorator between the route
    # decorator and ccguard's (@require_token / @other / @app.route) hands
    # ccguard a wrapper while the route registered the bare function below it.
    chain = [original]
    for _ in range(_MAX_DEPTH):
        original = getattr(original, "__wrapped__", None)
        if original is None:
            break
        chain.append(original)
    return chain


def _reaches(func: Any, original: Any) -> bool:
    # Whether func is a wrapper (functools.wraps sets __wrapped__) around original.
    return any(inner is original for inner in _beneath(func)[1:])


def _left_open(original: Any, served: Any, views: list[Any]) -> bool:
    # served is a view of this app that ccguard's wrapper around original is
    # built on (served is original, or original wraps it).
    if any(_reaches(view, original) for view in views):
        # The wrapper is served too: the bare function is a deliberate open twin.
        return False
    qualname = getattr(served, "__qualname__", "")
    if "<locals>" in qualname:
        # Defined in a function (an app factory): the wrapper is served nowhere.
        return True
    # Defined in a module: a function served bare on purpose (and wrapped
    # inline for another app) is what the module's name for it holds. A
    # misordered view's name holds the ccguard wrapper, or - when the name was
    # reused for a later function - something else entirely.
    module = sys.modules.get(getattr(served, "__module__", None) or "")
    if module is None or "." in qualname:
        return False  # a method or a class attribute: no module name to compare with
    return getattr(module, qualname, None) is not served


def check_route_order(app: Flask) -> None:
    """Refuse to serve a view that a ccguard decorator wrapped after it was routed.

    :raises ConfigurationError: naming the view and showing the right order.
    """
    views = list(app.view_functions.items())
    endpoints: dict[int, str] = {id(func): endpoint for endpoint, func in views}
    funcs = [func for _, func in views]
    for original, decorator in list(_WRAPPED.items()):
        for func in _beneath(original):
            endpoint = endpoints.get(id(func))
            if endpoint is None or not _left_open(original, func, funcs):
                continue
            name = getattr(func, "__name__", endpoint)
            route = f"@{endpoint.rpartition('.')[0]}.route(...)" if "." in endpoint else "@app.route(...)"
            raise ConfigurationError(
                f"The view {name!r} (endpoint {endpoint!r}) is served without its {decorator} check: "
                f"{decorator} is written above the route decorator, which had already registered the bare "
                f"function. Put the route decorator on top:\n\n    {route}\n    {decorator}\n    def {name}(...):"
            )
