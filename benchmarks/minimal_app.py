"""A minimal protected API for the load harness: one route behind CCGuard.

Configured from ``CCGUARD_ISSUER``, ``CCGUARD_AUDIENCE`` and the other
``CCGUARD_*`` environment variables (JSON values decoded), as the example
asset API is; ``python -m benchmarks.load --app minimal`` serves it.
"""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Flask

from flask_ccguard import CCGuard, current_token, require_roles


def create_app() -> Flask:
    app = Flask(__name__)
    for key, raw in os.environ.items():
        if key.startswith("CCGUARD_"):
            try:
                app.config[key] = json.loads(raw)
            except ValueError:
                app.config[key] = raw
    CCGuard(app)

    @app.get("/archivist/v2/assets")
    @require_roles("archivist_administrator", "guest", match="any")
    def assets() -> Any:
        return {"assets": [], "caller": current_token.subject}

    return app
