"""Required roles and scopes: the one rule behind the decorators' ``match=`` and check-token (RFC 6750 §3.1)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = ["MATCHES", "ScopeHierarchy", "lacking"]

#: The accepted values of ``match``.
MATCHES = ("all", "any")


def lacking(have: frozenset[str], need: Sequence[str], match: str, what: str) -> str | None:
    """Why ``have`` does not satisfy ``need`` under ``match`` (``"all"`` or ``"any"``),
    as a safe description; None when it does (or nothing is needed)."""
    if not need or (match == "all" and have.issuperset(need)):
        return None
    if match == "any":
        return None if not have.isdisjoint(need) else f"The access token has none of the {what} {', '.join(need)}."
    missing = [n for n in need if n not in have]
    return f"The access token lacks the {what} {', '.join(missing)}." if missing else None


class ScopeHierarchy:
    """A rule by which a broader scope implies narrower ones (``assets`` ⇒ ``assets:read``).

    Built from a mapping ``{broad: [narrower, ...]}`` or a callable ``scope ->
    iterable of implied scopes``; implication is transitive. A token holding a
    broad scope satisfies a requirement of the narrower ones
    (:func:`lacking` is given the expanded set), and the metadata document's
    ``scopes_supported`` (RFC 9728 §2) lists the narrower ones too.
    """

    #: Scopes one scope may imply, all steps together: a rule that implies
    #: more is cut short rather than let one token cost unbounded work.
    MAX_IMPLIED = 256
    #: Expansions remembered (tokens of one client repeat their scope sets).
    CACHE_SIZE = 1024

    __slots__ = ("_cache", "_rule")

    def __init__(self, rule: Mapping[str, Iterable[str]] | Callable[[str], Iterable[str]]) -> None:
        if callable(rule):
            self._rule: Callable[[str], Iterable[str]] = rule
        else:
            table = {broad: tuple(narrower) for broad, narrower in rule.items()}
            self._rule = lambda scope: table.get(scope, ())
        self._cache: dict[frozenset[str], frozenset[str]] = {}

    def expand(self, scopes: frozenset[str]) -> frozenset[str]:
        """``scopes`` and every scope they imply, transitively."""
        hit = self._cache.get(scopes)
        if hit is not None:
            return hit
        found = set(scopes)
        todo = list(scopes)
        while todo and len(found) < len(scopes) + self.MAX_IMPLIED:
            for implied in self._rule(todo.pop()):
                if isinstance(implied, str) and implied not in found:
                    found.add(implied)
                    todo.append(implied)
        result = frozenset(found)
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[scopes] = result
        return result
