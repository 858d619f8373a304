"""The example walkthrough (``docs/quickstart.rst``, which the README links), run as written against
``run_example.py --port`` on a free port."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import requests

from example_app import create_app

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.rst"
#: The walkthrough lives on the docs' quickstart page; the README is the landing page that links it.
QUICKSTART = ROOT / "docs" / "quickstart.rst"
DEFAULT_BASE = "BASE=http://127.0.0.1:5000"


def walkthrough_blocks() -> list[str]:
    """The ``bash`` code blocks between the quickstart page's walkthrough markers."""
    text = QUICKSTART.read_text(encoding="utf-8")
    section = text.split(".. walkthrough-start", 1)[1].split(".. walkthrough-end", 1)[0]
    blocks = re.findall(r"\.\. code-block:: bash\n\n((?:    .*\n|\n)+)", section)
    return [re.sub(r"^    ", "", block, flags=re.MULTILINE).strip() for block in blocks]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Started:
    """``run_example.py`` serving on ``port``, and the root credentials it printed."""

    def __init__(self, port: int, credentials: dict[str, str]) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.credentials = credentials


def _environment(instance: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXAMPLE_", "CCGUARD_"))}
    env["EXAMPLE_INSTANCE_PATH"] = str(instance)
    # This checkout's code, even where another copy is installed.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    """``python3 run_example.py --no-venv --port N`` as a separate process, N not 5000."""
    folder = tmp_path_factory.mktemp("walkthrough")
    port = _free_port()
    assert port != 5000
    log = folder / "stderr.txt"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(  # the server: this test's own child, stopped below
            [sys.executable, str(ROOT / "run_example.py"), "--no-venv", "--port", str(port)],
            env=_environment(folder / "instance"),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                requests.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        # What the first start prints for the user to paste: export NAME=value.
        credentials = dict(re.findall(r"export (CLIENT_ID|SECRET)=(\S+)", log.read_text()))
        assert set(credentials) == {"CLIENT_ID", "SECRET"}, log.read_text()
        yield Started(port, credentials)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_i14_05_readme_walkthrough_sets_base_once_and_needs_no_jq() -> None:
    blocks = walkthrough_blocks()
    assert len(blocks) == 5
    assert blocks[0].splitlines()[0] == DEFAULT_BASE
    assert "--data-urlencode" in blocks[0]
    assert "umask 077" in blocks[0]
    assert 'curl -H "@bearer_token" "$BASE/archivist/v2/assets"' in blocks[1]
    text = "\n".join(blocks)
    # Every address goes through $BASE, so --port needs one edit; jq is not needed.
    assert text.count("127.0.0.1") == 1
    assert "jq" not in text


def test_i14_05_readme_says_how_to_get_root_credentials_after_a_restart() -> None:
    for page in (README, QUICKSTART):
        text = page.read_text(encoding="utf-8")
        assert ".venv/bin/flask --app example_app register admin --root" in text, page
        assert ". .venv/bin/activate" in text, page


def test_i19_readme_links_the_walkthrough_it_no_longer_holds() -> None:
    text = README.read_text(encoding="utf-8")
    assert "<docs/quickstart.rst>`" in text
    assert ".. walkthrough-start" not in text  # one copy, the one the test above runs


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("bash")), reason="needs bash and curl")
def test_i14_05_readme_walkthrough_runs_as_written_on_another_port(started: Started, tmp_path: Path) -> None:
    blocks = walkthrough_blocks()
    # The one edit the walkthrough asks for after --port: the port in BASE.
    blocks[0] = blocks[0].replace(DEFAULT_BASE, f"BASE={started.base}", 1)
    # Each block's output on a line of its own.
    script = "set -eu\n" + "\necho\n".join(blocks) + "\necho\n"
    env = {"PATH": os.environ["PATH"], **started.credentials}
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    first_list, asset, application, metadata = (json.loads(line) for line in result.stdout.splitlines() if line.strip())
    assert set(first_list) == {"assets", "next_page_token"}
    assert asset["identity"].startswith("assets/")
    assert asset["attributes"] == {"arc_display_name": "Container #1"}
    assert application["display_name"] == "TrafficLight101"
    assert len(application["credentials"][0]["secret"]) == 64
    # i17-07: the authorization server, found from a 401 alone (RFC 9728 §5.1).
    assert metadata["resource"] == started.base + "/archivist"
    assert metadata["authorization_servers"] == [started.base + "/archivist/iam/v1/appidp"]
    assert metadata["resource_name"] == "Example asset API"

    header_file = tmp_path / "bearer_token"
    assert stat.S_IMODE(header_file.stat().st_mode) == 0o600
    assert header_file.read_text().startswith("Authorization: Bearer ey")


def test_i14_05_the_example_issues_for_the_port_it_was_given(started: Started) -> None:
    metadata = requests.get(started.base + "/archivist/iam/v1/appidp/.well-known/openid-configuration", timeout=10)
    assert metadata.json()["issuer"] == started.base + "/archivist/iam/v1/appidp"


def test_i14_05_run_example_help_prints_its_own_options_before_installing(tmp_path: Path) -> None:
    # A copy, so that an installation it wrongly started would land in tmp_path.
    script = tmp_path / "run_example.py"
    shutil.copy(ROOT / "run_example.py", script)
    result = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: run_example.py")
    assert "--port PORT" in result.stdout
    assert "--no-venv" in result.stdout
    assert not (tmp_path / ".venv").exists()


def test_i14_05_a_restart_says_how_to_get_new_root_credentials(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith(("EXAMPLE_", "CCGUARD_")):
            monkeypatch.delenv(name)
    create_app({"EXAMPLE_INSTANCE_PATH": str(tmp_path)})
    assert "export SECRET=" in capfd.readouterr().err
    # `flask run` loading the app again: the secret is not shown, the way to a new one is.
    with click.Context(click.Command("run"), info_name="run") as ctx:
        ctx.params = {"host": "127.0.0.1", "port": 5001}
        create_app({"EXAMPLE_INSTANCE_PATH": str(tmp_path)})
    err = capfd.readouterr().err
    assert "export SECRET=" not in err
    assert "register admin --root" in err
