"""The map of protection behind ``flask ccguard routes``: every rule of an app and what it requires.

One row per URL rule, as ``flask routes`` lists them (``HEAD`` and
``OPTIONS`` left out), with the endpoint's
:class:`~flask_ccguard.protection.Requirement`; a class-based view whose
methods require different things (``@require_token`` on ``MethodView.get``
only) gets one row per distinct requirement, each with its methods. Flask's static-file endpoints
(``static``, ``<blueprint>.static``) are public unless something protects
them: files in a static folder are open by nature.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from .protection import Requirement, requirement, requirements
from .view_marks import Clause, method_clauses, public_methods

__all__ = ["format_table", "open_rows", "protection_map"]

_IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
_BINDINGS = {"dpop": "DPoP-bound token", "mtls": "certificate-bound token (mTLS)"}


def _is_static(app: Flask, endpoint: str) -> bool:
    # Flask routes its static folders under these endpoint names (through a
    # lambda, so the view itself cannot tell).
    owner, _, name = endpoint.rpartition(".")
    if name != "static":
        return False
    scaffold = app.blueprints.get(owner) if owner else app
    return bool(scaffold is not None and scaffold.has_static_folder)


def protection_map(app: Flask) -> list[dict[str, Any]]:
    """One dict per rule of ``app``, sorted by endpoint: ``endpoint``, ``methods``,
    ``rule``, ``public``, ``roles``, ``scopes``, ``match``, ``binding``, ``token``
    and ``requires`` (the text column)."""
    found = requirements(app)
    rows = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.endpoint):
        req = found.get(rule.endpoint)
        if req is None:
            continue
        methods = sorted((rule.methods or set()) - _IGNORED_METHODS)
        for group, group_req in _per_method(app, rule.endpoint, methods, req, rule.methods or set()):
            rows.append(_row(app, rule.rule, rule.endpoint, group, group_req))
    return rows


def _per_method(
    app: Flask, endpoint: str, methods: list[str], req: Requirement, routed: set[str]
) -> list[tuple[list[str], Requirement]]:
    # A class-based view's methods can be protected each on its own
    # (@require_token on MethodView.get, not on post): one row per distinct
    # requirement, so the map says what each method really enforces.
    view = app.view_functions.get(endpoint)
    extras = method_clauses(view, routed)
    # A MethodView's @public methods are open under guard.protect(), the others not.
    opened = public_methods(view, routed)
    groups: dict[tuple[tuple[Clause, ...], bool], list[str]] = {}
    for method in methods:
        groups.setdefault((extras.get(method, ()), method in opened), []).append(method)
    # HEAD and OPTIONS are left out as Flask answers them (HEAD with get), but a
    # MethodView's own head()/options() runs as written: shown when it requires
    # something else (an undecorated head() beside @require_token get() is open).
    # A head() whose requirement differs from get's joins the row of what it
    # requires (a reader takes HEAD to follow GET).
    cls = getattr(view, "view_class", None)
    get_key = (extras.get("GET", ()), "GET" in opened)
    for method in sorted(_IGNORED_METHODS & routed):
        key = (extras.get(method, ()), method in opened)
        if getattr(cls, method.lower(), None) is None:
            continue
        if method == "HEAD" and key != get_key and key in groups:
            groups[key] = sorted([*groups[key], method])
        elif key not in groups:
            groups[key] = [method]
    return [
        (group, requirement(app, endpoint, extra, public=public) if extra or public else req)
        for (extra, public), group in groups.items()
    ]


def _row(app: Flask, rule: str, endpoint: str, methods: list[str], req: Requirement) -> dict[str, Any]:
    static = not req.token and not req.public and _is_static(app, endpoint)
    return {
        "endpoint": endpoint,
        "methods": methods,
        "rule": rule,
        "public": req.public or static,
        "roles": list(req.roles),
        "scopes": list(req.scopes),
        "match": req.match,
        "binding": req.binding,
        "token": req.token,
        "requires": "public (static files)" if static else _requires(req),
    }


def _names(what: str, names: tuple[str, ...], match: str) -> str:
    if len(names) == 1:
        return f"{what} {names[0]}"
    return f"{what} {match} of {', '.join(names)}"


def _clause(clause: Clause) -> list[str]:
    parts = []
    if clause.roles:
        parts.append(_names("roles", clause.roles, clause.match))
    if clause.scopes:
        parts.append(_names("scopes", clause.scopes, clause.match))
    return parts


def _requires(req: Requirement) -> str:
    if req.public:
        return "public"
    if not req.token:
        return "OPEN (not declared public)"
    # Each clause (protect() call, decorator) is checked on its own, so its
    # match rule is shown with its own names.
    parts = ["token"]
    for clause in req.clauses:
        parts.extend(p for p in _clause(clause) if p not in parts)
    if req.binding:
        parts.append(_BINDINGS.get(req.binding, req.binding))
    return "; ".join(parts)


def open_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that need no token and are not declared public."""
    return [row for row in rows if not row["public"] and not row["token"]]


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as ``flask routes`` prints them, with a ``Requires`` column."""
    headers = ("Endpoint", "Methods", "Rule", "Requires")
    table = [(r["endpoint"], ", ".join(r["methods"]), r["rule"], r["requires"]) for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    row = "  ".join(f"{{{i}:<{w}}}" for i, w in enumerate(widths[:-1])) + "  {3}"
    lines = [row.format(*headers), row.format(*("-" * w for w in widths))]
    lines.extend(row.format(*t) for t in table)
    return "\n".join(line.rstrip() for line in lines)
