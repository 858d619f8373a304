"""Sphinx directive ``.. ccguard-options::``: the configuration table, generated from the options model.

The table is :func:`flask_ccguard.core.options.option_table_rst`, parsed here
as reStructuredText, so the documented keys, defaults and meanings are the
ones the code declares and cannot drift from it.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


class CCGuardOptions(SphinxDirective):
    """Insert the ``CCGUARD_*`` option table rendered by the options model."""

    has_content = False
    required_arguments = 0

    def run(self) -> list[nodes.Node]:
        from flask_ccguard.core import options
        from flask_ccguard.core.options import option_table_rst

        self.env.note_dependency(options.__file__)  # an edited option rebuilds this page
        source = "<flask_ccguard.core.options.option_table_rst>"
        lines = StringList(option_table_rst().splitlines(), source=source)
        container = nodes.container(classes=["ccguard-options"])
        nested_parse_with_titles(self.state, lines, container)
        return [container]


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("ccguard-options", CCGuardOptions)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
