"""A ``requests`` auth sending a bearer token (RFC 6750 §2.1) that renews it once on ``invalid_token`` (§3.1).

With a DPoP key (RFC 9449 §7.1) it sends ``Authorization: DPoP <token>`` and a
fresh ``DPoP`` proof per request, and answers a ``use_dpop_nonce`` challenge
(§9) with one more request carrying the resource's nonce.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase
from requests.cookies import extract_cookies_to_jar

from .challenge import parse_challenges
from .dpop import DPoPKey

__all__ = ["RenewingBearerAuth", "origin"]

_MAX_NONCES = 64  # origins whose last DPoP-Nonce is remembered (oldest dropped first)
_MAX_NONCE_LEN = 512
#: Seconds after a renewal on ``invalid_token`` during which another such
#: challenge renews nothing: a resource refusing every token (broken, or
#: hostile) costs one token request per this many seconds, not one per call.
RENEW_COOLDOWN = 10.0

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

    Tokens are dropped so at most once per :data:`RENEW_COOLDOWN` seconds: a
    resource that refuses every token gets its 401 back rather than costing a
    token request per call (a token another thread renewed is still retried with).

    The retry goes only to the origin the token was first sent to: ``requests``
    keeps our response hook on redirected requests (while it strips the
    ``Authorization`` header on a cross-origin redirect), so a 401 from a
    redirect target on another origin must not earn it a fresh token.
    """

    #: Set (by the subclass) to send DPoP-bound tokens with proofs (RFC 9449 §7.1).
    dpop_key: DPoPKey | None = None

    def __init__(self) -> None:
        # The last DPoP-Nonce of each origin, oldest first.
        self._nonces: dict[tuple[str, str, int | None], str] = {}
        self._nonce_lock = threading.Lock()
        # When a token was last dropped on invalid_token (time.monotonic), and the lock deciding it.
        self._renewed_at: float | None = None
        self._renew_lock = threading.Lock()

    def token(self) -> str:
        """The access token to send."""
        raise NotImplementedError

    @property
    def scheme(self) -> str:
        """The ``Authorization`` scheme sent: ``DPoP`` with a key, else ``Bearer``."""
        return "DPoP" if self.dpop_key is not None else "Bearer"

    def remember_nonce(self, where: tuple[str, str, int | None] | None, nonce: str | None) -> None:
        """Keep the last ``DPoP-Nonce`` of an origin (RFC 9449 §8.2, §9.1), a bounded number of them."""
        if where is None or not nonce or len(nonce) > _MAX_NONCE_LEN or not nonce.isprintable():
            return
        with self._nonce_lock:
            nonces = self._nonces
            nonces.pop(where, None)
            nonces[where] = nonce
            while len(nonces) > _MAX_NONCES:
                del nonces[next(iter(nonces))]

    def nonce_for(self, where: tuple[str, str, int | None] | None) -> str | None:
        """The last ``DPoP-Nonce`` the origin ``where`` sent, if any."""
        return self._nonces.get(where) if where is not None else None

    def _authorize(self, r: requests.PreparedRequest, token: str) -> None:
        """Set ``Authorization`` (and a fresh ``DPoP`` proof for this method and URL)."""
        r.headers["Authorization"] = f"{self.scheme} {token}"
        if self.dpop_key is not None:
            nonce = self.nonce_for(origin(r.url))
            r.headers["DPoP"] = self.dpop_key.proof(r.method or "GET", r.url or "", token=token, nonce=nonce)

    def invalidate(self, token: str | None = None) -> bool | None:
        """Forget ``token`` so that :meth:`token` returns another one; False when
        it was already replaced (nothing dropped)."""
        raise NotImplementedError

    def _renew(self, used: str) -> None:
        """Drop ``used`` after an ``invalid_token`` challenge, at most once per
        :data:`RENEW_COOLDOWN` seconds (the first time at once).

        Under the lock that decides it, so a burst of refusals of one token sees
        it dropped (and shares the one new token) rather than kept. A refusal of
        a token already replaced drops nothing and costs no token request, so it
        does not start the cool-down (the current token's revocation would wait).
        """
        now = time.monotonic()
        with self._renew_lock:
            last = self._renewed_at
            if last is not None and now - last < RENEW_COOLDOWN:
                return
            if self.invalidate(used) is not False:
                self._renewed_at = now

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        self._authorize(r, self.token())
        tell = getattr(r.body, "tell", None)
        if callable(tell):
            # A streamed body can be sent again only from where it started.
            setattr(r, "_ccguard_body_pos", tell())  # noqa: B010
        asked = origin(r.url)

        def hook(resp: requests.Response, **kwargs: Any) -> requests.Response:
            return self._retry_on_invalid_token(resp, asked, **kwargs)

        r.register_hook("response", hook)  # type: ignore[no-untyped-call]
        return r

    def _on_redirect(self, resp: requests.Response, asked: tuple[str, str, int | None] | None) -> None:
        """Re-sign or drop the proof a redirected request would carry.

        ``requests`` follows a redirect with a copy of this request: it strips
        ``Authorization`` across origins but not ``DPoP``. A proof never goes
        to another origin; within the origin it is re-signed for the new URL
        and method (as ``requests`` rebuilds them), so a proof is used once.
        """
        req = resp.request
        if "DPoP" not in req.headers or self.dpop_key is None:
            return
        target = requests.compat.urljoin(req.url or "", resp.headers.get("Location", ""))
        used = req.headers.get("Authorization", "")
        if asked is None or origin(target) != asked or not used.startswith("DPoP "):
            del req.headers["DPoP"]
            return
        method = req.method or "GET"
        if (resp.status_code == 303 and method != "HEAD") or (resp.status_code in (301, 302) and method == "POST"):
            method = "GET"
        nonce = self.nonce_for(asked)
        req.headers["DPoP"] = self.dpop_key.proof(method, target, token=used[len("DPoP ") :], nonce=nonce)

    def _retry_on_invalid_token(
        self, resp: requests.Response, asked: tuple[str, str, int | None] | None, **kwargs: Any
    ) -> requests.Response:
        """RFC 6750 §3.1: ``invalid_token`` may mean our token expired or was
        revoked early; fetch a fresh one and send the request once more, to
        the origin ``asked`` (where the caller sent the token) and nowhere else.
        RFC 9449 §9: ``use_dpop_nonce`` asks for the same request with a proof
        carrying the ``DPoP-Nonce`` the resource sent; also once, same origin."""
        req = resp.request
        here = origin(req.url)
        if self.dpop_key is not None and here == asked:
            self.remember_nonce(asked, resp.headers.get("DPoP-Nonce"))  # §8.2: on any answer
        if resp.is_redirect:
            self._on_redirect(resp, asked)
            return resp
        if resp.status_code != 401:
            return resp
        scheme = self.scheme
        challenges = parse_challenges(resp.headers.get("WWW-Authenticate", ""))
        error = next((p.get("error") for s, p in challenges if s == scheme.lower()), None)
        if error != "invalid_token" and (error != "use_dpop_nonce" or self.dpop_key is None):
            return resp
        if getattr(req, "_ccguard_retried", False):
            return resp
        used = req.headers.get("Authorization", "")
        if asked is None or here != asked or not used.startswith(scheme + " "):
            # A redirect took the request elsewhere, or dropped our token on
            # the way (requests strips it across origins): nothing of ours to renew.
            return resp
        if error == "use_dpop_nonce" and not resp.headers.get("DPoP-Nonce"):
            return resp  # nothing new to send: the same request would fail the same way
        if hasattr(req.body, "read"):
            pos = getattr(req, "_ccguard_body_pos", None)
            if pos is None:
                return resp
            req.body.seek(pos)  # type: ignore[union-attr]
        used_token = used[len(scheme) + 1 :]
        if error == "invalid_token":
            self._renew(used_token)
        token = self.token()
        if error == "invalid_token" and token == used_token:
            # Renewed moments ago and refused again: the same request would fail
            # the same way, and a new token request per call would flood the issuer.
            return resp
        resp.content  # noqa: B018 - read the body so the connection can be reused
        resp.close()
        retry = req.copy()
        extract_cookies_to_jar(retry._cookies, req, resp.raw)  # type: ignore[attr-defined,no-untyped-call]
        retry.prepare_cookies(retry._cookies)  # type: ignore[attr-defined]
        self._authorize(retry, token)
        setattr(retry, "_ccguard_retried", True)  # noqa: B010
        again: requests.Response = resp.connection.send(retry, **kwargs)
        again.history.append(resp)
        again.request = retry
        return again
