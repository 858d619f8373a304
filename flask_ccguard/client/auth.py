"""A ``requests`` auth sending a bearer token (RFC 6750 §2.1) that renews it once on ``invalid_token`` (§3.1)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase
from requests.cookies import extract_cookies_to_jar

from .challenge import bearer_error

__all__ = ["RenewingBearerAuth", "origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str | None) -> tuple[str, str, int | None] | None:
    """The origin (RFC 6454 §4: scheme, host, port) of ``url``; None if it has none."""
    try:
        parts = urlsplit(url or "")
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if not scheme or not host:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS.get(scheme)


class RenewingBearerAuth(AuthBase):
    """Adds ``Authorization: Bearer <token()>``; when the resource answers 401
    with ``error="invalid_token"``, drops that token, gets a new one and sends
    the request once more. Subclasses provide :meth:`token` and :meth:`invalidate`.

    The retry goes only to the origin the token was first sent to: ``requests``
    keeps our response hook on redirected requests (while it strips the
    ``Authorization`` header on a cross-origin redirect), so a 401 from a
    redirect target on another origin must not earn it a fresh token.
    """

    def token(self) -> str:
        """The access token to send."""
        raise NotImplementedError

    def invalidate(self, token: str | None = None) -> None:
        """Forget ``token`` so that :meth:`token` returns another one."""
        raise NotImplementedError

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token()}"
        tell = getattr(r.body, "tell", None)
        if callable(tell):
            # A streamed body can be sent again only from where it started.
            setattr(r, "_ccguard_body_pos", tell())  # noqa: B010
        asked = origin(r.url)

        def hook(resp: requests.Response, **kwargs: Any) -> requests.Response:
            return self._retry_on_invalid_token(resp, asked, **kwargs)

        r.register_hook("response", hook)  # type: ignore[no-untyped-call]
        return r

    def _retry_on_invalid_token(
        self, resp: requests.Response, asked: tuple[str, str, int | None] | None, **kwargs: Any
    ) -> requests.Response:
        """RFC 6750 §3.1: ``invalid_token`` may mean our token expired or was
        revoked early; fetch a fresh one and send the request once more, to
        the origin ``asked`` (where the caller sent the token) and nowhere else."""
        if resp.status_code != 401 or bearer_error(resp.headers.get("WWW-Authenticate", "")) != "invalid_token":
            return resp
        req = resp.request
        if getattr(req, "_ccguard_retried", False):
            return resp
        used = req.headers.get("Authorization", "")
        if asked is None or origin(req.url) != asked or not used.startswith("Bearer "):
            # A redirect took the request elsewhere, or dropped our token on
            # the way (requests strips it across origins): nothing of ours to renew.
            return resp
        if hasattr(req.body, "read"):
            pos = getattr(req, "_ccguard_body_pos", None)
            if pos is None:
                return resp
            req.body.seek(pos)  # type: ignore[union-attr]
        self.invalidate(used[len("Bearer ") :])
        token = self.token()
        resp.content  # noqa: B018 - read the body so the connection can be reused
        resp.close()
        retry = req.copy()
        extract_cookies_to_jar(retry._cookies, req, resp.raw)  # type: ignore[attr-defined,no-untyped-call]
        retry.prepare_cookies(retry._cookies)  # type: ignore[attr-defined]
        retry.headers["Authorization"] = f"Bearer {token}"
        setattr(retry, "_ccguard_retried", True)  # noqa: B010
        again: requests.Response = resp.connection.send(retry, **kwargs)
        again.history.append(resp)
        again.request = retry
        return again
