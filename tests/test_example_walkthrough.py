"""The README's example walkthrough, run verbatim with curl and jq against a live example."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .example_server import LiveExample, live_example

README = Path(__file__).resolve().parent.parent / "README.rst"


def walkthrough_blocks() -> list[str]:
    """The ``bash`` code blocks between the README's walkthrough markers."""
    text = README.read_text(encoding="utf-8")
    section = text.split(".. walkthrough-start", 1)[1].split(".. walkthrough-end", 1)[0]
    blocks = re.findall(r"\.\. code-block:: bash\n\n((?:    .*\n|\n)+)", section)
    return [re.sub(r"^    ", "", block, flags=re.MULTILINE).strip() for block in blocks]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveExample]:
    with live_example(tmp_path_factory.mktemp("walkthrough")) as server:
        yield server


def test_readme_has_the_walkthrough_in_four_blocks() -> None:
    blocks = walkthrough_blocks()
    assert len(blocks) == 4
    assert "--data-urlencode" in blocks[0]
    assert "jq -r .access_token" in blocks[0]
    assert "umask 077" in blocks[0]
    assert 'curl -H "@bearer_token" http://127.0.0.1:5000/archivist/v2/assets' in blocks[1]


@pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq") and shutil.which("bash")), reason="needs bash, curl and jq"
)
def test_readme_walkthrough_runs_verbatim(live: LiveExample, tmp_path: Path) -> None:
    # Each block's output on a line of its own; only the address differs.
    script = "set -eu\n" + "\necho\n".join(walkthrough_blocks()) + "\necho\n"
    script = script.replace("http://127.0.0.1:5000", live.base)
    env = {
        "PATH": os.environ["PATH"],
        "CLIENT_ID": live.root["client_id"],
        "SECRET": live.root["credentials"][0]["secret"],
    }
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    first_list, asset, application = (json.loads(line) for line in result.stdout.splitlines() if line.strip())
    assert set(first_list) == {"assets", "next_page_token"}
    assert asset["identity"].startswith("assets/")
    assert asset["attributes"] == {"arc_display_name": "Container #1"}
    assert application["display_name"] == "TrafficLight101"
    assert len(application["credentials"][0]["secret"]) == 64

    header_file = tmp_path / "bearer_token"
    assert stat.S_IMODE(header_file.stat().st_mode) == 0o600
    assert header_file.read_text().startswith("Authorization: Bearer ey")
