"""The Flask extension: settings read once per app, state in ``app.extensions``.

Follows Flask's extension guide: :class:`CCGuard` holds only the keyword
options it was given; everything tied to an application (the
:class:`~flask_ccguard.TokenValidator`, its key cache, the realm) lives in
that application's :class:`CCGuardState`, so two apps in one process share
nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Any, TypeVar, cast

from flask import Blueprint, Flask, Response, current_app, request
from flask.blueprints import BlueprintSetupState

from .config import build_validator, read_settings
from .core.errors import CCGuardError
from .core.option_checks import resource as check_resource
from .decorators import Match, check_match, names, verify_request
from .exemption import check_exemptions
from .protection import PROTECTED, RESOURCES, mark_public, open_endpoints, track
from .resource_metadata import accept_resources, check_resources, install, metadata_url, serve
from .responses import error_response
from .route_order import check_route_order
from .sender import apply_profile
from .sender import configure as configure_sender
from .state import EXTENSION_KEY, CCGuardState, get_state
from .view_marks import Clause
from .warm_up import require_warm, warm_up

__all__ = ["CCGuard"]

_Exemptible = TypeVar("_Exemptible", bound="Callable[..., Any] | Blueprint | str")


def _protection(requirements: list[Clause]) -> Callable[[], Response | None]:
    def require_valid_token() -> Response | None:
        # Through the request object itself: request.endpoint costs a proxy
        # lookup and a property (~0.9 µs a request, measured).
        current = request._get_current_object()  # type: ignore[attr-defined]
        rule = current.url_rule
        if rule is not None:
            opened = open_endpoints(current_app._get_current_object())  # type: ignore[attr-defined]
            # Declared open: the metadata document, @public, guard.exempt(); a
            # MethodView's @public methods only (None: every method).
            if rule.endpoint in opened:
                methods = opened[rule.endpoint]
                if methods is None or current.method in methods:
                    return None
        for clause in requirements:
            if verify_request(clause.roles, clause.scopes, clause.match) is None:
                if rule is None or getattr(rule, "provide_automatic_options", False):
                    # Flask answers these itself (404/405, or its automatic
                    # OPTIONS response) without calling a view.
                    return None
                # A view that handles OPTIONS itself must not run unauthenticated.
                return current_app.make_default_options_response()
        return None

    return require_valid_token


def _serve_resource(setup: BlueprintSetupState) -> None:
    # When a blueprint with a resource of its own is registered: serve its document there.
    serve(cast(Flask, setup.app), setup.subdomain)


def _check_route_order_once() -> Callable[[], None]:
    checked = False

    def check() -> None:
        nonlocal checked
        if not checked:
            # Raises (a 500) on every request until the order is fixed: an
            # app whose views are open must not serve.
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            check_route_order(app)
            check_exemptions(app)
            checked = True

    return check


class CCGuard:
    """Protects a Flask application's views with bearer access tokens.

    :param app: the application, or None to call :meth:`init_app` later.
    :param options: any ``CCGUARD_*`` setting in lower case without the prefix
        (``issuer=``, ``audience=``, ``leeway=``…); they override
        ``app.config`` for every app this extension is initialised on.
    :raises ConfigurationError: (with ``app``) if a setting is missing or wrong.
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        # Checked here too, so a misspelt option fails where it was written.
        read_settings({}, options, import_name="")
        self._options = dict(options)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read and check the app's settings, build its validator, register
        the default error response.

        :raises ConfigurationError: naming the ``CCGUARD_*`` key and the fix.
        :raises RuntimeError: if the app already has a CCGuard.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("CCGuard is already initialised on this app; call init_app once per app.")
        # Views routed so far are checked now, the rest (blueprints register
        # late) before the first request, after which no view can be added.
        check_route_order(app)
        explicit = {k for k in app.config if k.startswith("CCGUARD_")} | {"CCGUARD_" + k.upper() for k in self._options}
        settings = apply_profile(read_settings(app.config, self._options, import_name=app.import_name), explicit)
        validator = build_validator(settings)
        resource = settings["CCGUARD_RESOURCE"] = validator.resource
        # The binding step (DPoP, RFC 9449; mTLS, RFC 8705) and the schemes it accepts.
        sender = configure_sender(settings, validator)
        if settings["CCGUARD_WARM_UP"]:
            outcome = warm_up(validator)
            if settings["CCGUARD_WARM_UP"] == "require":
                require_warm(outcome)
        app.extensions[EXTENSION_KEY] = CCGuardState(
            guard=self,
            validator=validator,
            realm=settings["CCGUARD_REALM"],
            allow_query_token=settings["CCGUARD_ALLOW_QUERY_TOKEN"],
            allow_form_token=settings["CCGUARD_ALLOW_FORM_TOKEN"],
            settings=MappingProxyType(settings),
            # What every 401/403 challenges with: another scheme is one more
            # entry, e.g. ("DPoP", {"algs": "ES256 PS256"}) (RFC 9449 §7.1), and
            # a common auth-param one more key, e.g. resource_metadata (RFC 9728 §5.1).
            schemes=sender.schemes,
            challenge_params=MappingProxyType(
                {} if resource is None else {"resource_metadata": metadata_url(resource)}
            ),
            sender=sender,
        )
        if resource is not None or app in RESOURCES:
            install(app)
        check_resources(app)
        accept_resources(app)
        # A handler the app registered before us wins; one registered later
        # replaces ours, as Flask's own registration does.
        if CCGuardError not in app.error_handler_spec[None][None]:
            app.register_error_handler(CCGuardError, error_response)
        app.before_request(_check_route_order_once())
        check_exemptions(app)  # views routed so far; the rest at the first request

    def protect(
        self,
        app_or_blueprint: Flask | Blueprint,
        roles: Iterable[str] = (),
        scopes: Iterable[str] = (),
        match: Match = "all",
        *,
        resource: str | None = None,
    ) -> None:
        """Require a valid token (and ``roles`` / ``scopes``) for every view
        of an app or blueprint. Per-view decorators add their requirements.

        ``resource`` makes the blueprint (or app) a protected resource of its
        own (RFC 9728): its metadata is served at the path built from this
        identifier, its views' challenges name that document and its scopes
        are listed there, not in the app's ``CCGUARD_RESOURCE`` document.
        With ``CCGUARD_AUDIENCE`` unset its views need tokens whose ``aud``
        names this resource (and the app's other views tokens naming theirs).

        The requirement belongs to the blueprint, so it holds on every app the
        blueprint is registered on: protect a blueprint once where it is
        created, or in the app factory before registering it; repeating the
        same call for each app the factory makes is harmless.

        An ``OPTIONS`` request without credentials (a CORS preflight) gets
        Flask's default ``OPTIONS`` response; the view never runs for it.

        :raises RuntimeError: a blueprint that is already registered on an app
            gets a new requirement, which that app would never apply.
        """
        requirement = Clause(names(roles, "roles"), names(scopes, "scopes"), match)
        check_match(match)
        if resource is not None:
            self._resource(app_or_blueprint, check_resource(resource, "guard.protect(resource=...)"))
        # The requirements guard.protect() put on each app or blueprint, whichever
        # CCGuard made them: one before_request function per target applies them all.
        requirements = PROTECTED.get(app_or_blueprint)
        if requirements is not None and requirement in requirements:
            # The app-factory pattern: each new app protects the module's blueprint again.
            return
        if isinstance(app_or_blueprint, Blueprint) and app_or_blueprint._got_registered_once:
            # Flask copies a blueprint's before_request functions into an app
            # when it is registered: a later one would leave that app open.
            raise RuntimeError(
                f"guard.protect() was called on the blueprint {app_or_blueprint.name!r} after it was "
                "registered on an app, which would stay unprotected. Call guard.protect(blueprint) "
                "before app.register_blueprint(blueprint), e.g. right where the blueprint is created."
            )
        if requirements is None:
            if isinstance(app_or_blueprint, Blueprint):
                track(app_or_blueprint)
            requirements = PROTECTED[app_or_blueprint] = []
            app_or_blueprint.before_request(_protection(requirements))
        requirements.append(requirement)

    def exempt(self, target: _Exemptible) -> _Exemptible:
        """Declare a view, a class-based view (``View`` / ``MethodView``: every
        view its ``as_view`` makes), every view of a blueprint, or an endpoint open.

        :meth:`protect` does not apply to it and ``flask ccguard routes`` lists
        it as public (health checks, the metadata document). Returns ``target``,
        so it also works as a decorator, under the route decorator. An
        endpoint name (``"health"``, ``"api.health"``) holds on every app this
        guard is initialised on, for views routed before or after the call.

        :raises TypeError: ``target`` is not a view function, a ``View`` class, a blueprint or a name.
        :raises ConfigurationError: at start-up, for a view declared open that
            also carries ``@require_token`` / ``@require_roles`` / ``@require_scopes``.
        """
        if isinstance(target, Flask):
            raise TypeError(
                "guard.exempt() takes a view, a blueprint or an endpoint name; to leave an app open, "
                "do not call guard.protect(app)"
            )
        mark_public(target, owner=self)
        return target

    @staticmethod
    def _resource(target: Flask | Blueprint, resource: str | None) -> None:
        if resource is None:
            return
        if RESOURCES.get(target, resource) != resource:
            raise RuntimeError(f"guard.protect() already gave {target.name!r} the resource {RESOURCES[target]!r}.")
        RESOURCES[target] = resource
        if isinstance(target, Blueprint):
            track(target)
            # Served by each app the blueprint is registered on, checked there.
            target.record_once(_serve_resource)
        else:
            serve(target)

    def warm_up(self, app: Flask | None = None) -> dict[str, str | None]:
        """Fetch the metadata and keys of each fixed issuer of ``app`` (default:
        the current app) now, rather than on the first request; log each outcome.

        ``CCGUARD_WARM_UP`` does this in :meth:`init_app`; call it yourself
        where start-up suits better, e.g. in a gunicorn ``post_fork`` hook.
        It never raises for an unreachable issuer: the result says.

        :returns: issuer → None when its keys are loaded, else why not.
        """
        return warm_up(get_state(app).validator)

    def stats(self, app: Flask | None = None) -> dict[str, Any]:
        """Counters of ``app``'s validator (default: the current app): validations
        by outcome and reason, key fetches, unknown-``kid`` refetches, cooldown
        refusals, stale keys served, cache hits. Per process; a new dict each call.

        See :meth:`flask_ccguard.TokenValidator.stats`.
        """
        return get_state(app).validator.stats()
