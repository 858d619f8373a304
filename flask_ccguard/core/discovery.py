"""Issuer metadata: OpenID Connect Discovery 1.0 §4, falling back to RFC 8414 §3.

The document's ``issuer`` must equal the configured issuer exactly (OIDC
Discovery §4.3, RFC 8414 §3.3); a document that names another issuer is
refused whole, so nothing in it (least of all its ``jwks_uri``) is used.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .http import FetchError, HTTPClient, _url_allowed

__all__ = ["DiscoveryError", "discover", "metadata_urls"]

log = logging.getLogger("flask_ccguard")

OIDC_WELL_KNOWN = "/.well-known/openid-configuration"
OAUTH_WELL_KNOWN = "/.well-known/oauth-authorization-server"


class DiscoveryError(Exception):
    """No usable metadata document; ``str()`` is safe to log."""


def metadata_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may be, in the order they are tried.

    1. OIDC Discovery: ``{issuer}/.well-known/openid-configuration``.
    2. RFC 8414 §3.1: the well-known segment inserted between host and path.
    3. RFC 8414 appended to the issuer, as many OAuth servers publish it.
    """
    base = issuer.rstrip("/")
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    inserted = urlunsplit((parts.scheme, parts.netloc, OAUTH_WELL_KNOWN + path, "", ""))
    urls = [base + OIDC_WELL_KNOWN, inserted, base + OAUTH_WELL_KNOWN]
    return list(dict.fromkeys(urls))


def issuer_near_miss(found: object, configured: str) -> str | None:
    """How ``found`` differs from ``configured`` when it is only by a trailing
    slash or letter case (a common misconfiguration), else None.

    Still a mismatch: issuers compare exactly (OIDC Discovery §4.3, RFC 9068 §4).
    """
    if not isinstance(found, str) or found == configured:
        return None
    if found.rstrip("/") == configured.rstrip("/"):
        return "a trailing slash"
    if found.rstrip("/").lower() == configured.rstrip("/").lower():
        return "letter case" if len(found) == len(configured) else "a trailing slash and letter case"
    return None


def discover(
    http: HTTPClient, issuer: str, discovery_url: str | None = None, *, need: str = "jwks_uri"
) -> dict[str, Any]:
    """Fetch and check the issuer's metadata.

    :param discovery_url: one explicit metadata URL instead of the well-knowns.
    :param need: the endpoint member the caller uses (``jwks_uri`` for the
        validator, ``token_endpoint`` for the token client); it must be an
        https URL (http for loopback only).
    :raises DiscoveryError: when no candidate yields a document for ``issuer``
        with a usable ``need``.
    """
    failures = []
    for url in [discovery_url] if discovery_url else metadata_urls(issuer):
        try:
            doc = http.get_json(url).data
        except FetchError as exc:
            failures.append(str(exc))
            continue
        if not isinstance(doc, dict):
            failures.append(f"{url!r} is not a JSON object")
            continue
        if doc.get("issuer") != issuer:
            # OIDC Discovery §4.3: the issuer value MUST be identical.
            near = issuer_near_miss(doc.get("issuer"), issuer)
            log.warning(
                "flask_ccguard: metadata at %r names issuer %r, not the configured %r; ignored%s",
                url,
                str(doc.get("issuer"))[:200],
                issuer,
                f" (they differ only by {near}: configure the issuer exactly as the document names it)" if near else "",
            )
            failures.append(f"{url!r} names another issuer")
            continue
        endpoint = doc.get(need)
        if not isinstance(endpoint, str) or not _url_allowed(endpoint):
            failures.append(f"{url!r} has no usable https {need}")
            continue
        return doc
    raise DiscoveryError(f"no metadata for issuer {issuer!r}: " + "; ".join(failures))
