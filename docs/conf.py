"""Sphinx configuration: ``tox -e docs`` builds the site with warnings as errors and runs its examples."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))  # the local extensions below
sys.path.append(str(HERE.parent))  # benchmarks/plot.py; flask_ccguard itself is the one tox installed

from flask_ccguard import __version__  # noqa: E402

project = "flask-ccguard"
author = "the flask-ccguard authors"
copyright = "the flask-ccguard authors"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "pallets_sphinx_themes",
    "ccguard_options",  # .. ccguard-options:: the configuration table from the options model
    "ccguard_pictures",  # the request sequence and the benchmark plot, drawn at each build
]

exclude_patterns = ["_build"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_theme = "flask"
html_theme_options = {"index_sidebar_logo": False}
html_title = f"flask-ccguard {version}"
html_show_sourcelink = False

# Plain ``::`` blocks are shell sessions and output (as on GitHub, which
# renders the same text); Python examples say ``code-block:: python``.
highlight_language = "none"
pygments_style = "default"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True}

# A reference written on a page (:class:, :func:, :data:…) that names nothing
# fails the build: without this, Sphinx shows it as plain text and says nothing.
# Docstrings and type hints may name internal classes the API reference leaves
# out (it documents the public names only), so only the pages are held to it.
nitpicky = True


def _page_references_only(app: object, domain: object, node: object) -> bool | None:
    """Suppress a missing-reference warning unless a page outside the API reference made it."""
    source = str(getattr(node, "source", None) or "")
    on_a_page = source.endswith(".rst") and not source.endswith("api.rst")
    return None if on_a_page else True


def setup(app: object) -> None:
    app.connect("warn-missing-reference", _page_references_only)  # type: ignore[attr-defined]


# Examples run against real loopback issuers (flask_ccguard.testing.TestIssuer).
# ``__name__`` is what an example module would have (Flask(__name__) needs one).
doctest_global_setup = """
__name__ = "example"
from flask_ccguard.testing import TestIssuer
"""
