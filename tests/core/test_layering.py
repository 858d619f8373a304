"""The core never imports Flask or Werkzeug (STYLE.md: imports point only down)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
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


# -- The import graph (issue 15 item 7) ------------------------------------------------------------
#
# Built from the source with ``ast`` rather than by importing: it sees every
# module, whatever is installed, and only what runs at import time. An import
# inside a function or under ``if TYPE_CHECKING:`` is not an edge (it cannot
# take part in an import cycle); every import anywhere counts for the
# framework ban below, which is about what a module may use at all.

PACKAGE = CORE.parent
Graph = dict[str, set[str]]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return isinstance(test, (ast.Name, ast.Attribute)) and "TYPE_CHECKING" in ast.unparse(test)


def _import_time_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run when the module is imported: the top level, into ``if``/``try``/``with`` blocks."""
    for node in body:
        if isinstance(node, ast.If):
            if not _is_type_checking(node):
                yield from _import_time_statements(node.body)
            yield from _import_time_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _import_time_statements(block)
        elif isinstance(node, ast.With):
            yield from _import_time_statements(node.body)
        else:
            yield node


def _imported(module: str, node: ast.stmt | ast.expr) -> Iterator[str]:
    """The modules an ``import`` statement names, resolved to absolute dotted names."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            package = module if SOURCES[module].name == "__init__.py" else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{node.module}" if node.module else package
        else:
            base = node.module or ""
        for alias in node.names:
            # `from pkg import submodule` imports the submodule.
            yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in SOURCES else base


def _import_graph() -> Graph:
    graph: Graph = {}
    for module, path in SOURCES.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[module] = {
            name
            for node in _import_time_statements(tree.body)
            for name in _imported(module, node)
            if name in SOURCES and name != module
        }
    return graph


def _all_imports(module: str) -> set[str]:
    """Every module ``module`` imports, at import time or later."""
    tree = ast.parse(SOURCES[module].read_text())
    return {
        name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for name in _imported(module, node)
    }


def _cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_i15_07_the_import_graph_sees_every_module() -> None:
    graph = _import_graph()
    assert "flask_ccguard.testing.profiles.base" in graph
    assert "flask_ccguard.testing.issuer" in graph["flask_ccguard.testing.profiles.base"]
    assert "flask_ccguard.core.fetch.http" in graph["flask_ccguard.core.validator"]
    # A TYPE_CHECKING import is no edge.
    assert "flask_ccguard.core.jwks" not in graph["flask_ccguard.core.stats"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import that can run, in functions too; not those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield from _runtime_imports(child)
        else:
            yield from _runtime_imports(node)


def _deferred_graph() -> Graph:
    """The import graph with the imports inside functions as edges too."""
    graph: Graph = {}
    for module, path in SOURCES.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[module] = {
            name
            for node in _runtime_imports(tree)
            for name in _imported(module, node)
            if name in SOURCES and name != module
        }
    return graph


def test_i15_07_no_import_cycles() -> None:
    assert _cycles(_import_graph()) == []


def test_i15_07_no_cycle_hidden_in_a_function_level_import() -> None:
    # An import moved into a function hides a cycle from the interpreter, not
    # from the design: TestIssuer.__new__ imported the profiles, which import
    # TestIssuer. Only TYPE_CHECKING imports (annotations) may point back.
    assert _cycles(_deferred_graph()) == []


FRAMEWORKS = {"flask", "werkzeug", "click"}


def test_i15_07_core_imports_no_framework_and_nothing_above_it() -> None:
    bad = {}
    for module in SOURCES:
        if _under(module, "flask_ccguard.core"):
            names = _all_imports(module)
            wrong = {
                name
                for name in names
                if name.split(".")[0] in FRAMEWORKS
                or (
                    _under(name, "flask_ccguard")
                    and not _under(name, "flask_ccguard.core")
                    and name != "flask_ccguard._version"
                )
            }
            if wrong:
                bad[module] = sorted(wrong)
    assert bad == {}


# The token client sends requests; it does not verify tokens. It may use the
# outbound HTTP layer, the error types and generic helpers, never the validator,
# keys, claims or caches.
CLIENT_MAY_USE = (
    "flask_ccguard.client",
    "flask_ccguard.core.fetch",
    "flask_ccguard.core.errors",
    "flask_ccguard.core.numbers",
    "flask_ccguard.core.bearer",
    "flask_ccguard._version",
)


def test_i15_07_client_imports_no_verification_code() -> None:
    bad = {}
    for module in SOURCES:
        if _under(module, "flask_ccguard.client"):
            wrong = {
                name
                for name in _all_imports(module)
                if name.split(".")[0] in FRAMEWORKS
                or (_under(name, "flask_ccguard") and not any(_under(name, ok) for ok in CLIENT_MAY_USE))
            }
            if wrong:
                bad[module] = sorted(wrong)
    assert bad == {}


def test_i15_07_testing_stays_independent_of_the_validator() -> None:
    # TestIssuer is a second implementation the validator is checked against:
    # it may share the Basic-credentials codec, nothing that verifies tokens.
    bad = {}
    for module in SOURCES:
        if _under(module, "flask_ccguard.testing"):
            wrong = {
                name
                for name in _all_imports(module)
                if _under(name, "flask_ccguard")
                and not _under(name, "flask_ccguard.testing")
                and name != "flask_ccguard.core.fetch.basic_auth"
            }
            if wrong:
                bad[module] = sorted(wrong)
    assert bad == {}


def test_i15_07_only_the_plugin_imports_pytest() -> None:
    users = sorted(m for m in SOURCES if "pytest" in {n.split(".")[0] for n in _all_imports(m)})
    assert users == ["flask_ccguard.testing.plugin"]
    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "import flask_ccguard.testing as t, flask_ccguard.testing.profiles\n"
        "with t.profile_issuer('duende') as i: print(i.issuer)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("http://127.0.0.1:")


def test_i15_07_no_module_over_300_lines_in_testing() -> None:
    long = {
        m: n
        for m, p in SOURCES.items()
        if _under(m, "flask_ccguard.testing") and (n := len(p.read_text().splitlines())) > 300
    }
    assert long == {}
