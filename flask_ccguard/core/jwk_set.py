"""One JWK Set document (RFC 7517 §5) read into prepared keys, and indexed for lookups.

:func:`read_key_set` turns the ``keys`` array into :class:`VerifyingKey`
objects, skipping (and logging) each member that cannot be used, whatever is
wrong with it. :class:`KeyIndex` is what :class:`~.jwks.KeySet` looks keys up
in: by ``kid``, by algorithm for tokens without ``kid``, and by material.
"""

from __future__ import annotations

import logging
from typing import Any

from .keys import UnusableKey, VerifyingKey, prepare_jwk

__all__ = ["MAX_KEYS", "MAX_KIDLESS_CANDIDATES", "KeyIndex", "NoKeysArray", "read_key_set"]

log = logging.getLogger("flask_ccguard")

#: Members of a ``keys`` array that are read: a real issuer publishes a
#: handful; more is a broken or hostile document.
MAX_KEYS = 100
#: Keys a token without ``kid`` is tried against: the first ones of the set
#: that fit its algorithm. An issuer that leaves ``kid`` out publishes one key
#: per algorithm, two or three during a rollover; more would let one forged
#: token cost a signature check per published key.
MAX_KIDLESS_CANDIDATES = 3


class NoKeysArray(ValueError):
    """The document is not a JSON object with a ``keys`` array."""


def read_key_set(doc: Any, allowed: frozenset[str], issuer: str) -> list[VerifyingKey]:
    """The usable keys of a JWK Set document, in its order; the first of a duplicated ``kid`` wins.

    :param allowed: the validator's algorithm allowlist.
    :param issuer: for log lines.
    :raises NoKeysArray: ``doc`` has no ``keys`` array.
    """
    members = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(members, list):
        raise NoKeysArray(f"the JWKS of {issuer!r} has no 'keys' array")
    keys: list[VerifyingKey] = []
    seen: set[str] = set()
    for index, jwk in enumerate(members[:MAX_KEYS]):
        try:
            key = prepare_jwk(jwk, allowed)
        except Exception as exc:
            # One bad member must never cost the others: whatever a JWK
            # holds (RFC 7517 §5: unknown or odd members are the issuer's
            # mistake), preparing it skips that key and nothing else.
            why = str(exc) if isinstance(exc, UnusableKey) else f"malformed member ({type(exc).__name__})"
            kid = jwk.get("kid") if isinstance(jwk, dict) else None
            log.info(
                "flask_ccguard: skipping key %d (kid %r) of %r: %s",
                index,
                str(kid)[:64] if kid is not None else None,
                issuer,
                why,
            )
            continue
        if key.kid is not None:
            if key.kid in seen:
                log.warning("flask_ccguard: duplicate kid %r at %r; keeping the first", key.kid[:64], issuer)
                continue
            seen.add(key.kid)
        keys.append(key)
    if len(members) > MAX_KEYS:
        log.warning("flask_ccguard: %r publishes %d keys; only the first %d are used", issuer, len(members), MAX_KEYS)
    return keys


class KeyIndex:
    """The installed keys of one fetch, indexed; never changed once built, so it is swapped whole.

    :ivar by_kid: key by ``kid``.
    :ivar by_alg: for tokens without ``kid``: the first
        :data:`MAX_KIDLESS_CANDIDATES` keys that verify each algorithm.
    :ivar material: the :attr:`~VerifyingKey.fingerprint` of every key.
    """

    __slots__ = ("by_alg", "by_kid", "material")

    def __init__(self, keys: list[VerifyingKey] | None = None, issuer: str = "") -> None:
        keys = keys or []
        self.by_kid = {k.kid: k for k in keys if k.kid is not None}
        fitting: dict[str, list[VerifyingKey]] = {}
        for key in keys:
            for alg in key.algorithms:
                fitting.setdefault(alg, []).append(key)
        self.by_alg = {alg: tuple(fit[:MAX_KIDLESS_CANDIDATES]) for alg, fit in fitting.items()}
        self.material = frozenset(k.fingerprint for k in keys)
        crowded = sorted(alg for alg, fit in fitting.items() if len(fit) > MAX_KIDLESS_CANDIDATES)
        if crowded:
            log.info(
                "flask_ccguard: %r publishes more than %d keys for %s; tokens without 'kid' are tried "
                "against the first %d only",
                issuer,
                MAX_KIDLESS_CANDIDATES,
                ", ".join(crowded),
                MAX_KIDLESS_CANDIDATES,
            )
