"""check-token's lines for the ``binding`` step: ``mtls`` (RFC 8705 §3), ``dpop`` (RFC 9449 §4.3), ``binding``."""

from __future__ import annotations

from collections.abc import Mapping

from .claims import VerifiedToken
from .errors import CCGuardError
from .report_lines import Check
from .request import HTTPRequest

__all__ = ["binding_lines"]

_CERT_OK = "the client certificate's SHA-256 thumbprint is the token's cnf x5t#S256"
_CERT_FIRST = "not checked: the certificate check failed first"
_UNBOUND = "the token is not sender-constrained and the request uses no DPoP proof"
_PROOF_OK = "the proof is valid for this method, URL and token, signed by the token's key"


def binding_lines(token: VerifiedToken, request: HTTPRequest | None, error: CCGuardError | None) -> list[Check]:
    """One line per constraint the token or the request carries, then the step's verdict.

    :param error: the validator's refusal of the request (its binding step's, as
        every earlier check passed), or None.
    """
    cnf = token._claims.get("cnf")
    cert_bound = isinstance(cnf, Mapping) and "x5t#S256" in cnf
    dpop = isinstance(cnf, Mapping) and "jkt" in cnf
    if request is not None:
        dpop = dpop or (request.headers.get("Authorization") or "").strip()[:5].lower() == "dpop "
    lines: list[Check] = []
    if error is not None:
        on_certificate = error.reason.startswith("certificate") or error.reason == "cnf_malformed"
        if cert_bound:
            lines.append(
                Check("mtls", "FAIL", error.description) if on_certificate else Check("mtls", "PASS", _CERT_OK)
            )
        if dpop:
            lines.append(
                Check("dpop", "SKIP", _CERT_FIRST) if on_certificate else Check("dpop", "FAIL", error.description)
            )
        return [*lines, Check("binding", "FAIL", error.description)]
    if request is None:
        return [Check("binding", "SKIP", "no request given (--dpop-proof, --client-cert): the token is checked alone")]
    if cert_bound:
        lines.append(Check("mtls", "PASS", _CERT_OK))
    if dpop:
        lines.append(Check("dpop", "PASS", _PROOF_OK))
    detail = "the request proves possession of the token's key" if dpop or cert_bound else _UNBOUND
    return [*lines, Check("binding", "PASS", detail)]
