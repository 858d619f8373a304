"""What the suite and the package depend on, and how they cope when it is missing.

Issue 14 item 12: python-jose installs ``ecdsa``, ``rsa`` and ``pyasn1``
(scanners flag CVE-2024-23342 in ``ecdsa``); SECURITY.rst says none of them
is imported at run time, and :func:`test_i14_12_python_jose_extras_are_never_imported`
holds it by using every part of flask-ccguard in a fresh interpreter.

Issue 14 item 1: the interop suite's npm packages are installed with retries,
and a registry that keeps failing skips the interop tests with the reason
outside CI (failing the run in CI) instead of stopping every test and the
linter. The npm here is a fake first on ``PATH`` that fails as a registry
would: what is tested is our own retry and skip logic, not npm.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INTEROP = ROOT / "tests" / "interop"

FAKE_NPM = """#!/bin/sh
# fake npm: fails FAKE_NPM_FAILURES times (as a registry behind a TLS proxy
# does), then installs a minimal tree; counts its calls in FAKE_NPM_COUNT.
n=$(cat "$FAKE_NPM_COUNT" 2>/dev/null || echo 0)
echo $((n + 1)) > "$FAKE_NPM_COUNT"
prefix="$3"
if [ "$n" -lt "$FAKE_NPM_FAILURES" ]; then
  mkdir -p "$prefix/node_modules/half-installed"
  echo "npm error code ${FAKE_NPM_CODE:-SELF_SIGNED_CERT_IN_CHAIN}" >&2
  echo "npm error request to https://registry.npmjs.org/oidc-provider failed" >&2
  exit 1
fi
mkdir -p "$prefix/node_modules/oidc-provider"
echo '{}' > "$prefix/node_modules/oidc-provider/package.json"
echo '{}' > "$prefix/node_modules/.package-lock.json"
"""


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _env(bin_dir: Path, *, ci: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "CCGUARD_SKIP_INTEROP")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    if ci is not None:
        env["CI"] = ci
    env.update(extra)
    return env


@pytest.fixture
def interop_copy(tmp_path: Path) -> Path:
    """A copy of tests/ with the interop suite but without its node_modules."""
    tests = tmp_path / "tests"
    (tests / "interop").mkdir(parents=True)
    for name in ("__init__.py", "challenges.py", "conftest.py"):
        shutil.copy(ROOT / "tests" / name, tests / name)
    for path in INTEROP.iterdir():
        if path.is_file():
            shutil.copy(path, tests / "interop" / path.name)
    return tmp_path


def _ensure_deps(
    copy: Path, failures: int, *, ci: str | None, **extra: str
) -> tuple[subprocess.CompletedProcess[str], int]:
    bin_dir = copy / "bin"
    bin_dir.mkdir(exist_ok=True)
    _executable(bin_dir / "npm", FAKE_NPM)
    count = copy / "npm-calls"
    env = _env(
        bin_dir,
        ci=ci,
        FAKE_NPM_FAILURES=str(failures),
        FAKE_NPM_COUNT=str(count),
        CCGUARD_NPM_BACKOFF="0",
        **extra,
    )
    script = copy / "tests" / "interop" / "ensure_deps.py"
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    return done, int(count.read_text()) if count.exists() else 0


def _pytest_interop(copy: Path, *, ci: str | None, **extra: str) -> subprocess.CompletedProcess[str]:
    bin_dir = copy / "bin"
    bin_dir.mkdir(exist_ok=True)
    # A node that exists (the original conftest only skipped without one).
    _executable(bin_dir / "node", "#!/bin/sh\nexit 1\n")
    env = _env(bin_dir, ci=ci, **extra)
    argv = [sys.executable, "-m", "pytest", "tests/interop", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    return subprocess.run(argv, cwd=copy, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("ci", [None, "true"], ids=["i14_01_dev", "i14_01_ci"])
def test_i14_01_npm_failing_once_is_retried(interop_copy: Path, ci: str | None) -> None:
    done, calls = _ensure_deps(interop_copy, failures=1, ci=ci)
    assert done.returncode == 0, done.stderr
    assert calls == 2
    assert "attempt 1/4" in done.stderr and "SELF_SIGNED_CERT_IN_CHAIN" in done.stderr
    node_modules = interop_copy / "tests" / "interop" / "node_modules"
    assert (node_modules / ".package-lock.json").is_file()
    assert not (node_modules / ".ccguard-install-failed").exists()


def test_i14_01_npm_failing_always_outside_ci_leaves_the_reason_and_lets_tests_run(interop_copy: Path) -> None:
    done, calls = _ensure_deps(interop_copy, failures=99, ci=None)
    assert done.returncode == 0, done.stderr
    assert calls == 4
    node_modules = interop_copy / "tests" / "interop" / "node_modules"
    assert not (node_modules / "half-installed").exists()
    reason = (node_modules / ".ccguard-install-failed").read_text()
    assert "SELF_SIGNED_CERT_IN_CHAIN" in reason and "4 attempt" in reason

    # The conftest skips with that reason, and the run says so at the end.
    run = _pytest_interop(interop_copy, ci=None)
    assert run.returncode == 0, run.stdout[-3000:]
    last_lines = run.stdout.strip().splitlines()[-2:]
    assert last_lines[0].startswith("interop: ") and " tests skipped: " in last_lines[0]
    assert "SELF_SIGNED_CERT_IN_CHAIN" in last_lines[0]
    assert "error" not in last_lines[1] and "skipped" in last_lines[1]


@pytest.mark.parametrize("ci", ["true", "1"])
def test_i14_01_npm_failing_always_in_ci_fails_the_run(interop_copy: Path, ci: str) -> None:
    done, calls = _ensure_deps(interop_copy, failures=99, ci=ci)
    assert done.returncode != 0
    assert calls == 4
    assert "CI is set" in done.stderr and "SELF_SIGNED_CERT_IN_CHAIN" in done.stderr


def test_i14_01_project_errors_are_not_retried(interop_copy: Path) -> None:
    done, calls = _ensure_deps(interop_copy, failures=99, ci="true", FAKE_NPM_CODE="EUSAGE")
    assert done.returncode != 0
    assert calls == 1


def test_i14_01_missing_node_modules_skip_outside_ci(interop_copy: Path) -> None:
    run = _pytest_interop(interop_copy, ci=None)
    assert run.returncode == 0, run.stdout[-3000:]
    assert " error" not in run.stdout
    summary = [line for line in run.stdout.splitlines() if line.startswith("interop: ")]
    assert len(summary) == 1
    count = int(summary[0].split()[1])
    assert count > 100 and f"{count} skipped" in run.stdout
    assert "node_modules is missing" in summary[0] and "npm ci --prefix tests/interop" in summary[0]


@pytest.mark.parametrize("ci", ["true", "1"])
def test_i14_01_missing_node_modules_fail_in_ci(interop_copy: Path, ci: str) -> None:
    run = _pytest_interop(interop_copy, ci=ci)
    assert run.returncode != 0
    assert "node_modules is missing" in run.stdout and "CI is set" in run.stdout
    assert " passed" not in run.stdout


def test_i14_01_skip_interop_skips_even_when_installed(interop_copy: Path) -> None:
    done, _ = _ensure_deps(interop_copy, failures=0, ci=None)
    assert done.returncode == 0
    run = _pytest_interop(interop_copy, ci="true", CCGUARD_SKIP_INTEROP="1")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "tests skipped: CCGUARD_SKIP_INTEROP=1 is set" in run.stdout


def _tox() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tox.ini")
    return parser


@pytest.mark.parametrize("env", ["style", "typing", "example", "bench"])
def test_i14_01_only_test_environments_install_npm_packages(env: str) -> None:
    tox = _tox()
    base = tox["testenv"]["commands_pre"]
    assert "ensure_deps" in base
    # As in tox, a setting an environment does not give is [testenv]'s.
    assert tox[f"testenv:{env}"].get("commands_pre", base).strip() == ""


def test_i14_01_tox_passes_through_what_npm_needs() -> None:
    passenv = set(_tox()["testenv"]["passenv"].split())
    needed = {"CI", "NODE_EXTRA_CA_CERTS", "npm_config_*", "NPM_CONFIG_*", "SSL_CERT_FILE"}
    needed |= {name for proxy in ("http_proxy", "https_proxy", "no_proxy") for name in (proxy, proxy.upper())}
    assert needed <= passenv


def test_i14_01_ci_script_retries_registry_steps(tmp_path: Path) -> None:
    script = (ROOT / ".ci" / "run").read_text()
    for step in ("retry apt-get update", "retry apt-get install", "retry python3 -m pip install"):
        assert step in script
    # Only the script's retry function runs here, never the CI itself.
    function = re.search(r"^retry\(\) \{$.*?^\}$", script, re.MULTILINE | re.DOTALL)
    assert function is not None
    flaky = _executable(
        tmp_path / "flaky",
        f'#!/bin/sh\nn=$(cat {tmp_path}/n 2>/dev/null || echo 0)\necho $((n + 1)) > {tmp_path}/n\n[ "$n" -ge 2 ]\n',
    )
    env = {**os.environ, "CI_BACKOFF": "0"}
    argv = ["bash", "-c", function.group(0) + '\nretry "$0"', str(flaky)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "n").read_text().strip() == "3"
    assert "attempt 2 failed" in done.stderr


#: Uses every part of flask-ccguard: the extension and the validator with
#: tokens of every algorithm (RS, PS, ES, EdDSA), the token client, the CLI.
USE_EVERYTHING = """
import json, sys
from click.testing import CliRunner
from flask import Flask
from flask_ccguard import CCGuard, TokenValidator, require_token
from flask_ccguard.cli import main
from flask_ccguard.client import ClientCredentials
from flask_ccguard.testing import TestIssuer

algs = ("RS256", "PS256", "ES256", "EdDSA")
with TestIssuer(algorithms=algs, clients={"c": "s"}) as issuer:
    app = Flask("m")
    app.config.update(issuer.app_config())
    CCGuard(app)

    @app.get("/")
    @require_token
    def view():
        return "ok"

    validator = TokenValidator(issuer=issuer.issuer, audience=issuer.audience, algorithms=list(algs))
    runner = CliRunner()
    for alg in algs:
        token = issuer.mint(alg=alg)
        assert app.test_client().get("/", headers={"Authorization": "Bearer " + token}).status_code == 200
        validator.validate(token)
        argv = ["check-token", "-T", token, "--issuer", issuer.issuer, "--audience", issuer.audience, "--algorithm", alg]
        assert runner.invoke(main, argv).exit_code == 0
    token = ClientCredentials(issuer.token_endpoint, "c", "s").token()
    assert runner.invoke(main, ["decode", token]).exit_code == 0
    assert runner.invoke(main, ["token", "--issuer", issuer.issuer, "-c", "c", "-s", "s"]).exit_code == 0
print(json.dumps(sorted(name for name in ("ecdsa", "rsa", "pyasn1", "jose") if name in sys.modules)))
"""


def test_i14_12_python_jose_extras_are_never_imported() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", USE_EVERYTHING], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # python-jose itself is used (its cryptography backend loads RSA and EC
    # keys); the pure-Python backends and their dependencies never are.
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["jose"]
