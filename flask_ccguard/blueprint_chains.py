"""Which blueprints registered each endpoint of an app, recorded while Flask registers them.

An endpoint's name (``"bp.view"``) does not say it is one of ``bp``'s views: an
app-level rule may be named so. :func:`track` hooks a blueprint's registration
and notes, per app, the blueprints (outermost first) behind each endpoint it
routes; :func:`blueprints_of` reads that back for the exemption, the resource
of a blueprint (RFC 9728 §3.1) and the routes map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary, WeakSet

from flask import Flask

if TYPE_CHECKING:
    # Flask 3 registers nested blueprints typed as its sansio base class (flask>=2.2 at run time).
    from flask.sansio.blueprints import Blueprint as AnyBlueprint

__all__ = ["blueprints_of", "is_tracked", "track"]

#: Per app, endpoint → the blueprints that registered it, outermost first, as
#: recorded while Flask registered them (:func:`track`), never read off the name.
_CHAINS: WeakKeyDictionary[Flask, dict[str, tuple[AnyBlueprint, ...]]] = WeakKeyDictionary()
#: Blueprints whose registrations are recorded in :data:`_CHAINS`.
_TRACKED: WeakSet[AnyBlueprint] = WeakSet()


def _record_chain(state: Any) -> None:
    # Runs first among the blueprint's setup functions for each registration:
    # every view it routes afterwards goes through state.add_url_rule, which
    # this wraps to note the endpoint Flask made and the blueprints it belongs to.
    app: Flask = state.app
    name = f"{state.name_prefix}.{state.name}".lstrip(".")
    parts = name.split(".")
    # The blueprint and its parents, registered under these dotted names
    # before their setup functions run (Flask's Blueprint.register).
    chain = tuple(
        bp for bp in (app.blueprints.get(".".join(parts[:depth])) for depth in range(1, len(parts) + 1)) if bp
    )
    chains = _CHAINS.setdefault(app, {})
    add_url_rule = state.add_url_rule

    def recording(rule: str, endpoint: str | None = None, view_func: Any = None, **options: Any) -> None:
        add_url_rule(rule, endpoint, view_func, **options)
        short = endpoint if endpoint is not None else getattr(view_func, "__name__", None)
        full = f"{name}.{short}"
        if short is not None and full in app.view_functions:
            chains[full] = chain

    state.add_url_rule = recording
    # Nested blueprints are registered after these setup functions, each with a state of its own.
    for child, _options in getattr(state.blueprint, "_blueprints", ()):
        track(child)


def track(blueprint: AnyBlueprint) -> None:
    """Record, at each registration of ``blueprint`` (and of those nested in it),
    which endpoints it routes: what :func:`is_public`, :func:`resource_of` and
    the routes map read, so an app-level endpoint named ``"<blueprint>.x"`` is
    not taken for one of the blueprint's views.
    """
    if blueprint in _TRACKED:
        return
    _TRACKED.add(blueprint)
    # First, so the views routed by the blueprint's earlier setup functions are seen too.
    blueprint.deferred_functions.insert(0, _record_chain)


def is_tracked(blueprint: AnyBlueprint) -> bool:
    """Whether :func:`track` hooks ``blueprint``'s registrations."""
    return blueprint in _TRACKED


def blueprints_of(app: Flask, endpoint: str) -> tuple[AnyBlueprint, ...]:
    """The blueprints that registered ``endpoint`` on ``app``, outermost first."""
    # From registration (track()), not the endpoint's name: an app-level rule
    # may be named "bp.view" without being one of bp's views.
    return _CHAINS.get(app, {}).get(endpoint, ())
