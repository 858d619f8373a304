"""What a user gets from the package as installed, and from its sdist.

Issue 14 item 10: the wheel installs ``flask_ccguard`` only (no top-level
``example_app``) with its LICENSE; the sdist is a working checkout (every
tracked file, the conftests and ``tox.ini`` included, no ``node_modules``)
whose test suite collects; ``help(flask_ccguard)`` says what it is and how to
use it. Building both takes well under a second (setuptools' PEP 517 hooks,
no isolation, nothing fetched).

Issue 14 item 8: the ``ccguard_issuer`` fixture's recommended app
configuration (:meth:`TestIssuer.app_config`) lets a token minted after
``rotate_keys()`` through at once, where the production refetch cooldown
would refuse it for 30 seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

import flask_ccguard
from flask_ccguard import CCGuard, current_token, require_token
from flask_ccguard.testing import TestIssuer

ROOT = Path(__file__).resolve().parent.parent
#: Never part of a source tree that is packaged.
_LOCAL = {".git", ".tox", ".venv", "node_modules", "build", "dist", "__pycache__", ".hypothesis", ".mypy_cache"}
_LOCAL_SUFFIXES = (".egg-info", ".pyc", ".sqlite")

# One hook per process: setuptools keeps command state between the two.
BUILD = """
import sys
from setuptools import build_meta
hook = build_meta.build_sdist if sys.argv[1] == "sdist" else build_meta.build_wheel
print("BUILT", hook(sys.argv[2]))
"""


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {name for name in names if name in _LOCAL or name.endswith(_LOCAL_SUFFIXES) or name == "instance"}


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel) built from a copy of this source tree."""
    pytest.importorskip("wheel", reason="building the wheel needs the 'wheel' package (tox installs it)")
    source = tmp_path_factory.mktemp("src") / "flask-ccguard"
    shutil.copytree(ROOT, source, ignore=_ignore)
    out = source / "dist"
    built = []
    for kind in ("sdist", "wheel"):
        done = subprocess.run(
            [sys.executable, "-c", BUILD, kind, str(out)], cwd=source, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-3000:]
        built += [out / line.split()[1] for line in done.stdout.splitlines() if line.startswith("BUILT ")]
    return built[0], built[1]


def _tracked_files() -> set[str]:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout: nothing to compare the sdist with")
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {name for name in listed.splitlines() if (ROOT / name).is_file()}


def test_i14_10_wheel_installs_flask_ccguard_only_with_its_license(dists: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(dists[1]) as wheel:
        names = wheel.namelist()
        info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
        assert {name.split("/")[0] for name in names} == {"flask_ccguard", info}
        assert wheel.read(f"{info}/top_level.txt").decode().split() == ["flask_ccguard"]
        # setuptools < 77 writes it beside METADATA, later ones under licenses/ (PEP 639).
        (license_name,) = {f"{info}/LICENSE", f"{info}/licenses/LICENSE"} & set(names)
        license_text = wheel.read(license_name).decode()
        metadata = wheel.read(f"{info}/METADATA").decode()
    assert "BSD 3-Clause License" in license_text and "the flask-ccguard maintainers" in license_text
    assert "License: BSD-3-Clause" in metadata and "License-File: LICENSE" in metadata
    assert (
        "flask_ccguard/py.typed" in names
        and "flask_ccguard/testing/__init__.py" in names
        and "flask_ccguard/testing/plugin.py" in names
    )


def test_i14_10_sdist_is_the_tracked_tree(dists: tuple[Path, Path]) -> None:
    with tarfile.open(dists[0]) as sdist:
        members = [name.split("/", 1)[1] for name in sdist.getnames() if "/" in name]
    files = set(members)
    missing = _tracked_files() - {".gitignore"} - files
    assert not missing, f"tracked files missing from the sdist: {sorted(missing)}"
    assert "LICENSE" in files
    assert not [name for name in files if "node_modules" in name or "__pycache__" in name or name.endswith(".pyc")]


def test_i14_10_sdist_test_suite_collects(dists: tuple[Path, Path], tmp_path: Path) -> None:
    with tarfile.open(dists[0]) as sdist:
        if hasattr(tarfile, "data_filter"):
            sdist.extractall(tmp_path, filter="data")
        else:  # Python < 3.12 without the backport; our own freshly built archive
            sdist.extractall(tmp_path)
    unpacked = next(tmp_path.iterdir())
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(unpacked)
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"]
    done = subprocess.run(argv, cwd=unpacked, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "tests/interop/test_flask.py::" in done.stdout and "error" not in done.stdout.splitlines()[-1]


def test_i14_10_module_help_says_what_it_is_and_how_to_use_it() -> None:
    doc = flask_ccguard.__doc__ or ""
    assert len(doc.splitlines()) >= 25
    for needed in ("TokenValidator", "CCGuard(app)", "@require_roles", "README", "SECURITY.rst", "ccguard --help"):
        assert needed in doc
    readme = (ROOT / "README.rst").read_text()
    assert "error table above" not in readme


def _app(config: dict[str, Any]) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    CCGuard(app)

    @app.get("/whoami")
    @require_token
    def whoami() -> dict[str, Any]:
        return {"sub": current_token.subject, "alg": current_token.header["alg"]}

    return app


def _status(app: Flask, token: str) -> int:
    return app.test_client().get("/whoami", headers={"Authorization": f"Bearer {token}"}).status_code


def test_i14_08_token_minted_after_rotation_is_accepted_at_once(ccguard_issuer: TestIssuer) -> None:
    app = _app(ccguard_issuer.app_config())
    production = _app({"CCGUARD_ISSUER": ccguard_issuer.issuer, "CCGUARD_AUDIENCE": ccguard_issuer.audience})
    assert _status(app, ccguard_issuer.mint()) == 200
    assert _status(production, ccguard_issuer.mint()) == 200

    ccguard_issuer.rotate_keys()
    fresh = ccguard_issuer.mint()
    assert _status(app, fresh) == 200
    # What the recommended configuration avoids: the 30 s cooldown refuses it.
    assert _status(production, fresh) == 401


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "EdDSA"])
def test_i14_08_app_config_accepts_every_algorithm_of_the_fixture(ccguard_issuer: TestIssuer, alg: str) -> None:
    app = _app(ccguard_issuer.app_config())
    response = app.test_client().get("/whoami", headers={"Authorization": f"Bearer {ccguard_issuer.mint(alg=alg)}"})
    assert response.status_code == 200
    assert response.get_json()["alg"] == alg


def test_i14_08_app_config_overrides_and_fixture_client(ccguard_issuer: TestIssuer) -> None:
    config = ccguard_issuer.app_config(CCGUARD_LEEWAY=5, CCGUARD_AUDIENCE="api://other")
    assert config["CCGUARD_ISSUER"] == ccguard_issuer.issuer
    assert config["CCGUARD_AUDIENCE"] == "api://other"
    assert config["CCGUARD_LEEWAY"] == 5
    assert config["CCGUARD_JWKS_REFRESH_COOLDOWN"] == 0
    # The documented client id and secret get a token the app accepts.
    answer = requests.post(
        ccguard_issuer.token_endpoint,
        data={"grant_type": "client_credentials"},
        auth=("test-client", "test-secret"),
        timeout=10,
    )
    assert answer.status_code == 200
    app = _app(ccguard_issuer.app_config())
    response = app.test_client().get("/whoami", headers={"Authorization": f"Bearer {answer.json()['access_token']}"})
    assert response.get_json() == {"sub": "test-client", "alg": "RS256"}
