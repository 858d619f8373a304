"""What each endpoint of an app requires: the record behind the metadata document and the routes map.

The decorators (``@require_token``, ``@require_roles``, ``@require_scopes``)
record their requirement on the function they return (:mod:`.view_marks`;
stacked decorators add to it, since :func:`functools.wraps` copies the inner
function's attributes);
:meth:`CCGuard.protect <flask_ccguard.CCGuard.protect>` records its requirement
per app or blueprint (:data:`PROTECTED`), and optionally the blueprint's own
resource identifier (:data:`RESOURCES`, RFC 9728 §3.1).
:func:`mark_public` declares a view, blueprint or endpoint open (the
exemption); :func:`requirements` reads it all back per endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Union
from weakref import WeakKeyDictionary, WeakSet

from flask import Blueprint, Flask
from flask.views import View

from .blueprint_chains import blueprints_of, is_tracked, track
from .view_marks import (
    ATTRIBUTE,
    PUBLIC_ATTRIBUTE,
    Clause,
    method_clauses,
    public_dispatch,
    public_methods,
)

if TYPE_CHECKING:
    from flask.sansio.blueprints import Blueprint as AnyBlueprint

__all__ = [
    "PROTECTED",
    "RESOURCES",
    "Requirement",
    "declared_scopes",
    "dpop_in_force",
    "is_public",
    "mark_public",
    "open_endpoints",
    "protected_inside_public",
    "requirements",
    "resource_of",
    "routed_methods",
    "track",
]


@dataclass(frozen=True)
class Requirement:
    """What a request to one endpoint needs, from every clause that applies to it.

    ``roles`` and ``scopes`` are the union of the clauses' names in declaration
    order (app, outer blueprints, inner blueprints, then decorators from the
    outermost in); ``match`` is the clauses' common rule, ``"mixed"`` when
    clauses with names differ, ``"all"`` when none names anything.
    """

    #: Declared open with :func:`mark_public` (``guard.exempt``, ``@public``): nothing is required.
    public: bool
    #: A valid token is needed.
    token: bool
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    match: str = "all"
    #: The sender constraint a token must carry: ``"dpop"`` (``CCGUARD_DPOP="required"``) or None.
    binding: str | None = None
    #: The resource identifier the endpoint belongs to (RFC 9728 §2), or None.
    resource: str | None = None
    #: The clauses themselves, in the order above.
    clauses: tuple[Clause, ...] = field(default=())


Target = Union[Flask, "AnyBlueprint"]

#: guard.protect()'s clauses per app or blueprint.
PROTECTED: WeakKeyDictionary[Target, list[Clause]] = WeakKeyDictionary()
#: The resource identifier given to guard.protect(blueprint, resource=...).
RESOURCES: WeakKeyDictionary[Target, str] = WeakKeyDictionary()
#: Blueprints and apps declared public as a whole.
_PUBLIC_TARGETS: WeakSet[Target] = WeakSet()
#: Class-based views (``flask.views.View`` subclasses) declared public: every
#: view function their ``as_view`` makes (its ``view_class``), not subclasses.
_PUBLIC_CLASSES: WeakSet[type] = WeakSet()
#: Endpoint names declared public, per owner (the CCGuard that exempted them).
_PUBLIC_ENDPOINTS: WeakKeyDictionary[Any, set[str]] = WeakKeyDictionary()
#: Per app, :func:`open_endpoints`; computed at its first protected request, when
#: no view can be added any more (Flask refuses new routes then), and dropped
#: by :func:`mark_public` (a View class or an endpoint name may be routed already).
_OPEN: WeakKeyDictionary[Flask, dict[str, frozenset[str] | None]] = WeakKeyDictionary()


def mark_public(target: Callable[..., Any] | Blueprint | Flask | str, owner: Any = None) -> None:
    """Declare ``target`` open: a view function, a class-based view (each view
    function its ``as_view`` makes), a blueprint (each of its views), or an endpoint name.

    An endpoint name is app-specific, so it is kept per ``owner`` (the
    :class:`~flask_ccguard.CCGuard` whose ``exempt`` was called), and read by
    :func:`is_public` for the apps that guard is initialised on.

    :raises TypeError: an endpoint name without an ``owner``, or anything else.
    :raises RuntimeError: a blueprint already registered on an app: which
        endpoints are its views is recorded as it is registered (:func:`track`).
    """
    if isinstance(target, str):
        if owner is None:
            raise TypeError("an endpoint name is exempted through its guard: guard.exempt('endpoint')")
        _PUBLIC_ENDPOINTS.setdefault(owner, set()).add(target)
    elif isinstance(target, (Flask, Blueprint)):
        if isinstance(target, Blueprint):
            if target._got_registered_once and not is_tracked(target):
                raise RuntimeError(
                    f"guard.exempt() was called on the blueprint {target.name!r} after it was registered on "
                    "an app, whose views would stay protected. Call guard.exempt(blueprint) before "
                    "app.register_blueprint(blueprint), e.g. right where the blueprint is created."
                )
            track(target)
        _PUBLIC_TARGETS.add(target)
    elif isinstance(target, type):
        if not issubclass(target, View):
            raise TypeError(
                f"only a view function, a View/MethodView class, a blueprint or an endpoint name can be public, "
                f"not the class {target.__name__!r}"
            )
        # The view functions as_view() made (before or after this call) are
        # found by their view_class: the class itself is never routed.
        _PUBLIC_CLASSES.add(target)
    elif callable(target):
        setattr(target, PUBLIC_ATTRIBUTE, True)
    else:
        raise TypeError(f"only a view function, a blueprint or an endpoint name can be public, not {target!r}")
    _OPEN.clear()


def _owner(app: Flask) -> Any:
    state = app.extensions.get("ccguard")
    return None if state is None else state.guard


def is_public(app: Flask, endpoint: str) -> bool:
    """Whether ``endpoint`` of ``app`` was declared open (:func:`mark_public`)."""
    # The common answers first, cheaply (protect() caches the open set per app).
    view = app.view_functions.get(endpoint)
    if getattr(view, PUBLIC_ATTRIBUTE, False):
        return True
    cls = getattr(view, "view_class", None)
    if cls is not None and (cls in _PUBLIC_CLASSES or public_dispatch(cls)):
        return True
    if _PUBLIC_ENDPOINTS:
        owner = _owner(app)
        if owner is not None and endpoint in _PUBLIC_ENDPOINTS.get(owner, ()):
            return True
    if _PUBLIC_TARGETS:
        return app in _PUBLIC_TARGETS or any(bp in _PUBLIC_TARGETS for bp in blueprints_of(app, endpoint))
    return False


def open_endpoints(app: Flask) -> dict[str, frozenset[str] | None]:
    """The endpoints of ``app`` declared open → None when every method is, else
    the methods a ``MethodView`` declares ``@public`` (computed once per app).

    One mapping, so that an app without ``@public`` methods pays one ``in``
    per request as before (``protect()`` runs on every request).
    """
    found = _OPEN.get(app)
    if found is None:
        found = {}
        for endpoint, view in list(app.view_functions.items()):
            if is_public(app, endpoint):
                found[endpoint] = None
            else:
                methods = public_methods(view, routed_methods(app, endpoint))
                if methods:
                    found[endpoint] = methods
        _OPEN[app] = found
    return found


def protected_inside_public(app: Flask, endpoint: str) -> tuple[AnyBlueprint, AnyBlueprint] | None:
    """The blueprint declared public and the one at or inside it that ``guard.protect()``
    covers, among those that registered ``endpoint``; None when there is no such pair.

    Exempting a blueprint opens every view under it, so a ``protect()`` call on
    it or on a blueprint nested in it would silently not apply.
    """
    if not _PUBLIC_TARGETS:
        return None
    chain = blueprints_of(app, endpoint)
    for index, blueprint in enumerate(chain):
        if blueprint in _PUBLIC_TARGETS:
            for inner in chain[index:]:
                if PROTECTED.get(inner):
                    return blueprint, inner
            return None
    return None


def resource_of(app: Flask, endpoint: str) -> str | None:
    """The resource identifier of ``endpoint``: its innermost blueprint's, else the app's."""
    for blueprint in reversed(blueprints_of(app, endpoint)):
        if blueprint in RESOURCES:
            return RESOURCES[blueprint]
    state = app.extensions.get("ccguard")
    resource = RESOURCES.get(app)
    if resource is None and state is not None:
        resource = state.settings.get("CCGUARD_RESOURCE")
    return resource


def _clauses(app: Flask, endpoint: str) -> tuple[Clause, ...]:
    found: list[Clause] = list(PROTECTED.get(app, ()))
    for blueprint in blueprints_of(app, endpoint):
        found.extend(PROTECTED.get(blueprint, ()))
    found.extend(getattr(app.view_functions.get(endpoint), ATTRIBUTE, ()))
    return tuple(found)


def _union(groups: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for group in groups for name in group))


def dpop_in_force(state: Any) -> tuple[bool, bool]:
    """Whether DPoP-bound tokens are accepted, and whether they are required, by
    the modes in force: each issuer's own ``'dpop'`` else ``CCGUARD_DPOP``, as
    the challenges offer them (RFC 9449 §7.1), not ``CCGUARD_DPOP`` alone."""
    sender = state.sender
    # Bearer is offered unless every issuer requires DPoP (sender.configure).
    required = all(name != "Bearer" for name, _params in sender.schemes)
    return bool(sender.dpop_scheme), bool(sender.dpop_scheme) and required


def _binding(app: Flask) -> str | None:
    state = app.extensions.get("ccguard")
    if state is not None and dpop_in_force(state)[1]:
        return "dpop"
    return None


def requirement(app: Flask, endpoint: str, extra: tuple[Clause, ...] = (), *, public: bool = False) -> Requirement:
    """The :class:`Requirement` of one endpoint of ``app``; ``extra``: the
    clauses one method of a class-based view adds (:func:`method_clauses`);
    ``public``: that method is declared ``@public`` (:func:`public_methods`)."""
    clauses = _clauses(app, endpoint) + extra
    resource = resource_of(app, endpoint)
    if public or is_public(app, endpoint):
        return Requirement(public=True, token=False, resource=resource, clauses=clauses)
    matches = {c.match for c in clauses if c.roles or c.scopes}
    return Requirement(
        public=False,
        token=bool(clauses),
        roles=_union(c.roles for c in clauses),
        scopes=_union(c.scopes for c in clauses),
        match=matches.pop() if len(matches) == 1 else ("mixed" if matches else "all"),
        binding=_binding(app) if clauses else None,
        resource=resource,
        clauses=clauses,
    )


def requirements(app: Flask) -> dict[str, Requirement]:
    """Every endpoint of ``app`` → its :class:`Requirement`, in ``app.view_functions`` order.

    Read after every blueprint is registered (e.g. from a CLI command or the
    first request); the static endpoint is included like any other.
    """
    return {endpoint: requirement(app, endpoint) for endpoint in app.view_functions}


def declared_scopes(app: Flask, resource: str | None = None) -> tuple[str, ...]:
    """Every scope a non-public endpoint of ``app`` requires (of ``resource`` when given), first-seen order."""
    found = list(requirements(app).values())
    # A class-based view's methods may each require scopes of their own.
    for endpoint, view in list(app.view_functions.items()):
        for extra in method_clauses(view, routed_methods(app, endpoint)).values():
            if extra:
                found.append(requirement(app, endpoint, extra))
    return _union(r.scopes for r in found if not r.public and (resource is None or r.resource == resource))


def routed_methods(app: Flask, endpoint: str) -> set[str]:
    """Every HTTP method ``app`` routes to ``endpoint`` (HEAD and OPTIONS included)."""
    return {m for rule in app.url_map.iter_rules(endpoint) for m in rule.methods or ()}
