"""OAuth 2.0 Protected Resource Metadata (RFC 9728): the document, its routes and its URL.

With ``CCGUARD_RESOURCE`` (or ``guard.protect(blueprint, resource=...)``) the
app serves ``/.well-known/oauth-protected-resource`` followed by the resource
identifier's path (§3.1), and every 401/403 challenge names that URL in
``resource_metadata`` (§5.1), so that a client finds the authorization server
and the scopes from a refusal alone.

Members (§2) and where they come from:

* ``resource``: the configured identifier, exactly (§3.3);
* ``authorization_servers``: the fixed issuers; a ``{tenantid}`` template is
  no issuer identifier a client could use (RFC 8414 §2), so it is left out;
* ``scopes_supported``: every scope the resource's views require
  (:func:`~flask_ccguard.protection.declared_scopes`), with the narrower
  scopes ``CCGUARD_SCOPE_HIERARCHY`` makes them imply;
* ``bearer_methods_supported``: ``header``, and ``body`` / ``query`` when allowed;
* ``dpop_signing_alg_values_supported``, ``dpop_bound_access_tokens_required``
  and ``tls_client_certificate_bound_access_tokens``: from the sender-constraint
  options in force (an issuer's own ``'dpop'`` overrides ``CCGUARD_DPOP``), as
  the challenges offer them;
* ``resource_name``, ``resource_documentation``, ``resource_policy_uri``,
  ``resource_tos_uri``: from their ``CCGUARD_*`` options.

``resource_signing_alg_values_supported`` is left out: it lists the algorithms
the resource signs its *responses* with (§2), and this one signs none
(``signed_metadata`` is not served either).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit
from weakref import WeakKeyDictionary

from flask import Flask, Response, current_app, jsonify, request

from .core.claims import VerifiedToken, canonical_uri
from .core.errors import ConfigurationError, InvalidToken
from .protection import RESOURCES, declared_scopes, dpop_in_force, mark_public, resource_of

__all__ = [
    "WELL_KNOWN",
    "challenge_params",
    "check_resources",
    "document",
    "install",
    "metadata_path",
    "metadata_url",
    "serve",
]

#: The well-known URI suffix of RFC 9728 §3.
WELL_KNOWN = "/.well-known/oauth-protected-resource"
ENDPOINT = "ccguard_resource_metadata"
#: How long clients and caches may keep the document (seconds).
MAX_AGE = 300

_DOCUMENTS: WeakKeyDictionary[Flask, dict[str, dict[str, Any]]] = WeakKeyDictionary()


def metadata_path(resource: str) -> str:
    """The path of ``resource``'s metadata: the well-known suffix inserted before its path (§3.1).

    A terminating ``/`` right after the host is removed first, so
    ``https://api.example.com/`` and ``https://api.example.com`` share one document.
    """
    path = urlsplit(resource).path
    return WELL_KNOWN + ("" if path == "/" else path)


def metadata_url(resource: str) -> str:
    """The metadata URL a client builds from ``resource`` (§3.1), for ``resource_metadata`` (§5.1)."""
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}{metadata_path(resource)}"


def _resources(app: Flask) -> list[str]:
    found = [RESOURCES[app]] if app in RESOURCES else []
    state = app.extensions.get("ccguard")
    if state is not None and state.settings.get("CCGUARD_RESOURCE") is not None:
        found.append(state.settings["CCGUARD_RESOURCE"])
    found += [RESOURCES[bp] for bp in app.blueprints.values() if bp in RESOURCES]
    return list(dict.fromkeys(found))


def check_resources(app: Flask) -> dict[str, str]:
    """Metadata path → resource of every resource of ``app``; each path names one resource (§3.3).

    A client checks that the document's ``resource`` is the identifier it
    built the URL from: the document at a path states exactly the identifier
    that path was built from, so two identifiers that differ only in what the
    path leaves out (the host, a trailing root ``/``) cannot both be served.

    The paths are decoded (``%20`` as a space), as the server decodes the
    request's path (:attr:`flask.Request.path`) they are matched against: so
    ``a%2Fb`` and ``a/b`` are one path, and two such identifiers are refused.

    :raises ConfigurationError: naming both identifiers.
    """
    paths: dict[str, str] = {}
    for resource in _resources(app):
        # Resource identifiers are checked to percent-encode UTF-8 (option_checks.resource).
        path = unquote(metadata_path(resource))
        other = paths.setdefault(path, resource)
        if other != resource:
            raise ConfigurationError(
                f"the resources {other!r} and {resource!r} would share the metadata URL path {path!r} "
                "(RFC 9728 §3.1); give each API a resource identifier with its own path."
            )
    return paths


def install(app: Flask, subdomain: str | None = None) -> None:
    """Route the metadata documents on ``app`` (once per subdomain), public and readable from any origin.

    A blueprint registered on a ``subdomain`` serves its views, and so its
    resource's document (§3.1: at the resource's own host), on that subdomain:
    the app's rules match only its default subdomain when subdomains are matched.
    """
    wanted = subdomain or ""
    if any(rule.endpoint == ENDPOINT and (rule.subdomain or "") == wanted for rule in app.url_map.iter_rules()):
        return
    options: dict[str, Any] = {"methods": ["GET", "OPTIONS"], "provide_automatic_options": False}
    if subdomain:
        options["subdomain"] = subdomain
    app.add_url_rule(WELL_KNOWN, ENDPOINT, _serve, **options)
    app.add_url_rule(WELL_KNOWN + "/<path:suffix>", ENDPOINT, _serve, **options)


def serve(app: Flask, subdomain: str | None = None) -> None:
    """Serve the documents of ``app``'s resources (:func:`install`), check that their
    paths differ (:func:`check_resources`) and accept each as an audience (:func:`accept_resources`)."""
    install(app, subdomain)
    check_resources(app)
    accept_resources(app)


def _cors(response: Response) -> Response:
    # The document is public: any origin may read it (RFC 9728 §3; browser-based clients).
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _serve(suffix: str = "", **_subdomain: str) -> Response:
    # A blueprint on a variable subdomain (subdomain="<tenant>") has its rules
    # there too, and Flask passes the variable: the path alone picks the document.
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if request.method == "OPTIONS":
        # A CORS preflight (e.g. a client sending MCP-Protocol-Version).
        response = _cors(app.make_response(("", 204)))
        response.headers["Access-Control-Allow-Methods"] = "GET, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "*"
        response.headers["Access-Control-Max-Age"] = str(MAX_AGE)
        return response
    documents = _DOCUMENTS.get(app)
    if documents is None:
        # No view can be added after the first request: the documents are fixed.
        documents = _DOCUMENTS[app] = {path: document(app, r) for path, r in check_resources(app).items()}
    # Decoded like the keys (check_resources): a resource with "%20" in its path is served at its URL.
    found = documents.get(request.path)
    if found is None:
        response = jsonify({"error": "not_found", "error_description": "No resource has metadata at this URL."})
        response.status_code = 404
        return _cors(response)
    response = _cors(jsonify(found))
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE}"
    return response


mark_public(_serve)


def document(app: Flask, resource: str) -> dict[str, Any]:
    """The metadata document of ``resource`` on ``app`` (RFC 9728 §2)."""
    state = app.extensions["ccguard"]
    settings: Mapping[str, Any] = state.settings
    registry = state.validator.registry
    doc: dict[str, Any] = {"resource": resource}
    servers = [issuer for issuer, entry in registry.fixed.items() if entry.template is None]
    if servers:
        doc["authorization_servers"] = servers
    scopes = list(declared_scopes(app, resource))
    hierarchy = settings.get("CCGUARD_SCOPE_HIERARCHY")
    if hierarchy is not None:
        scopes += sorted(hierarchy.expand(frozenset(scopes)) - set(scopes))
    if scopes:
        doc["scopes_supported"] = scopes
    doc["bearer_methods_supported"] = (
        ["header"] + (["body"] if state.allow_form_token else []) + (["query"] if state.allow_query_token else [])
    )
    doc.update(_sender_constraints(state, settings))
    for name in ("resource_name", "resource_documentation", "resource_policy_uri", "resource_tos_uri"):
        value = settings.get("CCGUARD_" + name.upper())
        if value is not None:
            doc[name] = value
    return doc


def _sender_constraints(state: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    # Only from options this version declares (DPoP, RFC 9449 §5.1; mTLS, RFC 8705 §3.3),
    # by the modes in force (an issuer's own 'dpop' overrides CCGUARD_DPOP), as the challenges say.
    members: dict[str, Any] = {}
    accepted, required = dpop_in_force(state)
    if accepted:
        algorithms = settings.get("CCGUARD_DPOP_ALGORITHMS")
        if algorithms:
            members["dpop_signing_alg_values_supported"] = sorted(algorithms)
        members["dpop_bound_access_tokens_required"] = required
    if settings.get("CCGUARD_CLIENT_CERT_SOURCE") is not None:
        members["tls_client_certificate_bound_access_tokens"] = True
    return members


def accept_resources(app: Flask) -> None:
    """Let the issuers whose audience is the resource (``CCGUARD_AUDIENCE`` unset) accept
    the app's other resources too (``guard.protect(bp, resource=...)``); which one a
    request needs is checked per endpoint (:func:`check_audience`)."""
    state = app.extensions.get("ccguard")
    if state is None:
        return  # init_app calls this again
    extra = frozenset(canonical_uri(r) for r in _resources(app))
    for entry in state.validator.registry.entries():
        for rules in (entry.rules, entry.introspected_rules):
            if rules.canonical_audience:
                rules.audiences = rules.audiences | extra


def check_audience(app: Flask, endpoint: str | None, token: VerifiedToken) -> None:
    """RFC 8707 §2: a token for one resource of the app is no token for another.

    Only for audiences defaulted from the resources (an explicit
    ``CCGUARD_AUDIENCE`` is the app's single audience), and only when the app
    has a resource of its own besides ``CCGUARD_RESOURCE``.

    :raises InvalidToken: the token's ``aud`` does not name the endpoint's resource.
    """
    if endpoint is None or not token.audience_defaulted:
        return
    resource = resource_of(app, endpoint)
    if resource is None:
        return
    wanted = canonical_uri(resource)
    if not any(canonical_uri(a) == wanted for a in token.audiences[:32]):
        raise InvalidToken("The access token is meant for another audience.", reason="audience", claim="aud")


def challenge_params(app: Flask, endpoint: str | None) -> dict[str, str]:
    """``resource_metadata`` for a challenge from ``endpoint`` (§5.1): its blueprint's resource, else the app's.

    Without an endpoint, nothing: ``CCGUARD_RESOURCE``'s is in every challenge
    already (:attr:`CCGuardState.challenge_params <flask_ccguard.state.CCGuardState.challenge_params>`).
    """
    resource = resource_of(app, endpoint) if endpoint is not None else None
    return {} if resource is None else {"resource_metadata": metadata_url(resource)}
