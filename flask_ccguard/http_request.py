"""The Flask request as the validator's framework-free :class:`~.core.request.HTTPRequest`."""

from __future__ import annotations

from flask import Request

from .core.request import Headers, HTTPRequest
from .sender import SenderSettings, request_certificate, request_url, server_host

__all__ = ["describe"]


def describe(req: Request, sender: SenderSettings) -> HTTPRequest:
    """Describe ``req`` for the pipeline's ``binding`` step; built once per request,
    and only when a binding is configured (the common path never pays for it).

    A request with the ``DPoP`` scheme gets the URL
    its proof's ``htu`` must name (RFC 9449 §4.3: the public base URL or a trusted
    proxy's forwarding headers, never ``Host``,
    :func:`~flask_ccguard.sender.request_url`); other requests keep werkzeug's
    view of itself, which no check reads. ``client_cert`` comes from the configured source
    (RFC 8705 §3, :func:`~flask_ccguard.sender.request_certificate`).
    """
    environ = req.environ
    authorization = environ.get("HTTP_AUTHORIZATION")
    dpop = authorization is not None and authorization.lstrip(" \t")[:5].lower() == "dpop "
    # Only what the binding step reads: the credentials and the proof (WSGI joins
    # repeated DPoP fields with commas, which single_proof refuses).
    items = [] if authorization is None else [("Authorization", authorization)]
    proof = environ.get("HTTP_DPOP")
    if proof is not None:
        items.append(("DPoP", proof))
    if dpop:
        url = request_url(req, sender)
    else:
        # No check reads it: the server's own view, built without werkzeug's
        # base_url (a third of a repeated token's time).
        scheme, host = server_host(environ)
        url = f"{scheme}://{host}{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}"
    query = environ.get("QUERY_STRING")
    if query:
        # As the client sent it (HTTPRequest.url); htu ignores the query (RFC 9449 §4.3).
        url = f"{url}?{query}"
    return HTTPRequest(
        method=req.method,
        url=url,
        headers=Headers(items),
        client_cert=request_certificate(req, sender),
        remote_addr=req.remote_addr,
    )
