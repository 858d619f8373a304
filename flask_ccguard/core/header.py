"""JWS header rules: the algorithm allowlist (RFC 8725 §3.1), ``crit`` (RFC 7515 §4.1.11), ``typ`` (RFC 9068 §4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InvalidToken
from .issuers import IssuerEntry, normalize_typ

__all__ = ["check_algorithm", "check_header_rules"]


def check_algorithm(header: Mapping[str, Any], entry: IssuerEntry) -> None:
    """RFC 8725 §3.1: only the issuer's allowed algorithms, never the token's choice.

    :raises InvalidToken: reason ``algorithm``.
    """
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in entry.algorithms:
        raise InvalidToken("The token's signing algorithm is not allowed.", reason="algorithm")


def check_header_rules(header: Mapping[str, Any], entry: IssuerEntry) -> None:
    """``crit``, ``b64``, ``nonce`` and ``typ`` of a token header for ``entry``.

    :raises InvalidToken: reason ``crit``, ``first_party_token`` or ``token_type``.
    """
    # RFC 7515 §4.1.11: if present, a non-empty array of strings naming
    # extensions we understand. We implement none, so any "crit" is refused,
    # whatever its form.
    if "crit" in header:
        raise InvalidToken("The token requires an unsupported extension ('crit').", reason="crit")
    if "b64" in header and header["b64"] is not True:
        raise InvalidToken("Unencoded payloads (RFC 7797) are not supported.", reason="crit")
    if "nonce" in header:
        # Microsoft first-party tokens (e.g. for Graph): signed over a hashed
        # nonce in a proprietary way, and never meant for this API.
        raise InvalidToken(
            "The token is a Microsoft first-party token (it has a 'nonce' header) "
            "and cannot be validated by third parties.",
            reason="first_party_token",
        )
    typ = header.get("typ")
    if typ is not None and not isinstance(typ, str):
        raise InvalidToken("The token's type is not allowed.", reason="token_type")
    if (None if typ is None else normalize_typ(typ)) not in entry.token_types:
        raise InvalidToken("The token's type is not allowed.", reason="token_type")
