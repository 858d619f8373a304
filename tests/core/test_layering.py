"""The core never imports Flask or Werkzeug (STYLE.md: imports point only down)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import flask_ccguard.core

CORE = Path(flask_ccguard.core.__file__).parent
MODULES = sorted(f"flask_ccguard.core.{p.stem}" for p in CORE.glob("*.py") if p.stem != "__init__")


def test_core_modules_exist() -> None:
    assert "flask_ccguard.core.validator" in MODULES


def test_core_imports_no_framework() -> None:
    # A bare stand-in for the top package, so its __init__ (which imports the
    # Flask layer) does not run and only the core's own imports are seen.
    code = (
        "import sys, types\n"
        + "pkg = types.ModuleType('flask_ccguard')\n"
        + f"pkg.__path__ = [{str(CORE.parent)!r}]\n"
        + "sys.modules['flask_ccguard'] = pkg\n"
        + "".join(f"import {m}\n" for m in MODULES)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'flask', 'werkzeug'})\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
