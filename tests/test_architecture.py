"""Issue 15's done-when checks that a test can hold: one owner per rule, small modules, the map."""

from __future__ import annotations

import ast
from pathlib import Path

import flask_ccguard
import flask_ccguard.cli
import flask_ccguard.decorators
from flask_ccguard.core import authorization

PACKAGE = Path(flask_ccguard.__file__).parent


def _functions(module: object) -> set[str]:
    tree = ast.parse(Path(str(getattr(module, "__file__", ""))).read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def test_i15_owner_01_decorators_use_the_one_match_rule() -> None:
    # The decorators and check-token's "authorization" step judge match= by the same function.
    assert getattr(flask_ccguard.decorators, "lacking") is authorization.lacking  # noqa: B009
    assert not {"_lacking", "lacking"} & _functions(flask_ccguard.decorators)


def test_i15_owner_02_check_token_commands_declare_their_requirement_options_once() -> None:
    # ccguard check-token and flask ccguard check-token take --role/--scope/--*-match from one place.
    source = Path(str(flask_ccguard.cli.__file__)).read_text(encoding="utf-8")
    assert source.count('"--roles-match"') == 1
    assert source.count('"--scopes-match"') == 1
