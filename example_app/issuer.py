"""The app-registration issuer: token endpoint (RFC 6749 §4.4), metadata, JWKS.

Mirrors RKVST's ``/archivist/iam/v1/appidp``: a client-credentials grant by
form post with ``client_secret_post`` or ``client_secret_basic`` (RFC 6749
§2.3.1), errors per §5.2, and ``at+jwt`` access tokens per RFC 9068.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from flask_ccguard.core.fetch.basic_auth import parse_basic_authorization

from . import registrations
from .client_secrets import SecretCheckBusy
from .db import get_db
from .failure_limiter import TokenEndpointLimits
from .keys import ALGORITHM, KeyStore
from .settings import ISSUER_PATH

bp = Blueprint("issuer", __name__, url_prefix=ISSUER_PATH)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1


class OAuthError(Exception):
    """An RFC 6749 §5.2 error response."""

    def __init__(self, error: str, description: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}


@bp.errorhandler(OAuthError)
def _oauth_error(exc: OAuthError) -> Response:
    response = jsonify(error=exc.error, error_description=exc.description)
    response.status_code = exc.status
    response.headers.update(NO_STORE)
    response.headers.update(exc.headers)
    if exc.status == 401:
        # RFC 6749 §5.2: a 401 carries a challenge for the scheme the client may use.
        response.headers["WWW-Authenticate"] = f'Basic realm="{current_app.config["EXAMPLE_ISSUER"]}"'
    return response


def _keys() -> KeyStore:
    store: KeyStore = current_app.extensions["example_keys"]
    return store


def _basic() -> tuple[str, str] | None:
    """(client_id, secret) from HTTP Basic (RFC 6749 §2.3.1), or None."""
    try:
        return parse_basic_authorization(request.headers.get("Authorization", ""))
    except ValueError:
        raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None


def _param(name: str) -> str | None:
    values = request.form.getlist(name)
    if len(values) > 1:
        # §3.2: request parameters MUST NOT be included more than once.
        raise OAuthError("invalid_request", f"{name} is given more than once")
    return values[0] if values else None


@bp.post("/token")
def token() -> tuple[Response, int, dict[str, str]]:
    # §4.4.2: parameters in the application/x-www-form-urlencoded body.
    if request.mimetype != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "send the parameters as application/x-www-form-urlencoded")
    grant_type = _param("grant_type")
    client_id, secret = _param("client_id"), _param("client_secret")
    basic = _basic()
    if basic is not None:
        # §2.3: one authentication method per request.
        if secret is not None:
            raise OAuthError("invalid_request", "client credentials are sent by two methods")
        if client_id is not None and client_id != basic[0]:
            raise OAuthError("invalid_request", "client_id differs from the Basic credentials")
        client_id, secret = basic
    if grant_type is None:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant_type != "client_credentials":
        raise OAuthError("unsupported_grant_type", "only client_credentials is supported")
    if not client_id or secret is None:
        raise OAuthError("invalid_client", "client authentication is required", 401)
    limits: TokenEndpointLimits = current_app.extensions["example_token_limits"]
    address = request.remote_addr or ""
    wait = limits.begin(client_id, address)
    if wait:
        # RFC 6749 §10.10: no credential check at all until the window ends.
        raise OAuthError(
            "invalid_client", "too many failed client authentications; try again later", 429, {"Retry-After": str(wait)}
        )
    # The failure slot is taken before the check (begin) and given back here,
    # so concurrent guesses cannot all be checked before one is counted.
    outcome: bool | None = None
    try:
        row = registrations.authenticate(get_db(), client_id, secret)
        outcome = row is not None
    except SecretCheckBusy:
        raise OAuthError(
            "temporarily_unavailable", "the server is busy; try again later", 503, {"Retry-After": "1"}
        ) from None
    finally:
        limits.end(client_id, address, outcome)
    if row is None:
        raise OAuthError("invalid_client", "client authentication failed", 401)

    roles, custom = registrations.token_claims(row)
    now = int(time.time())
    lifetime = int(current_app.config["EXAMPLE_TOKEN_LIFETIME"])
    # Custom claims first: they were checked not to collide, and the issuer's
    # own claims are written after them in any case.
    claims: dict[str, Any] = dict(custom)
    claims.update(
        {
            "iss": current_app.config["EXAMPLE_ISSUER"],
            "sub": row["id"],
            "aud": current_app.config["EXAMPLE_AUDIENCE"],
            "client_id": row["id"],
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": secrets.token_urlsafe(16),
            "roles": roles,
            "jit_tenant_id": current_app.config["EXAMPLE_TENANT"],
        }
    )
    access_token = _keys().current().sign(claims)
    body = jsonify(access_token=access_token, token_type="Bearer", expires_in=lifetime)
    return body, 200, NO_STORE


@bp.get("/.well-known/openid-configuration")
def openid_configuration() -> Response:
    """OpenID Connect Discovery 1.0 §3 metadata (RFC 8414 §2 members)."""
    issuer = current_app.config["EXAMPLE_ISSUER"]
    response = jsonify(
        issuer=issuer,
        token_endpoint=issuer + "/token",
        jwks_uri=issuer + "/jwks",
        grant_types_supported=["client_credentials"],
        token_endpoint_auth_methods_supported=["client_secret_post", "client_secret_basic"],
        response_types_supported=["token"],
        subject_types_supported=["public"],
        id_token_signing_alg_values_supported=[ALGORITHM],
    )
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.get("/jwks")
def jwks() -> Response:
    response = jsonify(_keys().jwks())
    # Short: a rotation (rotate-key) shows within minutes even to validators
    # that do not refetch on an unknown kid.
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
