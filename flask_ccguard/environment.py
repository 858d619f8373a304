"""``CCGUARD_*`` environment variables, read one way by the ``ccguard`` command and by apps.

A list-valued variable (:data:`LIST_VARIABLES`) is a JSON array of strings
when it starts with ``[``, else its words separated by whitespace::

    CCGUARD_AUDIENCE='["api://a", "api://b"]'
    CCGUARD_AUDIENCE='api://a api://b'

Commas do not separate: a URI (RFC 3986 §2.2) and a scope token (RFC 6749
§3.3) may hold one, and splitting ``urn:a,b`` would accept an audience nobody
configured. Whitespace is in none of them.
"""

from __future__ import annotations

import json
from typing import Any

from .core.errors import ConfigurationError

__all__ = ["LIST_VARIABLES", "parse_list", "parse_variable"]

#: The variables that hold a list of strings (the ``ccguard`` command's
#: repeatable ``--audience``, ``--algorithm`` and ``--resource``).
LIST_VARIABLES = frozenset({"CCGUARD_AUDIENCE", "CCGUARD_ALGORITHMS", "CCGUARD_RESOURCE"})


def parse_list(name: str, raw: str) -> list[str]:
    """The strings of the list-valued variable ``name``.

    :param raw: its value: a JSON array of strings (or one JSON string) when
        it starts with ``[`` (or ``"``), else words separated by whitespace;
        JSON of another kind (``{``) is refused, never split into words.
    :raises ConfigurationError: naming the variable, for JSON that is not an
        array of non-empty strings.
    """
    text = raw.strip()
    if not text.startswith(("[", '"', "{")):
        return text.split()
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise ConfigurationError(
            f"{name} must be a JSON array of non-empty strings, such as "
            f'{name}=\'["api://a", "api://b"]\', or values separated by spaces.'
        )
    return values


def parse_variable(name: str, raw: str) -> Any:
    """The value of the variable ``name`` for ``app.config``.

    A list for :data:`LIST_VARIABLES` (see :func:`parse_list`); else the JSON
    value when ``raw`` is JSON (numbers, ``true``, ``null``, arrays, objects),
    else ``raw`` itself.

    :raises ConfigurationError: for a malformed list-valued variable.
    """
    if name in LIST_VARIABLES:
        return parse_list(name, raw)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw
