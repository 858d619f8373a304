"""Fixtures that run panva's certified ``oidc-provider`` as a real local issuer.

The provider (``provider.mjs``) runs under Node on a free loopback port and
issues RFC 9068 JWT access tokens through the client-credentials grant
(RFC 6749 §4.4) with RFC 8707 resource indicators. Install its dependencies
once with ``npm ci --prefix tests/interop``.

``tox`` installs them itself (``tests/interop/ensure_deps.py``, retrying
registry failures). In CI (``CI`` set, and not ``false``) a missing Node or
``node_modules`` makes the fixtures *fail*, so CI cannot silently lose the
interop suite; elsewhere they skip with the reason (the installation's own
failure when tox's ``npm ci`` failed) and the fix, and the run ends with one
line ``interop: N tests skipped: <reason>``. ``CCGUARD_SKIP_INTEROP=1`` skips
them anywhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from .ensure_deps import failure_reason, in_ci, installed

HERE = Path(__file__).resolve().parent
PROVIDER_SCRIPT = HERE / "provider.mjs"
STARTUP_TIMEOUT = 30.0
HTTP_TIMEOUT = 10.0

#: client_id -> client_secret, as registered in provider.mjs.
CLIENTS: dict[str, str] = {
    "reader": "reader-secret-0123456789abcdef",
    "admin": "admin-secret-0123456789abcdef",
    "basic-client": "basic-secret-0123456789abcdef",
}
#: client_id -> registered token_endpoint_auth_method ("post" or "basic").
CLIENT_AUTH: dict[str, str] = {
    "reader": "post",
    "admin": "post",
    "basic-client": "basic",
}
#: client_id -> registered ``scope`` (the most the client may obtain).
CLIENT_SCOPES: dict[str, str] = {
    "reader": "assets:read",
    "admin": "assets:read assets:write",
    "basic-client": "assets:read",
}
#: client_id -> ``roles`` claim the provider puts in its access tokens.
CLIENT_ROLES: dict[str, list[str]] = {
    "reader": ["guest"],
    "admin": ["archivist_administrator"],
    "basic-client": ["guest"],
}
#: JWS alg -> resource indicator (RFC 8707) whose access tokens use that alg.
RESOURCES: dict[str, str] = {
    "RS256": "urn:ccguard:rs256",
    "PS256": "urn:ccguard:ps256",
    "ES256": "urn:ccguard:es256",
    "EdDSA": "urn:ccguard:eddsa",
}
#: Resource used when a token request names none (``defaultResource``).
DEFAULT_RESOURCE = RESOURCES["RS256"]


class TokenRequestError(AssertionError):
    """The token endpoint refused a request; ``.response`` holds the answer."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"token request failed: HTTP {response.status_code} {response.text}")
        self.response = response


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _interop_problem() -> str | None:
    """Why the interop tests cannot run here, with the fix; None when they can."""
    if os.environ.get("CCGUARD_SKIP_INTEROP") == "1":
        return "CCGUARD_SKIP_INTEROP=1 is set"
    if shutil.which("node") is None:
        return "Node.js (`node`) is not on PATH; install Node >= 20.19 and run `npm ci --prefix tests/interop`"
    if not installed():
        why = failure_reason() or "tests/interop/node_modules is missing"
        return f"{why}: run `npm ci --prefix tests/interop` (or set CCGUARD_SKIP_INTEROP=1 to skip them)"
    return None


#: The reason the interop tests were skipped in this session, for the summary line.
_skipped_because: list[str] = []


def _require_node() -> str:
    """Return the ``node`` executable, or skip (fail in CI) with the reason and the fix."""
    problem = _interop_problem()
    if problem is not None:
        if os.environ.get("CCGUARD_SKIP_INTEROP") == "1" or not in_ci():
            if problem not in _skipped_because:
                _skipped_because.append(problem)
            pytest.skip(f"interop: {problem}")
        pytest.fail(f"interop: {problem} (CI is set: the interop tests must run)", pytrace=False)
    node = shutil.which("node")
    assert node is not None
    return node


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """End the run with one line saying how many interop tests were skipped and why."""
    for reason in _skipped_because:
        count = sum(
            1
            for report in terminalreporter.stats.get("skipped", [])
            if isinstance(report.longrepr, tuple) and reason in str(report.longrepr[2])
        )
        terminalreporter.write_line(f"interop: {count} tests skipped: {reason}", yellow=True, bold=True)


class OidcProvider:
    """A running ``provider.mjs`` process and helpers to talk to it over HTTP.

    :ivar issuer: the issuer identifier, ``http://127.0.0.1:<port>``.
    :ivar clients: client_id -> client_secret.
    :ivar resources: JWS alg -> resource indicator.
    :ivar openid_discovery: ``False`` in ``--no-openid-discovery`` mode, where
        only ``/.well-known/oauth-authorization-server`` (RFC 8414) answers.
    """

    def __init__(self, node: str, *, openid_discovery: bool = True, ttl: int = 300) -> None:
        self.openid_discovery = openid_discovery
        self.clients = dict(CLIENTS)
        self.client_auth = dict(CLIENT_AUTH)
        self.client_scopes = dict(CLIENT_SCOPES)
        self.client_roles = {k: list(v) for k, v in CLIENT_ROLES.items()}
        self.resources = dict(RESOURCES)
        self.default_resource = DEFAULT_RESOURCE
        self.session = requests.Session()
        self._output: deque[str] = deque(maxlen=200)
        self._ready = threading.Event()
        self.issuer = ""
        self._start(node, ttl)

    # -- process management -------------------------------------------------

    def _start(self, node: str, ttl: int) -> None:
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probe and bind
            port = _free_port()
            argv = [node, str(PROVIDER_SCRIPT), "--port", str(port), "--ttl", str(ttl)]
            if not self.openid_discovery:
                argv.append("--no-openid-discovery")
            self._ready.clear()
            self.process = subprocess.Popen(
                argv,
                cwd=HERE,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
            # Drain output for the whole life of the process so the pipe never fills.
            threading.Thread(target=self._pump, args=(self.process,), daemon=True).start()
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while time.monotonic() < deadline:
                if self._ready.wait(0.05):
                    return
                if self.process.poll() is not None:
                    break
            last_error = self.output()
            self._terminate()
            if "EADDRINUSE" not in last_error:
                break
        raise RuntimeError(f"oidc-provider did not print READY within {STARTUP_TIMEOUT:.0f}s:\n{last_error}")

    def _pump(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            self._output.append(line)
            if line.startswith("READY ") and not self._ready.is_set():
                self.issuer = line.split(" ", 1)[1].strip()
                self._ready.set()

    def output(self) -> str:
        """The provider's recent stdout/stderr (for failure messages)."""
        return "\n".join(self._output)

    def stop(self) -> None:
        """Terminate the provider process and close the HTTP session."""
        self._terminate()
        self.session.close()

    def _terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    # -- HTTP helpers -------------------------------------------------------

    @property
    def discovery_url(self) -> str:
        suffix = "openid-configuration" if self.openid_discovery else "oauth-authorization-server"
        return f"{self.issuer}/.well-known/{suffix}"

    def metadata(self) -> dict[str, Any]:
        """The provider's metadata, from the discovery URL this mode serves."""
        response = self.session.get(self.discovery_url, timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        return dict(response.json())

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    def jwks(self) -> dict[str, Any]:
        response = self.session.get(self.jwks_uri, timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        return dict(response.json())

    def signing_kids(self) -> list[str]:
        """Kids of the keys currently used to sign (excludes retired ones)."""
        response = self.session.get(f"{self.issuer}/__ccguard/state", timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        return list(response.json()["kids"])

    def rotate_keys(self, *, keep_previous: bool = False) -> list[str]:
        """Replace the signing keys with new ones (new kids), without a restart.

        :param keep_previous: keep publishing the previous public keys in the
            JWKS (graceful rotation); by default they disappear at once.
        :returns: the kids of the new signing keys.
        """
        response = self.session.post(
            f"{self.issuer}/__ccguard/rotate-keys",
            params={"keep_previous": "1"} if keep_previous else None,
            timeout=HTTP_TIMEOUT,
        )
        response.raise_for_status()
        return list(response.json()["kids"])

    def token_response(
        self,
        client_id: str,
        resource: str | None = None,
        scope: str | None = None,
        auth: str | None = None,
        *,
        client_secret: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> requests.Response:
        """POST a client-credentials token request; return the raw response.

        :param resource: RFC 8707 ``resource``; ``None`` lets the provider
            apply its default resource (``urn:ccguard:rs256``).
        :param scope: ``None`` requests the client's whole registered scope,
            ``""`` sends no ``scope`` (the token then has no ``scope`` claim).
        :param auth: ``"post"`` (client_secret_post) or ``"basic"``
            (client_secret_basic); ``None`` uses the client's registered method.
        """
        secret = self.clients[client_id] if client_secret is None else client_secret
        auth = auth or self.client_auth.get(client_id, "post")
        if scope is None:
            scope = self.client_scopes.get(client_id, "")
        data: dict[str, str] = {"grant_type": "client_credentials"}
        if scope:
            data["scope"] = scope
        if resource is not None:
            data["resource"] = resource
        data.update(extra or {})
        kwargs: dict[str, Any] = {}
        if auth == "basic":
            # RFC 6749 §2.3.1: form-urlencode id and secret before Basic.
            kwargs["auth"] = (quote(client_id, safe=""), quote(secret, safe=""))
        elif auth == "post":
            data.update(client_id=client_id, client_secret=secret)
        else:
            raise ValueError(f"auth must be 'post' or 'basic', not {auth!r}")
        return self.session.post(self.token_endpoint, data=data, timeout=HTTP_TIMEOUT, **kwargs)

    def token(
        self,
        client_id: str,
        resource: str | None = None,
        scope: str | None = None,
        auth: str | None = None,
    ) -> str:
        """Obtain an access token (see :meth:`token_response` for parameters).

        :raises TokenRequestError: the endpoint did not answer 200.
        """
        response = self.token_response(client_id, resource, scope, auth)
        if response.status_code != 200:
            raise TokenRequestError(response)
        return str(response.json()["access_token"])


def _launch(openid_discovery: bool, **kwargs: Any) -> OidcProvider:
    node = _require_node()
    return OidcProvider(node, openid_discovery=openid_discovery, **kwargs)


@pytest.fixture(scope="session")
def oidc_provider_factory() -> Iterator[Callable[..., OidcProvider]]:
    """Start extra providers (``openid_discovery=``, ``ttl=``); all stopped at session end.

    Use it for tests that must not share keys with other tests (e.g. rotation).
    """
    started: list[OidcProvider] = []

    def start(*, openid_discovery: bool = True, ttl: int = 300) -> OidcProvider:
        provider = _launch(openid_discovery, ttl=ttl)
        started.append(provider)
        return provider

    yield start
    for provider in started:
        provider.stop()


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    """oidc-provider serving OpenID discovery (``/.well-known/openid-configuration``)."""
    provider = _launch(openid_discovery=True)
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def oidc_provider_no_discovery() -> Iterator[OidcProvider]:
    """oidc-provider serving only RFC 8414 ``/.well-known/oauth-authorization-server``."""
    provider = _launch(openid_discovery=False)
    yield provider
    provider.stop()


@pytest.fixture(scope="session", params=["openid", "rfc8414"])
def any_oidc_provider(
    request: pytest.FixtureRequest,
) -> OidcProvider:
    """Both discovery modes, for tests that must pass against either."""
    name = "oidc_provider" if request.param == "openid" else "oidc_provider_no_discovery"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]
