"""``flask --app example_app register`` and ``rotate-key``."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from . import db, registrations
from .keys import KeyStore
from .validation import ApiError


def _claims(values: tuple[str, ...]) -> dict[str, str]:
    claims: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--claim")
        claims[key] = value
    return claims


@click.command("register")
@with_appcontext
@click.argument("name")
@click.option("--root", is_flag=True, help="Give the registration the root role archivist_administrator.")
@click.option("--claim", "claims", multiple=True, metavar="KEY=VALUE", help="A custom claim; repeatable.")
@click.option("--role", "roles", multiple=True, metavar="ROLE", help="A role for its tokens (default: guest).")
def register_command(name: str, root: bool, claims: tuple[str, ...], roles: tuple[str, ...]) -> None:
    """Create an app registration and print it as JSON, with its secret (shown once)."""
    role_list = list(roles) + ([registrations.ROOT_ROLE] if root else [])
    try:
        display_name = registrations.check_display_name(name)
        custom = registrations.check_custom_claims(_claims(claims))
        checked_roles = registrations.check_roles(role_list or [registrations.GUEST_ROLE])
    except ApiError as exc:
        raise click.UsageError(exc.message) from None
    conn = db.connect(current_app.config["EXAMPLE_DATABASE"])
    try:
        record = registrations.create(conn, current_app.config["EXAMPLE_TENANT"], display_name, custom, checked_roles)
    finally:
        conn.close()
    click.echo(json.dumps(record, indent=2))


@click.command("rotate-key")
@with_appcontext
def rotate_key_command() -> None:
    """Make a new signing key; the previous one stays in the JWKS for old tokens."""
    store: KeyStore = current_app.extensions["example_keys"]
    key = store.rotate()
    click.echo(json.dumps({"kid": key.kid, "previous_kept": True}))


def init_app(app: Flask) -> None:
    app.cli.add_command(register_command)
    app.cli.add_command(rotate_key_command)
