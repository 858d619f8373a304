"""The Flask request as the validator's framework-free :class:`~.core.request.HTTPRequest`."""

from __future__ import annotations

from flask import Request

from .core.request import Headers, HTTPRequest

__all__ = ["describe"]


def describe(req: Request) -> HTTPRequest:
    """Describe ``req`` for the pipeline's ``binding`` step; built once per request,
    and only when a binding is configured (the common path never pays for it).

    ``url`` is werkzeug's view of the address the client used (behind a proxy, as
    ``ProxyFix`` or the server sets it); a DPoP ``htu`` check that must not trust
    ``Host`` replaces its base with the configured public one. ``client_cert`` is
    left empty: the configured certificate source (RFC 8705 §3) fills it.
    """
    return HTTPRequest(
        method=req.method,
        url=req.url,
        headers=Headers(req.headers.items()),
        client_cert=None,
        remote_addr=req.remote_addr,
    )
