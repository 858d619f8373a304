"""Install the interop suite's Node dependencies (``npm ci``), retrying registry failures.

Run by tox before the tests (``commands_pre`` of the test environments only,
never of ``style`` or ``typing``) and by ``.ci/run`` before tox. ``npm ci``
fetches some thirty packages from the npm registry, and one failed fetch (a
proxy's ``SELF_SIGNED_CERT_IN_CHAIN``, an ``ECONNRESET``) must not cost the
rest of the suite, so:

* a failed ``npm ci`` is tried again, up to ``CCGUARD_NPM_ATTEMPTS`` (4)
  attempts in all, waiting ``CCGUARD_NPM_BACKOFF`` (5) seconds before the
  second and twice as long before each next one; errors npm reports as the
  project's own (``EUSAGE``: lock file and ``package.json`` disagree) are not
  retried;
* when it still fails, in CI (``CI`` set, and not ``false`` or ``0``) the exit
  status is npm's, so the run fails loudly; elsewhere it is 0 and the reason
  is left in ``node_modules/.ccguard-install-failed``, from which the interop
  conftest skips those tests with that reason while the rest of the suite runs.

``CCGUARD_SKIP_INTEROP=1`` skips the installation (and the tests).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
#: Written by a failed installation outside CI; holds the reason to skip with.
FAILURE_FILE = NODE_MODULES / ".ccguard-install-failed"
#: npm writes this hidden lock file last, once a tree is complete.
_INSTALLED_MARKER = NODE_MODULES / ".package-lock.json"
_NPM_TIMEOUT = 600.0  # seconds for one ``npm ci``; a hung registry must not hang CI
#: npm error codes that another attempt cannot fix.
_PERMANENT_CODES = frozenset({"EUSAGE", "EBADENGINE", "ENOTSUP", "EJSONPARSE"})
_CODE = re.compile(r"^npm (?:error|ERR!) code (\S+)", re.MULTILINE)


def in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``CI`` asks for missing prerequisites to fail rather than skip."""
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def installed() -> bool:
    """Whether ``node_modules`` holds a complete install that has oidc-provider."""
    return _INSTALLED_MARKER.is_file() and (NODE_MODULES / "oidc-provider" / "package.json").is_file()


def failure_reason() -> str | None:
    """The reason the last installation here failed, if it did (outside CI)."""
    try:
        return FAILURE_FILE.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _up_to_date() -> bool:
    lock = HERE / "package-lock.json"
    return installed() and _INSTALLED_MARKER.stat().st_mtime >= lock.stat().st_mtime


def _attempts_and_backoff(environ: Mapping[str, str]) -> tuple[int, float]:
    try:
        attempts = max(1, int(environ.get("CCGUARD_NPM_ATTEMPTS", "4")))
        backoff = max(0.0, float(environ.get("CCGUARD_NPM_BACKOFF", "5")))
    except ValueError:
        raise SystemExit("interop: CCGUARD_NPM_ATTEMPTS must be an integer and CCGUARD_NPM_BACKOFF a number") from None
    return attempts, backoff


def _npm_ci(npm: str) -> tuple[int, str]:
    """Run ``npm ci`` once; return its status and a one-line summary of a failure."""
    argv = [npm, "ci", "--prefix", str(HERE), "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=_NPM_TIMEOUT)
    except subprocess.TimeoutExpired:
        return 1, f"`npm ci` did not finish within {_NPM_TIMEOUT:.0f} s"
    sys.stderr.write(done.stdout)
    if done.returncode == 0:
        return 0, ""
    codes = _CODE.findall(done.stdout)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    detail = f"npm error code {codes[-1]}" if codes else (lines[-1][:200] if lines else "no output")
    return done.returncode, f"`npm ci` exited with status {done.returncode} ({detail})"


def _give_up(reason: str, status: int, environ: Mapping[str, str]) -> int:
    if in_ci(environ):
        print(f"interop: {reason}; CI is set, so this fails the run", file=sys.stderr)
        return status or 1
    # npm ci has already emptied node_modules; drop what a failed attempt left
    # so that nobody mistakes it for an install, and say why for the conftest.
    shutil.rmtree(NODE_MODULES, ignore_errors=True)
    NODE_MODULES.mkdir(exist_ok=True)
    FAILURE_FILE.write_text(reason + "\n", encoding="utf-8")
    print(f"interop: {reason}; the interop tests will be skipped, the rest of the suite runs", file=sys.stderr)
    return 0


def main(environ: Mapping[str, str] = os.environ) -> int:
    if environ.get("CCGUARD_SKIP_INTEROP") == "1":
        print("interop: CCGUARD_SKIP_INTEROP=1, npm packages not installed", file=sys.stderr)
        return 0
    if _up_to_date():
        FAILURE_FILE.unlink(missing_ok=True)
        return 0
    npm = shutil.which("npm")
    if npm is None:
        return _give_up("npm is not on PATH (install Node.js >= 20.19)", 1, environ)
    attempts, backoff = _attempts_and_backoff(environ)
    status, reason, delay = 1, "", backoff
    for attempt in range(1, attempts + 1):
        status, reason = _npm_ci(npm)
        if status == 0:
            FAILURE_FILE.unlink(missing_ok=True)
            return 0
        permanent = any(code in reason for code in _PERMANENT_CODES)
        if attempt == attempts or permanent:
            break
        print(f"interop: attempt {attempt}/{attempts}: {reason}; retrying in {delay:g} s", file=sys.stderr)
        time.sleep(delay)
        delay *= 2
    return _give_up(f"{reason}, after {attempt} attempt(s)", status, environ)


if __name__ == "__main__":
    sys.exit(main())
