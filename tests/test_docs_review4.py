"""Review round 4 of the documentation: what the pages state, checked against the code."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

from flask import Flask

import flask_ccguard
from flask_ccguard.core.errors import CCGuardError, Unavailable

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _error_classes() -> list[type[CCGuardError]]:
    """Every ``CCGuardError`` subclass the package defines (all modules imported first)."""
    for module in pkgutil.walk_packages(flask_ccguard.__path__, "flask_ccguard."):
        importlib.import_module(module.name)
    found: list[type[CCGuardError]] = []
    pending = [CCGuardError]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub.__module__.startswith("flask_ccguard."):  # not the subclasses tests define
                found.append(sub)
            pending.append(sub)
    return found


def test_review4_docs_02_error_table_lists_every_error() -> None:
    """The validator page's table names each error class with its real status and code."""
    rows = {}
    for line in (DOCS / "validator.rst").read_text(encoding="utf-8").splitlines():
        match = re.match(r"``(\w+)``\s+(\d{3})\s+(``\w+``|\*\(none\)\*)\s", line)
        if match:
            rows[match.group(1)] = (int(match.group(2)), match.group(3).strip("`"))
    for cls in _error_classes():
        if cls is Unavailable:
            continue  # the 503 family's base, described below the table
        assert cls.__name__ in rows, f"{cls.__name__} is missing from the error table in docs/validator.rst"
        assert rows[cls.__name__] == (cls.status, cls.error or "*(none)*"), cls.__name__


def test_review4_docs_03_api_reference_documents_every_public_name() -> None:
    """The API reference says it holds every public name: each ``__all__`` has an entry."""
    import flask_ccguard.client
    import flask_ccguard.testing

    text = (DOCS / "api.rst").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\s*\.\. (?:auto\w+|data|function|class)::\s+([\w.]+)", text, re.MULTILINE))
    documented |= set(re.findall(r"^\s{10}(\w+)$", text, re.MULTILINE))  # a second name under ``.. data::``
    for module in (flask_ccguard, flask_ccguard.client, flask_ccguard.testing):
        for name in module.__all__:
            if name.startswith("__"):
                continue
            qualified = f"{module.__name__}.{name}"
            has_entry = qualified in documented or (module is flask_ccguard and name in documented)
            assert has_entry, f"{qualified} has no entry in docs/api.rst"


def test_review4_docs_04_readme_links_every_docs_page() -> None:
    """The README is the landing page: each page of the site's table of contents has a link there."""
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    pages = re.findall(r"^    ([a-z-]+)$", index.split(".. toctree::", 1)[1], re.MULTILINE)
    assert len(pages) >= 15, pages
    readme = (DOCS.parent / "README.rst").read_text(encoding="utf-8")
    targets = set(re.findall(r"<([\w./-]+\.rst)>`__", readme))
    for page in pages:
        source = (DOCS / f"{page}.rst").read_text(encoding="utf-8")
        included = re.match(r"\.\. include:: \.\./([\w.]+)\s*$", source)
        target = included.group(1) if included else f"docs/{page}.rst"
        assert target in targets, f"README.rst has no link to {target} (the docs page {page!r})"
        assert (DOCS.parent / target).is_file(), target


def test_review4_docs_05_test_command_has_a_way_past_an_externally_managed_python() -> None:
    """``python3 -m pip install tox`` fails on Debian's and Ubuntu's own Python (PEP 668):
    the quickstart, on the README and on the site, says what to run there instead."""
    fallback = ".venv/bin/python -m pip install tox && .venv/bin/python -m tox"
    for page in (DOCS.parent / "README.rst", DOCS / "quickstart.rst"):
        text = page.read_text(encoding="utf-8")
        assert "python3 -m pip install tox && python3 -m tox" in text, page.name
        assert "externally-managed-environment" in text and fallback in text, page.name


def test_review4_docs_06_pages_speak_to_users_not_to_the_tracker() -> None:
    """A reader of the site has no access to the project's issue numbers."""
    for page in sorted(DOCS.glob("*.rst")):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"\([Ii]ssue \d+\)", text), f"{page.name} cites an internal issue number"


def test_review4_docs_07_readme_example_runs_as_written() -> None:
    """The README's short example (no doctest runs it) answers as its text says: 200 and 201
    with the right token, 401 without one, 403 for a missing role or scope."""
    from flask_ccguard.testing import TestIssuer

    readme = (DOCS.parent / "README.rst").read_text(encoding="utf-8")
    block = readme.split("A protected view\n", 1)[1].split(".. code-block:: python\n", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    source = "\n".join(lines)
    with TestIssuer() as idp:
        # Only the issuer's address changes: the example's own values, pointed at a local issuer.
        source = source.replace('"https://idp.example.com/tenant-1"', repr(idp.issuer))
        source = source.replace('"https://api.example.com"', repr(idp.audience))
        namespace: dict[str, object] = {"__name__": "readme_example"}
        exec(compile(source, "README.rst", "exec"), namespace)
        app = namespace["app"]
        assert isinstance(app, Flask)
        client = app.test_client()

        def call(method: str, path: str, token: str | None = None) -> tuple[int, object]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = client.open(path, method=method, headers=headers)
            return response.status_code, response.json

        assert call("GET", "/archivist/v2/assets", idp.mint(roles=["guest"])) == (200, {"caller": "test-client"})
        assert call("POST", "/reports", idp.mint(scope="reports.write")) == (201, {"by": "test-client"})
        assert call("GET", "/archivist/v2/assets")[0] == 401
        assert call("GET", "/archivist/v2/assets", idp.mint(roles=["reader"]))[0] == 403
        assert call("POST", "/reports", idp.mint(scope="reports.read"))[0] == 403
