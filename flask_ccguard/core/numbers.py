"""Numbers from JSON that others wrote (RFC 8259 §6): finite, bounded, and read without an exception."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MAX_SECONDS", "bounded_number", "is_number"]

#: 9999-12-31T23:59:59Z: the last NumericDate (RFC 7519 §2) a ``datetime`` can
#: hold, and more seconds than any lifetime, TTL or timeout needs.
MAX_SECONDS = 253402300799


def bounded_number(value: Any, limit: float = MAX_SECONDS) -> float | None:
    """``value`` as a float if it is a JSON number from ``-limit`` to ``limit``; else None.

    RFC 8259 §6 leaves numbers beyond a double to the parser, and Python reads
    an integer of any length: ``float()`` or ``math.isfinite()`` of one past
    about 1.8e308 raises ``OverflowError``. Comparing an int with a float is
    exact and never raises, and NaN and the infinities fail the comparison, so
    this never raises for any value. ``bool`` is an int in Python, never a
    JSON number.

    :param limit: the largest magnitude accepted.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not -limit <= value <= limit:
        return None
    return float(value)


def is_number(value: Any) -> bool:
    """True for a JSON number that is finite (a NumericDate's type, RFC 7519 §2)."""
    # bool is an int in Python but never a NumericDate (RFC 7519 §2). Ints are
    # compared as ints: math.isfinite() would overflow on a huge one.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)
