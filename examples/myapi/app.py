"""A small API of your own, protected by flask-ccguard: an app factory, a blueprint, three views.

Run it against your issuer::

    CCGUARD_ISSUER=https://idp.example.com/tenant-1 CCGUARD_AUDIENCE=https://api.example.com \
        flask --app app run

and test it with ``pytest`` in this folder (``test_app.py`` uses the
``ccguard_issuer`` fixture that flask-ccguard gives pytest).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask

from flask_ccguard import CCGuard, current_token, require_roles, require_scopes, require_token
from flask_ccguard.environment import parse_variable

guard = CCGuard()
api = Blueprint("api", __name__, url_prefix="/api")

REPORTS = {1: {"id": 1, "title": "Q1"}, 2: {"id": 2, "title": "Q2"}}


# Every view of the blueprint carries its own decorator, so it is protected
# in every app the factory makes.
@api.get("/whoami")
@require_token
def whoami() -> dict[str, Any]:
    """Any valid token: who is calling."""
    return {"client_id": current_token.client_id, "scopes": sorted(current_token.scopes)}


@api.get("/reports")
@require_scopes("reports.read")
def list_reports() -> dict[str, Any]:
    """Tokens with the scope ``reports.read``."""
    return {"reports": list(REPORTS.values())}


@api.delete("/reports/<int:report_id>")
@require_roles("admin")
def delete_report(report_id: int) -> dict[str, Any]:
    """Tokens with the role ``admin`` (a 403 for the others)."""
    return {"deleted": report_id}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The app: ``CCGUARD_ISSUER`` and ``CCGUARD_AUDIENCE`` from ``config``, else the environment.

    Environment values are read as the ``ccguard`` command reads them: several
    audiences as ``"api://a api://b"`` or a JSON array.
    """
    app = Flask(__name__)
    for key in ("CCGUARD_ISSUER", "CCGUARD_AUDIENCE"):
        if key in os.environ:
            app.config[key] = parse_variable(key, os.environ[key])
    app.config.update(config or {})
    guard.init_app(app)  # checks every CCGUARD_* setting now, not on the first request
    app.register_blueprint(api)
    return app
