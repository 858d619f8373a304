"""One exception tree whose classes know their RFC 6750 §3 meaning.

Every failure the validator or the Flask layer reports is a :class:`CCGuardError`
carrying the HTTP ``status``, the RFC 6750 ``error`` code and a safe
``description``: fixed text chosen by us, never the token, never key material,
never the message of an exception raised by a library.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import ClassVar

__all__ = [
    "CCGuardError",
    "ConfigurationError",
    "ExpiredToken",
    "InsufficientScope",
    "IntrospectionUnavailable",
    "InvalidDPoPProof",
    "InvalidRequest",
    "InvalidToken",
    "KeysUnavailable",
    "MissingToken",
    "UseDPoPNonce",
    "quote_param",
]

# RFC 6750 §3: error_description must be %x20-21 / %x23-5B / %x5D-7E; we also
# drop anything else that could end the header or the quoted string.
_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')


def quote_param(value: str) -> str:
    """Return ``value`` as an RFC 7235 quoted-string that cannot break the header.

    Characters outside printable ASCII, quotes and backslashes are replaced, so
    nothing that reached us from a request can end the header or the string.
    """
    return '"' + _UNSAFE.sub("?", value) + '"'


class ConfigurationError(ValueError):
    """An option is missing or wrong; raised at start-up, never per request.

    The message names the option and says how to fix it.
    """


class CCGuardError(Exception):
    """Base of every token failure: a status, an RFC 6750 code and safe text.

    :param description: safe, human-readable text (defaults to the class's).
    :param reason: a short machine-readable cause such as ``"expired"`` or
        ``"bad_signature"``, for callers and tests to branch on.
    :param claim: the claim the failure concerns, if any.
    """

    status: ClassVar[int] = 401
    error: ClassVar[str | None] = None
    default_description: ClassVar[str] = "The request could not be authorized."
    default_reason: ClassVar[str] = "unauthorized"
    #: Whether a response for this failure carries ``WWW-Authenticate``.
    has_challenge: ClassVar[bool] = True

    def __init__(
        self,
        description: str | None = None,
        *,
        reason: str | None = None,
        claim: str | None = None,
    ) -> None:
        self.description = description or self.default_description
        self.reason = reason or self.default_reason
        self.claim = claim
        super().__init__(self.description)

    def challenge_params(self) -> list[tuple[str, str]]:
        """The auth-params of the challenge after ``realm`` (RFC 6750 §3)."""
        if self.error is None:
            return []
        return [("error", self.error), ("error_description", self.description)]

    def challenge(self, realm: str | None = None) -> str:
        """The full ``WWW-Authenticate`` value for this failure."""
        params = [("realm", realm)] if realm else []
        params += self.challenge_params()
        if not params:
            return "Bearer"
        return "Bearer " + ", ".join(f"{k}={quote_param(v)}" for k, v in params)

    def to_dict(self) -> dict[str, str]:
        """The JSON body of the error response."""
        body = {"error_description": self.description}
        if self.error:
            body["error"] = self.error
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, claim={self.claim!r})"


class MissingToken(CCGuardError):
    """No bearer credentials in the request (RFC 6750 §3.1: no error code)."""

    status = 401
    error = None
    default_description = "A bearer token is required."
    default_reason = "missing"

    def to_dict(self) -> dict[str, str]:
        return {"error": "unauthorized", "error_description": self.description}


class InvalidRequest(CCGuardError):
    """A malformed request, such as a token sent by two methods (§3.1)."""

    status = 400
    error = "invalid_request"
    default_description = "The request is malformed."
    default_reason = "malformed_request"


class InvalidToken(CCGuardError):
    """The token is malformed, forged, expired or meant for someone else (§3.1)."""

    status = 401
    error = "invalid_token"
    default_description = "The access token is invalid."
    default_reason = "invalid"


class ExpiredToken(InvalidToken):
    """The token's ``exp`` lies in the past (beyond the leeway)."""

    default_description = "The access token has expired."
    default_reason = "expired"


class InsufficientScope(CCGuardError):
    """The token is valid but lacks a required scope or role (§3.1: 403)."""

    status = 403
    error = "insufficient_scope"
    default_description = "The access token lacks the required permissions."
    default_reason = "insufficient_scope"

    def __init__(
        self,
        description: str | None = None,
        *,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        reason: str | None = None,
    ) -> None:
        self.scopes = tuple(scopes)
        self.roles = tuple(roles)
        if reason is None:
            reason = "missing_scope" if self.scopes else "missing_role"
        super().__init__(description, reason=reason)

    def challenge_params(self) -> list[tuple[str, str]]:
        params = super().challenge_params()
        if self.scopes:
            params.append(("scope", " ".join(self.scopes)))
        return params


class KeysUnavailable(CCGuardError):
    """The issuer's keys (or its introspection endpoint) cannot be reached and
    nothing usable is cached; the client may retry later (503)."""

    status = 503
    error = None
    # A 503 is not an authentication challenge: a client that read one would
    # think its credentials were at fault (RFC 9110 §11.6.1 ties the header to 401).
    has_challenge = False
    default_description = "The token issuer is unavailable; try again later."
    default_reason = "keys_unavailable"

    def __init__(
        self,
        description: str | None = None,
        *,
        reason: str | None = None,
        retry_after: int = 30,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(description, reason=reason)

    def to_dict(self) -> dict[str, str]:
        return {"error": "temporarily_unavailable", "error_description": self.description}


class IntrospectionUnavailable(KeysUnavailable):
    """The issuer's introspection endpoint (RFC 7662) cannot give an answer.

    A subclass of :class:`KeysUnavailable`, so it is answered the same way
    (503 with ``Retry-After``); an opaque token is never accepted without an
    answer.
    """

    default_description = "The token issuer cannot check the token now; try again later."
    default_reason = "introspection_unavailable"


class InvalidDPoPProof(CCGuardError):
    """The ``DPoP`` proof is missing, malformed, forged, stale, replayed or
    does not fit the request or the token (RFC 9449 §7.1, error code §12.2).

    Its challenge uses the ``DPoP`` scheme (RFC 9449 §7.1).
    """

    status = 401
    error = "invalid_dpop_proof"
    default_description = "The DPoP proof is invalid."
    default_reason = "invalid_dpop_proof"
    scheme: ClassVar[str] = "DPoP"
    #: The proof algorithms accepted, offered as ``algs`` (RFC 9449 §7.1);
    #: the verifier fills it in.
    algs: tuple[str, ...] = ()

    def challenge_params(self) -> list[tuple[str, str]]:
        params = super().challenge_params()
        if self.algs:
            params.append(("algs", " ".join(self.algs)))
        return params

    def challenge(self, realm: str | None = None) -> str:
        params = [("realm", realm)] if realm else []
        params += self.challenge_params()
        return self.scheme + " " + ", ".join(f"{k}={quote_param(v)}" for k, v in params)


class UseDPoPNonce(InvalidDPoPProof):
    """The proof lacks the server's current nonce (RFC 9449 §9): the client
    retries with the nonce sent in the ``DPoP-Nonce`` response header.

    :param nonce: the nonce to send in ``DPoP-Nonce``; a fresh server value,
        never anything the client sent.
    """

    error = "use_dpop_nonce"
    default_description = "Resend the request with the nonce in the DPoP-Nonce header."
    default_reason = "use_dpop_nonce"

    def __init__(self, description: str | None = None, *, nonce: str, reason: str | None = None) -> None:
        self.nonce = nonce
        super().__init__(description, reason=reason)

    def headers(self) -> dict[str, str]:
        """Response headers beyond ``WWW-Authenticate`` (RFC 9449 §9)."""
        return {"DPoP-Nonce": self.nonce}
