"""``examples/myapi``, the README's "your own app", keeps working: its own tests run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

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
