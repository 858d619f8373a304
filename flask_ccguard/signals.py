"""Signals and log records for each token decision (never the token itself).

Like Flask's own signals, these are blinker signals in a private namespace,
sent with the application as sender::

    from flask_ccguard import token_rejected

    @token_rejected.connect_via(app)
    def count_rejection(sender, error, **extra):
        metrics.incr("auth.rejected", tags={"reason": error.reason})
"""

from __future__ import annotations

import logging
import re
from typing import Any

from blinker import Namespace

from .core.claims import VerifiedToken
from .core.errors import CCGuardError

__all__ = ["log", "token_rejected", "token_verified"]

_signals = Namespace()

#: Sent once per request when a token has been validated, with ``token``
#: (the :class:`~flask_ccguard.VerifiedToken`).
token_verified = _signals.signal("token-verified")

#: Sent when a request is refused, with ``error`` (the
#: :class:`~flask_ccguard.CCGuardError`, whose ``reason`` says why).
token_rejected = _signals.signal("token-rejected")

#: Logs each rejection at INFO (WARNING when the issuer's keys are
#: unavailable) with its reason; never a token, a claim value or a key.
log = logging.getLogger("flask_ccguard")

# RFC 9110 §9.1: a method is a token. Anything else (CR/LF, escape sequences,
# which some WSGI servers pass through) is logged repr-escaped, so a client
# cannot forge or break log lines (CWE-117).
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}")


def announce_verified(app: Any, token: VerifiedToken) -> None:
    """Send :data:`token_verified` for ``app``."""
    token_verified.send(app, token=token)


def announce_rejected(app: Any, error: CCGuardError, method: str, path: str) -> None:
    """Log ``error`` by reason and send :data:`token_rejected` for ``app``.

    :param path: the request path *without* the query string, where a
        token may be (RFC 6750 §2.3).
    """
    level = logging.WARNING if error.status >= 500 else logging.INFO
    log.log(
        level,
        "flask_ccguard: refused %s %r: %s (reason=%s, claim=%s, status=%d)",
        method if _METHOD.fullmatch(method) else repr(method),
        path,
        type(error).__name__,
        error.reason,
        error.claim,
        error.status,
        extra={"ccguard_reason": error.reason, "ccguard_status": error.status},
    )
    token_rejected.send(app, error=error)
