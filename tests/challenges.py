"""One assertion for every protected-resource response: status, challenge and body."""

from __future__ import annotations

from werkzeug.test import TestResponse

MISSING = "A bearer token is required."


def assert_challenge(
    resp: TestResponse,
    status: int,
    error: str | None = None,
    description: str | None = None,
    scope: str | None = None,
    *,
    realm: str = "assets",
) -> None:
    """Assert the exact RFC 6750 §3 response of a refused (or a passed) request.

    ``status`` 200 or 204 asserts the request passed and carries no challenge.
    ``error`` None is a request without credentials: a bare ``Bearer realm``
    challenge (§3.1) and the body ``{"error": "unauthorized", ...}``.
    """
    challenge = resp.headers.get("WWW-Authenticate")
    body = resp.get_json(silent=True)
    assert resp.status_code == status, f"got {resp.status_code} {challenge!r} {body!r}"
    if status < 400:
        assert challenge is None
        return
    params = [("realm", realm)]
    if error is not None:
        params += [("error", error), ("error_description", description or "")]
    if scope is not None:
        params.append(("scope", scope))
    assert challenge == "Bearer " + ", ".join(f'{name}="{value}"' for name, value in params)
    assert resp.mimetype == "application/json"
    assert body == {"error": error or "unauthorized", "error_description": description or MISSING}
