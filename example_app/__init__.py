"""Example asset API with its own app-registration issuer (README.rst, "Example asset API").

``flask --app example_app run`` serves, on ``http://127.0.0.1:5000``:

* the issuer ``http://127.0.0.1:5000/archivist/iam/v1/appidp`` -- token
  endpoint ``{issuer}/token`` (RFC 6749 §4.4), metadata at
  ``{issuer}/.well-known/openid-configuration``, keys at ``{issuer}/jwks``;
* the App Registrations API ``/archivist/iam/v1/applications``;
* the assets API ``/archivist/v2/assets``, audience
  ``http://127.0.0.1:5000/archivist``;
* its OpenAPI 3.1 document at ``/openapi.json``.

The assets API checks tokens with :class:`flask_ccguard.CCGuard`, which
discovers this very issuer over HTTP; ``CCGUARD_*`` environment variables
point it at any other OpenID issuer instead.
"""

from __future__ import annotations

import difflib
import logging
import os
import shutil
import sys
from collections.abc import Mapping
from typing import Any

import click
from flask import Flask

from flask_ccguard import CCGuard, ConfigurationError
from flask_ccguard.config import CLIENT_KEYS as CCGUARD_CLIENT_KEYS
from flask_ccguard.config import DEFAULTS as CCGUARD_SETTINGS
from flask_ccguard.config import PREFIX as CCGUARD_PREFIX
from flask_ccguard.core.option_checks import resource as check_resource
from flask_ccguard.environment import parse_variable

from . import applications, assets, cli, db, errors, issuer, openapi, registrations, settings
from .failure_limiter import TokenEndpointLimits
from .keys import KeyStore

__all__ = ["create_app"]

log = logging.getLogger("example_app")

DEFAULTS: dict[str, Any] = {
    # Bodies are small JSON documents; anything larger is refused with a 413.
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "EXAMPLE_TOKEN_LIFETIME": 3600,
    # Failed client authentications at the token endpoint, per client id from
    # one address and per remote address, before it answers 429 until the
    # window (seconds) ends (never per client id alone: see failure_limiter).
    "EXAMPLE_AUTH_FAILURES_PER_CLIENT": 10,
    "EXAMPLE_AUTH_FAILURES_PER_ADDRESS": 50,
    "EXAMPLE_AUTH_FAILURE_WINDOW": 60,
    "CCGUARD_REALM": "example_app",
}


def _closest_setting(key: str) -> str | None:
    """The flask-ccguard setting ``key`` is probably a misspelling of, if any."""
    names = {name[len(CCGUARD_PREFIX) :]: name for name in CCGUARD_SETTINGS}
    close = difflib.get_close_matches(key[len(CCGUARD_PREFIX) :], names, n=1, cutoff=0.75)
    return names[close[0]] if close else None


def _env_ccguard() -> dict[str, Any]:
    """flask-ccguard settings from the environment; JSON values (lists, numbers) are decoded,
    and list-valued ones (``CCGUARD_AUDIENCE``…) may also be separated by spaces
    (:func:`flask_ccguard.environment.parse_variable`, as ``ccguard`` reads them).

    Checked like ``app.config`` (the extension refuses an unknown
    ``CCGUARD_*`` key there): a variable that is close to a setting's name,
    such as ``CCGUARD_AUDIANCE``, stops the start with the name it was meant
    to be, rather than leave the setting at its default and every token
    refused with a 401. Other ``CCGUARD_*`` variables belong to other tools
    sharing the environment (the ``ccguard`` command's client settings, test
    switches such as ``CCGUARD_SKIP_INTEROP``) and are left alone.

    :raises ConfigurationError: naming the variable and the setting it resembles.
    """
    found: dict[str, Any] = {}
    for key, raw in sorted(os.environ.items()):
        if not key.startswith(CCGUARD_PREFIX) or key in CCGUARD_CLIENT_KEYS:
            continue
        if key not in CCGUARD_SETTINGS:
            meant = _closest_setting(key)
            if meant is not None:
                raise ConfigurationError(
                    f"{key} (an environment variable) is not a flask-ccguard setting; did you mean {meant}? "
                    f"Rename it to {meant}, or unset it."
                )
            log.warning("ignoring the environment variable %s: it is not a flask-ccguard setting", key)
            continue
        found[key] = parse_variable(key, raw)  # as the ccguard command reads it
    return found


def _resource(audience: str) -> str | None:
    """The audience as the API's resource identifier (RFC 8707 §2), if it is one.

    An audience such as ``api://assets`` or an http URL off loopback is no
    resource identifier; the API then serves no metadata rather than refuse to start.
    """
    try:
        return check_resource(audience, "EXAMPLE_AUDIENCE")
    except ConfigurationError:
        return None


def _flask_command() -> str:
    """How to call this example's commands, as the user started it.

    ``run_example.py`` runs ``.venv/bin/flask`` without activating the
    virtualenv, where a bare ``flask`` is not this one (or none at all).
    """
    program = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(program) not in ("flask", "flask.exe") or shutil.which("flask") == program:
        return "flask --app example_app"
    relative = os.path.relpath(program)
    return (relative if not relative.startswith("..") else program) + " --app example_app"


def _announce_root(record: Mapping[str, Any]) -> None:
    secret = record["credentials"][0]["secret"]
    click.echo(
        "\n  example_app: created the root app registration. Its secret is shown ONCE:\n\n"
        f"    export CLIENT_ID={record['client_id']}\n"
        f"    export SECRET={secret}\n\n"
        f"  More registrations: {_flask_command()} register NAME [--root]\n",
        err=True,
    )


def _announce_restart() -> None:
    click.echo(
        "\n  example_app: the root secret was shown on the first start only. New root credentials:\n"
        f"    {_flask_command()} register admin --root\n",
        err=True,
    )


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the example app.

    :param config: settings overriding the defaults and the environment, e.g.
        ``EXAMPLE_BASE_URL``, ``EXAMPLE_INSTANCE_PATH``, ``EXAMPLE_TOKEN_LIFETIME``
        or any ``CCGUARD_*`` key.
    """
    overrides = dict(config or {})
    instance_path = overrides.get("EXAMPLE_INSTANCE_PATH") or os.environ.get("EXAMPLE_INSTANCE_PATH")
    app = Flask(__name__, instance_path=os.path.abspath(instance_path) if instance_path else None, static_folder=None)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep RKVST's member order
    app.config.update(DEFAULTS)
    app.config.update(overrides)
    app.config.update(settings.resolve(app.config))
    app.config.setdefault("EXAMPLE_DATABASE", os.path.join(app.instance_path, "example.sqlite"))

    # The instance folder holds the private key: nobody else may list it.
    os.makedirs(app.instance_path, mode=0o700, exist_ok=True)
    keys = KeyStore(app.instance_path)
    keys.ensure()
    app.extensions["example_keys"] = keys
    app.extensions["example_token_limits"] = TokenEndpointLimits(
        int(app.config["EXAMPLE_AUTH_FAILURES_PER_CLIENT"]),
        int(app.config["EXAMPLE_AUTH_FAILURES_PER_ADDRESS"]),
        float(app.config["EXAMPLE_AUTH_FAILURE_WINDOW"]),
    )
    created, tenant = db.initialize(app.config["EXAMPLE_DATABASE"])
    app.config["EXAMPLE_TENANT"] = tenant
    if created:
        conn = db.connect(app.config["EXAMPLE_DATABASE"])
        try:
            root = registrations.create(conn, tenant, "root", {}, [registrations.ROOT_ROLE])
        finally:
            conn.close()
        _announce_root(root)
    elif settings.serving():
        _announce_restart()

    # The asset API trusts this example's own issuer, found by discovery over
    # HTTP like any other; CCGUARD_* variables (environment, then config)
    # replace it with an external one.
    guard_config: dict[str, Any] = {
        "CCGUARD_ISSUER": app.config["EXAMPLE_ISSUER"],
        "CCGUARD_AUDIENCE": app.config["EXAMPLE_AUDIENCE"],
        "CCGUARD_RESOURCE_NAME": "Example asset API",
    }
    resource = _resource(app.config["EXAMPLE_AUDIENCE"])
    if resource is not None:
        # RFC 9728: the API names itself, serves its metadata and points every 401 at it.
        guard_config["CCGUARD_RESOURCE"] = resource
    guard_config.update(_env_ccguard())
    guard_config.update({k: v for k, v in overrides.items() if k.startswith("CCGUARD_")})
    if guard_config["CCGUARD_ISSUER"] == app.config["EXAMPLE_ISSUER"]:
        # Our issuer always writes typ at+jwt (RFC 9068 §2.1), so demand it.
        guard_config.setdefault("CCGUARD_TOKEN_TYPES", ["at+jwt"])
    else:
        # An external issuer: fetch its metadata and keys at start-up, so a
        # misconfigured or unreachable one shows in the log at once rather
        # than as a stall and a 503 on the first request. (Our own issuer is
        # this very server, which does not listen yet while create_app runs.)
        guard_config.setdefault("CCGUARD_WARM_UP", True)
    app.config.update(guard_config)
    guard = CCGuard(app)
    # Every App Registrations endpoint needs a root token; the issuer's own
    # endpoints (token, discovery, keys) and the OpenAPI document are open on
    # purpose: declared so, `flask ccguard routes --fail-on-open` passes.
    guard.protect(applications.bp, roles=[registrations.ROOT_ROLE])
    guard.exempt(issuer.bp)
    guard.exempt(openapi.bp)

    db.init_app(app)
    errors.init_app(app)
    for blueprint in (issuer.bp, applications.bp, assets.bp, openapi.bp):
        app.register_blueprint(blueprint)
    cli.init_app(app)
    return app
