"""Install the interop suite's Node dependencies (``npm ci``) when they are missing or stale.

Run by tox before the tests. Without npm it only says so: the interop fixtures
then skip on a developer machine and fail in CI.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    npm = shutil.which("npm")
    marker = HERE / "node_modules" / ".package-lock.json"
    lock = HERE / "package-lock.json"
    if marker.is_file() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return 0
    if npm is None:
        print("interop: npm not found; the oidc-provider interop tests will not run here", file=sys.stderr)
        return 0
    return subprocess.call([npm, "ci", "--prefix", str(HERE), "--no-audit", "--no-fund", "--loglevel=error"])


if __name__ == "__main__":
    sys.exit(main())
