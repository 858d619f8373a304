"""Reading a token endpoint's answer: RFC 6749 §5.1 success (and its lifetime) or §5.2 error."""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Callable

from ..core.bearer import is_b64token
from ..core.errors import CCGuardBaseError
from ..core.numbers import bounded_number

__all__ = ["TokenRequestError", "parse_token_response"]

# RFC 6749 §5.2: error and error_description are %x20-21 / %x23-5B / %x5D-7E.
_UNSAFE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")
_NUMERIC = re.compile(r"\s*\d+(?:\.\d+)?\s*")


class TokenRequestError(CCGuardBaseError):
    """The token endpoint refused, or could not be asked.

    :param error: the endpoint's RFC 6749 §5.2 ``error`` code (``invalid_client``,
        ``invalid_scope``…), or None when it gave none (no answer, not JSON).
    :param error_description: the endpoint's description, or why the request failed.
    :param status: the HTTP status of the answer; None when there was none.
    :param hint: what the caller might change (ours, never the endpoint's text).
    """

    def __init__(
        self,
        error: str | None,
        error_description: str | None = None,
        status: int | None = None,
        *,
        hint: str | None = None,
    ) -> None:
        self.error = error
        self.error_description = error_description
        self.status = status
        self.hint = hint
        super().__init__(error, error_description, status)

    def __str__(self) -> str:
        parts = ["token request failed"]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.error:
            parts.append(self.error)
        text = ", ".join(parts)
        text = f"{text}: {self.error_description}" if self.error_description else text
        return f"{text} ({self.hint})" if self.hint else text

    def __repr__(self) -> str:
        return f"TokenRequestError(error={self.error!r}, status={self.status!r})"


def _number(value: Any) -> float | None:
    """``expires_in`` or ``exp`` as seconds: a JSON number, or a numeric string
    (Azure AD v1); None for anything else, an integer too long for a float or
    beyond year 9999 included (such a lifetime says nothing usable)."""
    if isinstance(value, str) and _NUMERIC.fullmatch(value):
        value = float(value)  # a string never overflows: inf, refused below
    number = bounded_number(value)
    return None if number is None else max(0.0, number)


def _jwt_exp(token: str) -> float | None:
    """The ``exp`` of a JWT access token, read unverified: only to time the cache."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError, RecursionError):
        return None
    return _number(payload.get("exp")) if isinstance(payload, dict) else None


def _safe(value: Any, limit: int, redact: Callable[[str], str]) -> str | None:
    """Endpoint text fit for an exception: printable, bounded, redacted."""
    if not isinstance(value, str) or not value:
        return None
    return _UNSAFE.sub("?", redact(value))[:limit]


def _kind(value: Any, redact: Callable[[str], str]) -> str:
    """What a ``token_type`` answer was, for a message: the (safe) string, or the JSON type it had instead."""
    if isinstance(value, str):
        return repr(_safe(value, 40, redact)) if value else "'' (an empty string)"
    kinds = ((bool, "a JSON boolean"), ((int, float), "a JSON number"), (list, "a JSON array"), (dict, "a JSON object"))
    return next((name for types, name in kinds if isinstance(value, types)), "null")


def parse_token_response(
    status: int,
    data: Any,
    sent_at: float,
    redact: Callable[[str], str] = str,
    *,
    token_type: str = "Bearer",  # noqa: S107 - a token type, not a secret
) -> tuple[str, dict[str, Any], float | None]:
    """The access token, the whole answer and the token's lifetime in seconds.

    The lifetime comes from ``expires_in`` (a number, or a numeric string as
    Azure AD v1 sends it), else from the JWT's ``exp``; None if neither says.

    :param sent_at: when the request was sent (seconds since the epoch).
    :param redact: removes secrets from text taken from the answer.
    :param token_type: the type asked for: ``Bearer``, or ``DPoP`` after a
        request with a proof (RFC 9449 §5), where an answer without
        ``token_type: DPoP`` is refused: a Bearer token would be sent unbound.
    :raises TokenRequestError: an error answer, or one that is unusable.
    """
    if status != 200:
        error = data.get("error") if isinstance(data, dict) else None
        desc = data.get("error_description") if isinstance(data, dict) else None
        raise TokenRequestError(_safe(error, 100, redact), _safe(desc, 500, redact), status)
    if not isinstance(data, dict):
        raise TokenRequestError(None, "the token endpoint's answer is not a JSON object", status)
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise TokenRequestError(None, "the token endpoint's answer has no access_token", status)
    # RFC 6749 §A.12 allows any VSCHAR, but a Bearer token is sent as RFC 6750
    # §2.1 b64token, and that is where this one goes (the requests auth, the
    # header file): anything else would inject header lines or terminal
    # escapes, or be refused by the resource (our own validator refuses it).
    # Never echoed: it is a credential, and the text is the problem.
    if not is_b64token(access):
        raise TokenRequestError(
            None,
            "the token endpoint's access_token is not a bearer token: it holds characters other than "
            "RFC 6750 §2.1 allows in an Authorization header",
            status,
        )
    answered = data.get("token_type")
    # RFC 6749 §7.1: only Bearer tokens are sent as they are (DPoP etc. need proofs).
    if token_type == "DPoP":
        if not isinstance(answered, str) or answered.lower() != "dpop":
            # RFC 9449 §5 lets an issuer that ignores DPoP answer Bearer; the
            # caller asked for a sender-constrained token: say so, don't downgrade.
            raise TokenRequestError(
                None,
                f"asked for a DPoP-bound token but got token_type {_kind(answered, redact)} "
                "(RFC 9449 §5): the issuer does not bind tokens to DPoP keys for this client",
                status,
                hint="enable DPoP for this client at the issuer, or drop dpop= to use bearer tokens",
            )
    elif answered is not None and not isinstance(answered, str):
        # RFC 6749 §5.1: token_type is a string ("Bearer", §7.1); the value itself is not echoed.
        raise TokenRequestError(
            None,
            f"token_type is {_kind(answered, redact)}, not a string: RFC 6749 §5.1 requires a string such as Bearer",
            status,
        )
    elif answered is not None and answered.lower() != "bearer":
        raise TokenRequestError(None, f"token_type {_kind(answered, redact)} is not Bearer", status)
    lifetime = _number(data.get("expires_in"))
    if lifetime is None:
        exp = _jwt_exp(access)
        lifetime = max(0.0, exp - sent_at) if exp is not None else None
    return access, data, lifetime
