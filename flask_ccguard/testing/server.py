"""The loopback HTTP server under :class:`~flask_ccguard.testing.TestIssuer`.

:class:`LoopbackServer` binds ``127.0.0.1`` at an ephemeral port, serves a
WSGI callable from a daemon thread, counts and records every request, and
leaves what to answer to its subclass (:meth:`LoopbackServer._endpoint` names
the endpoint of a path, :meth:`LoopbackServer._respond` answers it).
"""

from __future__ import annotations

import collections
import http
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

from werkzeug.datastructures import EnvironHeaders
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from . import token_request
from .minting import json_bytes, merge

__all__ = ["Headers", "IssuerServer", "LoopbackServer", "RecordedRequest", "Response"]

_StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]
#: status, extra headers, body.
Response = tuple[int, Headers, bytes]
_S = TypeVar("_S", bound="LoopbackServer")


class RecordedRequest(NamedTuple):
    """One request as the issuer received it (``path`` includes the query)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _QuietHandler(WSGIRequestHandler):
    # One request per connection: stop() then leaves no keep-alive
    # connection being served behind the closed listening socket.
    protocol_version = "HTTP/1.0"

    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class LoopbackServer:
    """A threaded WSGI server on ``127.0.0.1`` at an ephemeral port.

    The port is bound (and :attr:`base_url` known) at construction; requests
    are answered from :meth:`start` until :meth:`stop`. Usable as a context
    manager (``with`` starts it and stops it).
    """

    #: How many requests :attr:`requests` keeps.
    max_recorded = 200

    def __init__(self) -> None:
        #: Requests per endpoint name (see :meth:`_endpoint`).
        self.hits: collections.Counter[str] = collections.Counter()
        #: The last :attr:`max_recorded` requests, oldest first.
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        #: Set by :meth:`stop`; handlers that sleep wait on it instead.
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Serve requests in a daemon thread (no-op if already serving)."""
        if self._stopped:
            raise RuntimeError(f"a stopped {type(self).__name__} cannot be restarted")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.02},
                name=repr(self),
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the port and release what :meth:`_release` holds."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()  # wakes requests sleeping in a delay
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
        self._release()

    def _release(self) -> None:
        """Give back resources once the port is closed (nothing here)."""

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- HTTP ----------------------------------------------------------------

    def _endpoint(self, path: str) -> str:
        """The endpoint name a request path counts under in :attr:`hits`."""
        return "other"

    def _respond(self, endpoint: str, method: str, headers: Mapping[str, str], body: bytes) -> Response:
        """The answer to a request (a JSON body; the subclass decides)."""
        return 404, [], json_bytes({"error": "not_found"})

    def _wsgi(self, environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "") or "/"
        query = environ.get("QUERY_STRING", "")
        headers = dict(EnvironHeaders(environ))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        endpoint = self._endpoint(path)
        with self._lock:
            self.hits[endpoint] += 1
            self.requests.append(RecordedRequest(method, path + ("?" + query if query else ""), headers, body))
            del self.requests[: -self.max_recorded]

        status, extra, content = self._respond(endpoint, method, headers, body)
        response_headers: Headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(content))),
        ]
        response_headers.extend(extra)
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        start_response(f"{status} {phrase}", response_headers)
        return [content]


class IssuerServer(LoopbackServer):
    """The HTTP side of an issuer: metadata (OpenID Connect Discovery 1.0 §4, RFC 8414 §3), JWKS, token endpoint.

    :class:`~flask_ccguard.testing.TestIssuer` sets the attributes below and
    provides :meth:`jwks`, :attr:`algorithms` and :meth:`_issue`.
    """

    issuer: str
    path: str
    jwks_uri: str
    token_endpoint: str
    openid_configuration: bool
    oauth_metadata: bool
    jwks_status: int
    jwks_delay: float
    jwks_body: bytes | None
    jwks_cache_control: str | None
    discovery_overrides: dict[str, Any]

    @property
    def algorithms(self) -> tuple[str, ...]:
        raise NotImplementedError

    def jwks(self) -> dict[str, Any]:
        raise NotImplementedError

    def _issue(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        raise NotImplementedError

    def _metadata(self, *, openid: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "token_endpoint": self.token_endpoint,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "response_types_supported": ["token"],
            # RFC 9449 §5.1: the token endpoint binds tokens to DPoP proofs.
            "dpop_signing_alg_values_supported": ["ES256", "ES384", "ES512", "PS256", "RS256", "EdDSA"],
        }
        if openid:
            doc["subject_types_supported"] = ["public"]
            doc["id_token_signing_alg_values_supported"] = list(self.algorithms)
        else:
            doc["token_endpoint_auth_signing_alg_values_supported"] = list(self.algorithms)
        return merge(doc, self.discovery_overrides)

    def _endpoint(self, path: str) -> str:
        oauth = (
            "/.well-known/oauth-authorization-server" + self.path,
            self.path + "/.well-known/oauth-authorization-server",
        )
        if path == self.path + "/.well-known/openid-configuration":
            return "openid_configuration"
        if path in oauth:
            return "oauth_metadata"
        if path in (self.path + "/jwks", self.path + "/token"):
            return path[len(self.path) + 1 :]
        return "other"

    def _respond(self, endpoint: str, method: str, headers: Mapping[str, str], body: bytes) -> Response:
        if endpoint == "token":
            if method != "POST":  # RFC 6749 §3.2: the client MUST use POST
                return token_request.NOT_POST
            return token_request.answer(lambda: self._issue(headers, body))
        if method not in ("GET", "HEAD"):
            return 405, [("Allow", "GET, HEAD")], json_bytes({"error": "method_not_allowed"})
        if endpoint == "openid_configuration" and self.openid_configuration:
            return 200, [], json_bytes(self._metadata(openid=True))
        if endpoint == "oauth_metadata" and self.oauth_metadata:
            return 200, [], json_bytes(self._metadata(openid=False))
        if endpoint == "jwks":
            return self._jwks_response()
        return super()._respond(endpoint, method, headers, body)  # 404

    def _jwks_response(self) -> Response:
        if self.jwks_delay > 0:
            self._stopping.wait(self.jwks_delay)
        extra: Headers = []
        if self.jwks_cache_control is not None:
            extra.append(("Cache-Control", self.jwks_cache_control))
        status = self.jwks_status
        if self.jwks_body is not None:
            return status, extra, self.jwks_body
        if status != 200:
            error = {"error": "server_error", "error_description": f"JWKS status {status}"}
            return status, extra, json_bytes(error)
        return 200, extra, json_bytes(self.jwks())
