"""Sender-constrained tokens from oidc-provider, over a real loopback server (issue 16, Interop).

oidc-provider issues DPoP-bound (RFC 9449 §5, ``cnf.jkt``) and
certificate-bound (RFC 8705 §3, ``cnf["x5t#S256"]``) JWT access tokens. DPoP
proofs come from two clients: ``dpop_client.mjs``, an independent one built on
panva's ``jose`` (it shares no code with flask-ccguard), and our
:class:`~flask_ccguard.client.ClientCredentials` with ``dpop=True``. The API
runs under werkzeug's server on ``127.0.0.1`` so that proofs name a real URL
(``CCGUARD_PUBLIC_BASE_URL``); each refusal is checked to the exact challenge.
Each case's id names its RFC section.

The provider reads the client certificate of a token request from its
``x-client-cert`` header (a URL-encoded PEM), emulating a TLS-terminating
proxy; the API reads it from nginx's ``X-SSL-Client-Cert``, trusted from
``127.0.0.1`` only (``CCGUARD_TRUSTED_PROXIES``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
import requests
from flask import Flask, request
from werkzeug.serving import BaseWSGIServer, make_server

from flask_ccguard import CCGuard, current_token, require_token
from flask_ccguard.client import ClientCredentials
from tests.challenges import assert_challenge
from tests.conftest import b64url_decode, with_claims
from tests.conftest import certificate_der_pem as _cert

if TYPE_CHECKING:  # fixtures come from conftest.py; no runtime import of it
    from .conftest import OidcProvider

HERE = Path(__file__).resolve().parent
REALM = "assets-api"
TIMEOUT = 10.0
MTLS_CLIENT = ("mtls-client", "mtls-secret-0123456789abcdef")


class Api:
    """The protected API, served on a free loopback port until :meth:`stop`."""

    def __init__(self, provider: OidcProvider) -> None:
        self._app: Flask | None = None
        # Bind first (port 0), then configure the app with the real base URL.
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, self._dispatch, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.url = f"{self.base}/assets"
        app = Flask("assets_api")
        app.config.update(
            CCGUARD_ISSUER=provider.issuer,
            CCGUARD_AUDIENCE=provider.default_resource,
            CCGUARD_REALM=REALM,
            CCGUARD_PUBLIC_BASE_URL=self.base,
            CCGUARD_CLIENT_CERT_SOURCE="nginx",
            CCGUARD_TRUSTED_PROXIES=["127.0.0.1/32"],
        )
        CCGuard(app)

        @app.route("/assets", methods=["GET", "POST"])
        @require_token
        def assets() -> Any:
            return {"client_id": current_token.client_id, "method": request.method}

        self._app = app
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _dispatch(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self._app is not None
        return self._app(environ, start_response)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def api(oidc_provider: OidcProvider) -> Iterator[Api]:
    served = Api(oidc_provider)
    yield served
    served.stop()


# name -> (method, path, iat offset in seconds, signed by another key)
JOSE_PROOFS: dict[str, tuple[str, str, int, bool]] = {
    "get": ("GET", "/assets", 0, False),
    "post": ("POST", "/assets", 0, False),
    "replay": ("GET", "/assets", 0, False),
    "tampered": ("GET", "/assets", 0, False),
    "made_for_post": ("POST", "/assets", 0, False),
    "other_url": ("GET", "/other", 0, False),
    "expired": ("GET", "/assets", -3600, False),
    "other_key": ("GET", "/assets", 0, True),
}


@pytest.fixture(scope="module")
def jose(oidc_provider: OidcProvider, api: Api) -> dict[str, Any]:
    """A DPoP-bound token and proofs from ``dpop_client.mjs`` (one node run for the module)."""
    node = shutil.which("node")
    assert node is not None  # the oidc_provider fixture skipped (or failed in CI) without it
    now = int(time.time())
    spec = {
        "token_url": oidc_provider.token_endpoint,
        "client_id": "reader",
        "client_secret": oidc_provider.clients["reader"],
        "proofs": [
            {"method": m, "url": api.base + path, "iat": now + offset, "other_key": other}
            for m, path, offset, other in JOSE_PROOFS.values()
        ],
    }
    done = subprocess.run(
        [node, str(HERE / "dpop_client.mjs")],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=HERE,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    return {
        "token": out["access_token"],
        "token_type": out["token_type"],
        "jkt": out["jkt"],
        **dict(zip(JOSE_PROOFS, out["proofs"])),
    }


def _claims(token: str) -> dict[str, Any]:
    return dict(json.loads(b64url_decode(token.split(".")[1])))


def _dpop(token: str, proof: str) -> dict[str, str]:
    return {"Authorization": f"DPoP {token}", "DPoP": proof}


def test_i16_interop_rfc9449_5_provider_issues_dpop_bound_jwt(jose: dict[str, Any]) -> None:
    assert jose["token_type"] == "DPoP"
    assert _claims(jose["token"])["cnf"] == {"jkt": jose["jkt"]}


# (id, jose proof, request method, status, error, description)
CASES: list[tuple[str, str, str, int, str | None, str | None]] = [
    ("rfc9449_7_1_jose_proof_accepted", "get", "GET", 200, None, None),
    ("rfc9449_7_1_jose_proof_accepted_post", "post", "POST", 200, None, None),
    (
        "rfc9449_4_3_s6_tampered",
        "tampered",
        "POST",
        401,
        "invalid_dpop_proof",
        "The DPoP proof's signature is invalid.",
    ),
    (
        "rfc9449_4_3_s8_wrong_method",
        "made_for_post",
        "GET",
        401,
        "invalid_dpop_proof",
        "The DPoP proof's 'htm' does not match the request method.",
    ),
    (
        "rfc9449_4_3_s9_wrong_url",
        "other_url",
        "GET",
        401,
        "invalid_dpop_proof",
        "The DPoP proof's 'htu' does not match the request URL.",
    ),
    (
        "rfc9449_4_3_s11_expired_iat",
        "expired",
        "GET",
        401,
        "invalid_dpop_proof",
        "The DPoP proof's 'iat' is outside the accepted window.",
    ),
    (
        "rfc9449_6_1_wrong_key",
        "other_key",
        "GET",
        401,
        "invalid_dpop_proof",
        "The DPoP proof's key is not the one the access token is bound to.",
    ),
]


@pytest.mark.parametrize(
    ("proof", "method", "status", "error", "description"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_i16_interop_jose_proofs(
    api: Api,
    jose: dict[str, Any],
    proof: str,
    method: str,
    status: int,
    error: str | None,
    description: str | None,
) -> None:
    value = jose[proof]
    if proof == "tampered":
        value = with_claims(value, htm="POST")  # signed for GET; the signature no longer covers it
    resp = requests.request(method, api.url, headers=_dpop(jose["token"], value), timeout=TIMEOUT)
    assert_challenge(resp, status, error, description, realm=REALM, error_scheme="DPoP" if error else None)
    if status == 200:
        assert resp.json() == {"client_id": "reader", "method": method}


def test_i16_interop_rfc9449_11_1_jose_proof_replayed(api: Api, jose: dict[str, Any]) -> None:
    headers = _dpop(jose["token"], jose["replay"])
    assert_challenge(requests.get(api.url, headers=headers, timeout=TIMEOUT), 200, realm=REALM)
    assert_challenge(
        requests.get(api.url, headers=headers, timeout=TIMEOUT),
        401,
        "invalid_dpop_proof",
        "The DPoP proof has already been used.",
        realm=REALM,
        error_scheme="DPoP",
    )


def test_i16_interop_rfc9449_7_2_bearer_downgraded(api: Api, jose: dict[str, Any]) -> None:
    resp = requests.get(api.url, headers={"Authorization": f"Bearer {jose['token']}"}, timeout=TIMEOUT)
    assert_challenge(
        resp,
        401,
        "invalid_token",
        "This access token is DPoP-bound; send it with the DPoP scheme and a proof.",
        realm=REALM,
    )


@pytest.fixture(scope="module")
def our_client(oidc_provider: OidcProvider) -> ClientCredentials:
    return ClientCredentials(oidc_provider.token_endpoint, "admin", oidc_provider.clients["admin"], dpop=True)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_i16_interop_rfc9449_7_1_our_client_accepted(api: Api, our_client: ClientCredentials, method: str) -> None:
    resp = requests.request(method, api.url, auth=our_client, timeout=TIMEOUT)
    assert_challenge(resp, 200, realm=REALM)
    assert resp.json() == {"client_id": "admin", "method": method}
    sent = resp.request.headers
    token = sent["Authorization"].split(" ", 1)[1]
    assert sent["Authorization"].startswith("DPoP ") and "jkt" in _claims(token)["cnf"]


def test_i16_interop_rfc9449_11_1_our_client_proof_replayed(api: Api, our_client: ClientCredentials) -> None:
    first = requests.get(api.url, auth=our_client, timeout=TIMEOUT)
    assert_challenge(first, 200, realm=REALM)
    headers = {"Authorization": first.request.headers["Authorization"], "DPoP": first.request.headers["DPoP"]}
    assert_challenge(
        requests.get(api.url, headers=headers, timeout=TIMEOUT),
        401,
        "invalid_dpop_proof",
        "The DPoP proof has already been used.",
        realm=REALM,
        error_scheme="DPoP",
    )


def test_i16_interop_rfc9449_7_2_our_token_bearer_downgraded(api: Api, our_client: ClientCredentials) -> None:
    token = requests.get(api.url, auth=our_client, timeout=TIMEOUT).request.headers["Authorization"].split(" ", 1)[1]
    resp = requests.get(api.url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    assert_challenge(
        resp,
        401,
        "invalid_token",
        "This access token is DPoP-bound; send it with the DPoP scheme and a proof.",
        realm=REALM,
    )


# -- certificate-bound tokens (RFC 8705) ------------------------------------


LEAF_DER, LEAF_PEM = _cert("client")
_OTHER_DER, OTHER_PEM = _cert("someone-else")


@pytest.fixture(scope="module")
def cert_bound_token(oidc_provider: OidcProvider) -> str:
    """A token the provider bound to LEAF (the certificate arrives as a TLS-terminating proxy would send it)."""
    client_id, secret = MTLS_CLIENT
    resp = oidc_provider.session.post(
        oidc_provider.token_endpoint,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        headers={"x-client-cert": quote(LEAF_PEM, safe="")},
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "Bearer"
    token = str(resp.json()["access_token"])
    x5t = base64.urlsafe_b64encode(hashlib.sha256(LEAF_DER).digest()).rstrip(b"=").decode()
    assert _claims(token)["cnf"] == {"x5t#S256": x5t}
    return token


@pytest.mark.parametrize(
    ("pem", "status", "description"),
    [
        pytest.param(LEAF_PEM, 200, None, id="rfc8705_3_right_certificate_accepted"),
        pytest.param(
            OTHER_PEM,
            401,
            "The access token is bound to a different client certificate.",
            id="rfc8705_3_other_certificate",
        ),
        pytest.param(
            None,
            401,
            "The access token is bound to a client certificate; none was presented.",
            id="rfc8705_3_no_certificate",
        ),
    ],
)
def test_i16_interop_certificate_bound(
    api: Api, cert_bound_token: str, pem: str | None, status: int, description: str | None
) -> None:
    headers = {"Authorization": f"Bearer {cert_bound_token}"}
    if pem is not None:
        headers["X-SSL-Client-Cert"] = quote(pem, safe="")  # nginx's $ssl_client_escaped_cert
    resp = requests.get(api.url, headers=headers, timeout=TIMEOUT)
    assert_challenge(resp, status, "invalid_token" if description else None, description, realm=REALM)


def test_i16_interop_rfc8705_3_provider_refuses_token_without_certificate(oidc_provider: OidcProvider) -> None:
    client_id, secret = MTLS_CLIENT
    resp = oidc_provider.session.post(
        oidc_provider.token_endpoint,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        timeout=TIMEOUT,
    )
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
