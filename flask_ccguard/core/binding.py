"""The ``binding`` step: sender-constrained tokens, DPoP (RFC 9449) and certificate-bound (RFC 8705).

:class:`SenderConstraint` is a :class:`~.pipeline.Binding`: the validator runs it
after the token's signature and claims have passed, on every use of the token
(cache hits included), with the framework-free :class:`~.request.HTTPRequest`.
It enforces, in this order, so that a proof's ``jti`` is burned only once every
other check has passed (RFC 9449 §11.1):

* a token with ``cnf["x5t#S256"]`` is accepted only with the certificate whose
  SHA-256 thumbprint it names (RFC 8705 §3);
* ``Bearer`` with a DPoP-bound token (``cnf.jkt``) is refused (RFC 9449 §7.2),
  and so is any ``Bearer`` when DPoP is ``"required"``;
* the ``DPoP`` scheme needs a DPoP-bound token (``cnf.jkt``) and exactly one
  proof that fits the request and the token (RFC 9449 §4.3, §7.1), checked last.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .claims import VerifiedToken
from .dpop import DPoPProof, DPoPVerifier, refuse_bound_bearer, single_proof, token_jkt
from .errors import InvalidDPoPProof, InvalidToken
from .mtls import check_certificate_binding, is_certificate_bound
from .request import BEARER_REQUEST, HTTPRequest

__all__ = ["DPOP_MODES", "SenderConstraint", "authorization_scheme"]

#: ``CCGUARD_DPOP`` values.
DPOP_MODES = ("disabled", "allowed", "required")


def authorization_scheme(request: HTTPRequest) -> tuple[str, str]:
    """The lower-cased scheme and the credentials of the request's ``Authorization`` header."""
    value = request.headers.get("Authorization") or ""
    scheme, _, rest = value.strip(" \t").partition(" ")
    return scheme.lower(), rest.strip(" \t")


class SenderConstraint:
    """Checks DPoP proofs and certificate bindings for the validator's ``binding`` step.

    :param verifier: checks the proofs (algorithms, ``iat`` window, replay store, nonces).
    :param mode: the validator-wide ``dpop`` mode.
    :param issuer_modes: issuer identifier -> ``dpop`` mode, where an issuer's dict overrides ``mode``.
    :param require_bound: refuse every token that is neither DPoP- nor
        certificate-bound (the FAPI 2.0 profile).
    """

    def __init__(
        self,
        verifier: DPoPVerifier,
        mode: str = "allowed",
        *,
        issuer_modes: Mapping[str, str] | None = None,
        require_bound: bool = False,
    ) -> None:
        self.verifier = verifier
        self.mode = mode
        self.issuer_modes = dict(issuer_modes or {})
        self.require_bound = require_bound
        # Whether an unbound token may come as Bearer from every issuer.
        self._plain_bearer_ok = not require_bound and "required" not in {mode, *self.issuer_modes.values()}

    def mode_for(self, claims: Mapping[str, Any]) -> str:
        """The ``dpop`` mode of the token's issuer (RFC 9449 §7: per resource policy)."""
        if not self.issuer_modes:
            return self.mode
        iss = claims.get("iss")
        return self.issuer_modes.get(iss, self.mode) if isinstance(iss, str) else self.mode

    def __call__(self, request: HTTPRequest | None, token: VerifiedToken) -> None:
        if request is None:
            return
        if self._plain_bearer_ok and token._claims.get("cnf") is None:
            # The common case, an unbound Bearer token where Bearer is accepted:
            # nothing to check, and no more work than reading one header.
            if request is BEARER_REQUEST:
                return
            value = request.headers.get("Authorization")
            if value is None or value.lstrip(" \t")[:5].lower() != "dpop ":
                return
        self.check(request, token)

    def check(self, request: HTTPRequest | None, token: VerifiedToken) -> DPoPProof | None:
        """Enforce the token's sender constraint for ``request``; the verified proof, if any.

        Without a request (``validate(token)`` alone) there is nothing to check
        the token against and it passes as before.
        """
        if request is None:
            return None
        claims = token._claims  # read-only here: no copy per request
        cnf = claims.get("cnf")
        jkt = token_jkt(claims)  # a malformed cnf/jkt is refused (invalid_token)
        # RFC 8705 §3: the certificate first; it burns nothing.
        check_certificate_binding(cnf, request.client_cert)
        cert_bound = is_certificate_bound(cnf)
        scheme, credentials = authorization_scheme(request)
        mode = self.mode_for(claims)
        if scheme != "dpop":
            refuse_bound_bearer(claims)  # RFC 9449 §7.2: a DPoP-bound token is no bearer token
            if mode == "required" and not cert_bound:
                raise InvalidDPoPProof(
                    "This API requires DPoP: send 'Authorization: DPoP <token>' with a DPoP proof.",
                    reason="dpop_required",
                )
            if self.require_bound and not cert_bound:
                raise InvalidToken(
                    "This API requires sender-constrained tokens (DPoP or certificate-bound).",
                    reason="unbound_token",
                    claim="cnf",
                )
            return None
        if mode == "disabled":
            raise InvalidToken("This issuer's tokens are not accepted with the DPoP scheme.", reason="dpop_disabled")
        if jkt is None:
            # RFC 9449 §7.1: the DPoP scheme carries a DPoP-bound token.
            raise InvalidToken(
                "The access token is not DPoP-bound; send it as a Bearer token.", reason="not_dpop_bound", claim="cnf"
            )
        headers = request.headers
        get_all = getattr(headers, "get_all", None)
        proof = single_proof(get_all("DPoP") if get_all is not None else headers.get("DPoP"))
        return self.verifier.verify(proof, method=request.method, url=request.url, access_token=credentials, jkt=jkt)
