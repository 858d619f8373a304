"""Start-up warm-up: fetch each fixed issuer's metadata and keys before the first request.

Without it, an issuer that is down or misconfigured shows only on the first
request (a stall of up to the HTTP timeout, then a 503). ``CCGUARD_WARM_UP``
runs :func:`warm_up` in ``init_app``; ``guard.warm_up(app)`` runs it on
demand (e.g. in a gunicorn ``post_fork`` hook, so each worker starts warm).
"""

from __future__ import annotations

import logging

from .core.errors import CCGuardError, ConfigurationError
from .core.validator import TokenValidator

__all__ = ["require_warm", "warm_up"]

log = logging.getLogger("flask_ccguard")


def warm_up(validator: TokenValidator) -> dict[str, str | None]:
    """Fetch the metadata and key set of each fixed issuer of ``validator``, one at a time.

    Bounded like any fetch: each request to an issuer has the HTTP timeout.
    Issuer templates (``{tenantid}``) and introspection-only issuers have no
    fixed key set and are skipped. Each outcome is logged.

    :returns: issuer → None when its keys are loaded, else why not.
    """
    outcome: dict[str, str | None] = {}
    for issuer in validator.issuers:
        try:
            entry = validator.issuer_settings(issuer)
        except KeyError:  # a template: its issuers are known only from tokens
            continue
        if entry.introspector is not None and entry.introspector.all_tokens:
            continue
        try:
            entry.keys.refresh_if_due()
        except CCGuardError:
            cause = entry.keys.last_failure or "its keys could not be fetched"
            log.warning("flask_ccguard: warm-up: issuer %r is not ready: %s", issuer, cause)
            outcome[issuer] = cause
        else:
            log.info("flask_ccguard: warm-up: issuer %r ready (%d key ids)", issuer, len(entry.keys.kids))
            outcome[issuer] = None
    return outcome


def require_warm(outcome: dict[str, str | None]) -> None:
    """Raise for the first issuer that did not warm up (``CCGUARD_WARM_UP = "require"``).

    :raises ConfigurationError: naming the issuer and the cause.
    """
    for issuer, cause in outcome.items():
        if cause is not None:
            raise ConfigurationError(
                f"CCGUARD_WARM_UP is 'require' but the keys of issuer {issuer!r} could not be fetched at "
                f"start-up: {cause}. Check CCGUARD_ISSUER (and CCGUARD_JWKS_URI / CCGUARD_DISCOVERY_URL) "
                "and that the issuer is reachable, or set CCGUARD_WARM_UP = True to start anyway."
            )
