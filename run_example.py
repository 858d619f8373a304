#!/usr/bin/env python3
"""Start the example asset API with one command, on a machine with only Python.

    python3 run_example.py [--host HOST] [--port PORT] [--no-venv] [other flask run options]

Creates ``.venv`` beside this file if it is missing, installs this project
into it (``pip install -e .``) when it has not been installed yet or its
packaging files changed, then replaces itself with
``.venv/bin/flask --app example_app run --host HOST --port PORT [other options]``.
Standard library only; a second run starts at once. ``--help`` answers
before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import venv

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(ROOT, ".venv")
BIN = os.path.join(VENV, "Scripts" if os.name == "nt" else "bin")
EXE = ".exe" if os.name == "nt" else ""
PYTHON = os.path.join(BIN, "python" + EXE)
FLASK = os.path.join(BIN, "flask" + EXE)
STAMP = os.path.join(VENV, ".flask-ccguard-installed")
PACKAGING = ("setup.cfg", "pyproject.toml", "setup.py")


def _fingerprint() -> str:
    """What the installation depends on: packaging files and the venv's Python."""
    digest = hashlib.sha256(sys.version.encode())
    for name in PACKAGING:
        path = os.path.join(ROOT, name)
        if os.path.exists(path):
            with open(path, "rb") as handle:
                digest.update(name.encode() + b"\0" + handle.read())
    return digest.hexdigest()


def _create_venv() -> None:
    print(f"run_example: creating {VENV}", flush=True)
    try:
        venv.create(VENV, with_pip=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(
            f"run_example: cannot create a virtual environment ({exc}).\n"
            "On Debian or Ubuntu install the venv module first: sudo apt install python3-venv"
        )


def _install(fingerprint: str) -> None:
    print("run_example: installing flask-ccguard and its dependencies into .venv", flush=True)
    command = [PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--editable", ROOT]
    if subprocess.call(command) != 0:  # noqa: S603 - fixed argv, no shell
        sys.exit("run_example: pip install failed (see above); fix it and run this again.")
    with open(STAMP, "w", encoding="ascii") as handle:
        handle.write(fingerprint)


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="run_example.py",
        allow_abbrev=False,  # never take a prefix of a 'flask run' option for ours
        description=(
            "Serve the flask-ccguard example asset API. The first run creates .venv beside this "
            "file and installs the project into it; later runs start at once."
        ),
        epilog=(
            "Other options go to 'flask run' (e.g. --cert adhoc). The issuer follows the address: "
            "--port 5001 issues as http://127.0.0.1:5001/archivist/iam/v1/appidp, so set "
            "BASE=http://127.0.0.1:5001 in the README's walkthrough."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on (default: %(default)s)")
    parser.add_argument(
        "--no-venv",
        action="store_true",
        help="use this Python and its installed packages instead of .venv (flask-ccguard must be importable)",
    )
    return parser.parse_known_args(argv)


def main() -> None:
    if sys.version_info < (3, 9):  # noqa: UP036 - this file runs under any python3
        sys.exit("run_example: flask-ccguard needs Python 3.9 or later.")
    # Parsed first: --help (and a bad option) must not wait for an installation.
    args, flask_options = _parse(sys.argv[1:])
    if args.no_venv:
        program, argv = sys.executable, [sys.executable, "-m", "flask"]
    else:
        if not os.path.exists(PYTHON):
            _create_venv()
        fingerprint = _fingerprint()
        try:
            with open(STAMP, encoding="ascii") as handle:
                installed = handle.read() == fingerprint
        except OSError:
            installed = False
        if not installed or not os.path.exists(FLASK):
            _install(fingerprint)
        program, argv = FLASK, [FLASK]
    argv += ["--app", "example_app", "run", "--host", args.host, "--port", str(args.port), *flask_options]
    os.chdir(ROOT)
    if os.name == "nt":  # no exec on Windows: run it and pass its status on
        sys.exit(subprocess.call(argv))  # noqa: S603 - fixed argv, no shell
    os.execv(program, argv)  # noqa: S606 - replaces this process by design


if __name__ == "__main__":
    main()
