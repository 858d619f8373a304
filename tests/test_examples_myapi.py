"""``examples/myapi``, the README's "your own app", keeps working: its own tests run as a user runs them."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from flask_ccguard.testing import TestIssuer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "myapi"


def _plugin_installed() -> bool:
    if sys.version_info >= (3, 10):
        group = entry_points(group="pytest11")
    else:
        group = entry_points().get("pytest11", [])
    # An older install points at flask_ccguard.testing, which no longer holds the fixture.
    return any(entry.name == "ccguard" and entry.value == "flask_ccguard.testing.plugin" for entry in group)


def test_i14_done_examples_myapi_tests_pass_with_the_ccguard_issuer_fixture() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCGUARD_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    # Installed, flask-ccguard's pytest11 entry point gives the fixture, as
    # for any user; a bare checkout (PYTHONPATH=.) has to name the plugin.
    plugin = [] if _plugin_installed() else ["-p", "flask_ccguard.testing.plugin"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 passed" in result.stdout, result.stdout


def test_i14_done_the_readme_points_to_examples_myapi() -> None:
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    assert "examples/myapi" in text


def _load_myapi() -> Any:
    spec = importlib.util.spec_from_file_location("myapi_app_review2", EXAMPLE / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "raw",
    ["https://other https://api", '["https://other", "https://api"]'],
    ids=["review2_f5_words", "review2_f5_json"],
)
def test_review2_f5_myapi_reads_its_environment_as_the_ccguard_command_does(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    myapi = _load_myapi()
    with TestIssuer(audience="https://api") as issuer:
        monkeypatch.setenv("CCGUARD_ISSUER", issuer.issuer)
        monkeypatch.setenv("CCGUARD_AUDIENCE", raw)
        app = myapi.create_app()
        assert app.config["CCGUARD_AUDIENCE"] == ["https://other", "https://api"]
        response = app.test_client().get("/api/whoami", headers={"Authorization": f"Bearer {issuer.mint()}"})
        assert response.status_code == 200, response.text
