"""One exception tree: a common root, and refusals that know their RFC 6750 §3 meaning.

Everything the package raises on purpose derives from :class:`CCGuardBaseError`
(configuration mistakes, failed fetches and discovery, token-endpoint refusals).
Below it, every refusal of a request is a :class:`CCGuardError` carrying the
HTTP ``status``, the scheme-independent ``error`` code and a safe
``description``: fixed text chosen by us, never the token, never key material,
never the message of an exception raised by a library. Errors name no
authentication scheme: the challenge (``Bearer``, ``DPoP``…) is built by the
Flask layer, which knows the schemes it accepts
(:func:`flask_ccguard.responses.challenges`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import ClassVar

__all__ = [
    "CCGuardBaseError",
    "CCGuardError",
    "ConfigurationError",
    "ExpiredToken",
    "InsufficientScope",
    "IntrospectionUnavailable",
    "InvalidDPoPProof",
    "InvalidRequest",
    "InvalidToken",
    "KeysUnavailable",
    "MetadataUnavailable",
    "MissingToken",
    "Unavailable",
    "UseDPoPNonce",
    "format_challenge",
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


def format_challenge(scheme: str, params: Iterable[tuple[str, str]]) -> str:
    """One challenge (RFC 9110 §11.6.1): ``scheme`` and its quoted auth-params.

    ``Bearer`` alone when there are no params; every value goes through
    :func:`quote_param`.
    """
    text = ", ".join(f"{name}={quote_param(value)}" for name, value in params)
    return f"{scheme} {text}" if text else scheme


class CCGuardBaseError(Exception):
    """The root of everything flask-ccguard raises on purpose.

    ``except CCGuardBaseError`` catches configuration mistakes
    (:class:`ConfigurationError`), failed fetches and discovery, token-endpoint
    refusals (``TokenRequestError``) and every refusal of a request
    (:class:`CCGuardError`); ``except CCGuardError`` keeps catching the HTTP
    refusals alone.
    """


class ConfigurationError(CCGuardBaseError, ValueError):
    """An option is missing or wrong; raised at start-up, never per request.

    The message names the option and says how to fix it.
    """


class CCGuardError(CCGuardBaseError):
    """Base of every refusal of a request: a status, an RFC 6750 code and safe text.

    A subclass declares ``status``, ``error`` (None: no code, as for a missing
    token, RFC 6750 §3.1) and ``default_description``; it may add auth-params
    (:meth:`challenge_params`), response headers (:meth:`headers`) and say
    which scheme its challenge belongs to (:attr:`scheme`).

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
    #: The scheme whose challenge carries the error (e.g. ``"DPoP"`` for an
    #: invalid proof); None: every challenge offered. A class default that an
    #: instance may override (the scheme a request used).
    scheme: str | None = None

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

    def headers(self) -> dict[str, str]:
        """Response headers besides ``WWW-Authenticate`` (e.g. ``Retry-After``)."""
        return {}

    def challenge(self, realm: str | None = None) -> str:
        """The ``Bearer`` challenge alone for this failure.

        Responses offer every accepted scheme through
        :func:`flask_ccguard.responses.challenges`; this is its one-scheme case.
        """
        params = [("realm", realm)] if realm else []
        return format_challenge("Bearer", params + self.challenge_params())

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


class Unavailable(CCGuardError):
    """Something the check needs cannot be had now; the client may retry (503).

    The subclasses name what is unavailable. The response carries
    ``Retry-After`` (RFC 9110 §10.2.3) and no challenge: the credentials are
    not at fault (RFC 9110 §11.6.1 ties ``WWW-Authenticate`` to 401).
    """

    status = 503
    error = None
    has_challenge = False
    default_description = "The token issuer is unavailable; try again later."
    default_reason = "unavailable"

    def __init__(
        self,
        description: str | None = None,
        *,
        reason: str | None = None,
        retry_after: int = 30,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(description, reason=reason)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}

    def to_dict(self) -> dict[str, str]:
        return {"error": "temporarily_unavailable", "error_description": self.description}


class KeysUnavailable(Unavailable):
    """The issuer's keys cannot be obtained and none usable are cached.

    Reasons: ``keys_unavailable`` (never loaded), ``keys_stale`` (cached keys
    beyond the stale limit).
    """

    default_reason = "keys_unavailable"


class MetadataUnavailable(Unavailable):
    """The issuer's metadata (RFC 8414, OpenID Connect Discovery) cannot be had.

    No check raises it yet: a discovery failure on the way to the keys or
    the introspection endpoint is reported as what was being looked for
    (:class:`KeysUnavailable`, :class:`IntrospectionUnavailable`), so that
    ``except KeysUnavailable`` keeps its meaning; it is the class for a check
    that needs metadata itself.
    """

    default_reason = "metadata_unavailable"


class IntrospectionUnavailable(Unavailable):
    """The issuer's introspection endpoint (RFC 7662) cannot give an answer.

    Reasons: ``introspection_unavailable``, ``introspection_misconfigured``
    (discovery gives no endpoint), ``introspection_rate_limited``. An opaque
    token is never accepted without an answer.
    """

    default_description = "The token issuer cannot check the token now; try again later."
    default_reason = "introspection_unavailable"


class InvalidDPoPProof(CCGuardError):
    """The ``DPoP`` proof is missing, malformed, forged, stale, replayed or
    does not fit the request or the token (RFC 9449 §7.1, error code §12.2).

    Its error params go on the ``DPoP`` challenge only (RFC 9449 §7.1); the
    ``algs`` param is the scheme's own, from ``CCGuardState.schemes``.
    """

    status = 401
    error = "invalid_dpop_proof"
    default_description = "The DPoP proof is invalid."
    default_reason = "invalid_dpop_proof"
    scheme = "DPoP"


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
