"""One assertion for every protected-resource response: status, challenges, headers and body."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import requests
from werkzeug.test import TestResponse

MISSING = "A bearer token is required."
UNAVAILABLE = "The token issuer is unavailable; try again later."
#: Only ``Bearer``, with no params of its own.
BEARER: Sequence[tuple[str, Mapping[str, str]]] = (("Bearer", {}),)
#: The default DPoP offer (RFC 9449 §7.1): the scheme and its ``algs``.
DPOP: tuple[str, Mapping[str, str]] = ("DPoP", {"algs": "ES256 ES384 ES512 PS256 PS384 PS512 RS256 EdDSA"})
#: What the extension offers by default (``CCGUARD_DPOP = "allowed"``): Bearer, then DPoP.
DEFAULT: Sequence[tuple[str, Mapping[str, str]]] = (*BEARER, DPOP)


def _read(resp: TestResponse | requests.Response) -> tuple[list[str], str, Any]:
    """The ``WWW-Authenticate`` fields, the media type and the JSON body (None if not JSON)."""
    if isinstance(resp, requests.Response):
        # requests joins repeated fields with ", ", so one field is all it shows.
        fields = [resp.headers["WWW-Authenticate"]] if "WWW-Authenticate" in resp.headers else []
        try:
            body = resp.json()
        except ValueError:
            body = None
        return fields, resp.headers.get("Content-Type", "").split(";")[0].strip(), body
    return resp.headers.getlist("WWW-Authenticate"), resp.mimetype or "", resp.get_json(silent=True)


def assert_challenge(
    resp: TestResponse | requests.Response,
    status: int,
    error: str | None = None,
    description: str | None = None,
    scope: str | None = None,
    *,
    realm: str,
    schemes: Sequence[tuple[str, Mapping[str, str]]] = DEFAULT,
    params: Mapping[str, str] | None = None,
    error_scheme: str | None = None,
    retry_after: str = "30",
    escaped: str | None = None,
) -> None:
    """Assert the exact response of a refused (or a passed) request (test client or live server).

    ``status`` 200 or 204 asserts the request passed and carries no challenge.
    ``error`` None is a request without credentials: bare challenges (RFC 6750
    §3.1) and the body ``{"error": "unauthorized", ...}``. 503 asserts no
    challenge, ``Retry-After: retry_after`` and ``temporarily_unavailable``.

    Otherwise one ``WWW-Authenticate`` field holds one challenge per scheme of
    ``schemes``, comma-separated (RFC 9110 §11.6.1), each with ``realm``, then
    ``params`` (e.g. ``resource_metadata``, RFC 9728 §5.1), then the error's
    params (on ``error_scheme``'s challenge only, when given), then the
    scheme's own (e.g. ``algs``, RFC 9449 §7.1). ``escaped`` is the
    description as the header must carry it when escaping changed it (the
    body keeps ``description`` as it is).
    """
    fields, mimetype, body = _read(resp)
    assert resp.status_code == status, f"got {resp.status_code} {fields!r} {body!r}"
    if status < 400:
        assert fields == []
        return
    assert mimetype == "application/json"
    if status == 503:
        assert fields == [], "a 503 is not a challenge"
        assert resp.headers.get("Retry-After") == retry_after
        assert body == {"error": "temporarily_unavailable", "error_description": description or UNAVAILABLE}
        return
    own: list[tuple[str, str]] = []
    if error is not None:
        own += [("error", error), ("error_description", escaped or description or "")]
    if scope is not None:
        own.append(("scope", scope))
    expected = []
    for scheme, extra in schemes:
        pairs = [("realm", realm), *(params or {}).items()]
        pairs += own if error_scheme in (None, scheme) else []
        pairs += extra.items()
        expected.append(f"{scheme} " + ", ".join(f'{name}="{value}"' for name, value in pairs))
    assert fields == [", ".join(expected)]
    assert body == {"error": error or "unauthorized", "error_description": description or MISSING}
