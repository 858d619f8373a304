"""Issue 15 item 2: every option declared once (core/options.py), and everything else derived from it."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from flask_ccguard import ConfigurationError, TokenValidator
from flask_ccguard.config import DEFAULTS, EXTENSION_KEYS
from flask_ccguard.core.issuers import ISSUER_ONLY_OPTIONS, PER_ISSUER_OPTIONS
from flask_ccguard.core.options import OPTIONS, option_table_rst

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.rst"
CONFIGURATION_PAGE = ROOT / "docs" / "configuration.rst"


def test_i15_02_validator_signature_agrees_with_options() -> None:
    parameters = inspect.signature(TokenValidator).parameters
    validator_options = {n for n, o in OPTIONS.items() if o.layer == "validator"}
    assert validator_options == set(parameters) - {"self", "clock", "option_name"}
    for name in validator_options - {"issuer"}:
        assert parameters[name].default == OPTIONS[name].default, name


def test_i15_02_config_keys_and_per_issuer_keys_derive_from_options() -> None:
    assert {o.key: o.default for o in OPTIONS.values() if o.layer != "client"} == DEFAULTS
    assert {o.key for o in OPTIONS.values() if o.layer == "extension"} == EXTENSION_KEYS
    assert {n for n, o in OPTIONS.items() if o.per_issuer} | ISSUER_ONLY_OPTIONS == PER_ISSUER_OPTIONS
    assert all(o.key == "CCGUARD_" + n.upper() for n, o in OPTIONS.items())


def test_i15_02_readme_table_is_generated_from_options() -> None:
    """The one option table is the docs' configuration page, rendered from ``option_table_rst()``.

    The README links that page and holds no hand-kept copy that could drift.
    """
    page = CONFIGURATION_PAGE.read_text(encoding="utf-8")
    assert "\n.. ccguard-options::\n" in page
    readme = README.read_text(encoding="utf-8")
    assert "<docs/configuration.rst>`" in readme
    assert ".. begin option table" not in readme
    assert sum(o.key in readme for o in OPTIONS.values()) <= 2  # the example's issuer and audience
    table = option_table_rst()
    assert all(f"``{o.key}``" in table for o in OPTIONS.values() if o.layer != "client")


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("leeway", 601, "CCGUARD_LEEWAY is 601"),
        ("http_timeout", 0, "CCGUARD_HTTP_TIMEOUT must be more than 0 seconds"),
        ("token_cache_size", -1, "CCGUARD_TOKEN_CACHE_SIZE must be a whole number"),
        ("realm", 'a"b', "CCGUARD_REALM must be printable ASCII"),
        ("warm_up", "yes", "CCGUARD_WARM_UP must be False, True or 'require'"),
    ],
)
def test_i15_02_each_option_check_names_the_key(name: str, value: object, text: str) -> None:
    option = OPTIONS[name]
    with pytest.raises(ConfigurationError, match=text.replace("(", r"\(")):
        option.check(value, option.key)
    option.check(option.default, option.key)  # the default passes its own check
