"""Sphinx directive ``.. ccguard-options::``: the configuration table, generated from the options model.

The table is :func:`flask_ccguard.core.options.option_table_rst`, parsed here
as reStructuredText, so the documented keys, defaults and meanings are the
ones the code declares and cannot drift from it.
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

#: The section names the option texts may link to (`Deployment`_; written when they were
#: sections of the one-page README), and the page that holds each section here. A name
#: missing from this map stays a reference to nothing and fails the build, as a broken
#: link should.
README_SECTIONS = {
    "Quickstart": "quickstart",
    "Installation": "quickstart",
    "Usage": "quickstart",
    "Example asset API": "quickstart",
    "Protecting views": "views",
    "Responses": "views",
    "Protected resource metadata": "views",
    "Signals and logging": "views",
    "Configuration": "configuration",
    "Warm-up": "configuration",
    "Validating tokens without Flask": "validator",
    "How the keys are handled": "validator",
    "Issuer recipes": "issuers",
    "Opaque tokens and introspection (RFC 7662)": "issuers",
    "Token client": "client",
    "Command line": "client",
    "Testing your API": "testing",
    "Interoperability": "testing",
    "Deployment": "deployment",
    "Production checklist": "deployment",
    "Observability": "observability",
    "Performance": "performance",
    "The verified-token cache": "performance",
    "Sender-constrained tokens": "sender-constrained",
}

_SECTION_REFERENCE = re.compile(r"`([^`<>]+)`_(?!_)")


def _to_pages(text: str) -> str:
    """README-style section references (```Deployment`_``) as links to the page holding that section."""

    def page(match: re.Match[str]) -> str:
        name = match.group(1)
        doc = README_SECTIONS.get(name)
        return f":doc:`{name} <{doc}>`" if doc else match.group(0)

    return _SECTION_REFERENCE.sub(page, text)


class CCGuardOptions(SphinxDirective):
    """Insert the ``CCGUARD_*`` option table rendered by the options model."""

    has_content = False
    required_arguments = 0

    def run(self) -> list[nodes.Node]:
        from flask_ccguard.core import options
        from flask_ccguard.core.options import option_table_rst

        self.env.note_dependency(options.__file__)  # an edited option rebuilds this page
        source = "<flask_ccguard.core.options.option_table_rst>"
        lines = StringList(_to_pages(option_table_rst()).splitlines(), source=source)
        container = nodes.container(classes=["ccguard-options"])
        nested_parse_with_titles(self.state, lines, container)
        return [container]


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("ccguard-options", CCGuardOptions)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
