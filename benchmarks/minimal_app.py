"""A minimal protected API for the load harness: one route behind a TokenValidator.

Configured from ``CCGUARD_ISSUER``, ``CCGUARD_AUDIENCE`` and the other
``CCGUARD_*`` variables (JSON values decoded), as the example app is.
"""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Flask, jsonify, request

from flask_ccguard import CCGuardError, TokenValidator


def _settings() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, raw in os.environ.items():
        if key.startswith("CCGUARD_"):
            try:
                found[key[len("CCGUARD_") :].lower()] = json.loads(raw)
            except ValueError:
                found[key[len("CCGUARD_") :].lower()] = raw
    return found


def create_app() -> Flask:
    app = Flask(__name__)
    validator = TokenValidator(**_settings())
    app.extensions["ccguard_validator"] = validator

    @app.get("/archivist/v2/assets")
    def assets() -> Any:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return jsonify(error="invalid_request"), 401
        try:
            verified = validator.validate(token)
        except CCGuardError as exc:
            return jsonify(error=exc.error or "unavailable", reason=exc.reason), exc.status
        return jsonify(assets=[], caller=verified.subject)

    return app
