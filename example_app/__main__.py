"""``python -m example_app ...``: the same commands as ``flask --app example_app ...``."""

from __future__ import annotations

from flask.cli import FlaskGroup

from . import create_app

cli = FlaskGroup(create_app=create_app, help="The flask-ccguard example asset API.")

if __name__ == "__main__":
    cli(prog_name="python -m example_app")
