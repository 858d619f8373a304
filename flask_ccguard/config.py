"""The ``CCGUARD_*`` settings: defaults, checks, and the validator they build.

Settings are read once, in :meth:`CCGuard.init_app`, from ``app.config`` and
the extension's keyword options (which win). Every key of :data:`DEFAULTS`
except :data:`EXTENSION_KEYS` is passed to
:class:`~flask_ccguard.core.validator.TokenValidator` as the keyword of the
same name in lower case without the prefix (``CCGUARD_JWKS_URI`` →
``jwks_uri``), so a new validator option needs only a new line here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from .core.errors import ConfigurationError
from .core.validator import TokenValidator

__all__ = ["CLIENT_KEYS", "DEFAULTS", "EXTENSION_KEYS", "PREFIX", "build_validator", "option_name", "read_settings"]

PREFIX = "CCGUARD_"

#: Every setting and its default. Keep one key per line, each with a ``#:``.
DEFAULTS: dict[str, Any] = {
    #: Required. The issuer identifier (the exact ``iss`` of its tokens), or a
    #: list of identifiers or of dicts of per-issuer settings.
    "CCGUARD_ISSUER": None,
    #: Required. The audience (or list of audiences) a token's ``aud`` must name.
    "CCGUARD_AUDIENCE": None,
    #: Allowed JWS algorithms; asymmetric only (``none`` and HMAC are refused).
    "CCGUARD_ALGORITHMS": ["RS256"],
    #: Seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat``.
    "CCGUARD_LEEWAY": 60,
    #: Refuse tokens without an ``iat`` claim.
    "CCGUARD_REQUIRE_IAT": True,
    #: The issuer's JWKS URL; None discovers it from the issuer's metadata.
    "CCGUARD_JWKS_URI": None,
    #: An explicit metadata URL; None tries the OpenID then RFC 8414 well-knowns.
    "CCGUARD_DISCOVERY_URL": None,
    #: Claim (or dotted path, e.g. ``realm_access.roles``) holding the roles.
    "CCGUARD_ROLES_CLAIM": "roles",
    #: What separates the roles of a roles claim that is one string (e.g. ``","``);
    #: None: whitespace. Arrays are not split.
    "CCGUARD_ROLES_DELIMITER": None,
    #: Claim holding the scopes; None reads ``scope``, then ``scp``.
    "CCGUARD_SCOPES_CLAIM": None,
    #: Seconds allowed for each request to the issuer.
    "CCGUARD_HTTP_TIMEOUT": 5,
    #: Seconds between key set refetches triggered by an unknown ``kid``.
    "CCGUARD_JWKS_REFRESH_COOLDOWN": 30,
    #: Seconds (or the issuer's longer ``Cache-Control: max-age``) before the
    #: key set is refreshed.
    "CCGUARD_JWKS_MAX_AGE": 600,
    #: Seconds cached keys keep serving while refreshes fail.
    "CCGUARD_JWKS_STALE_LIMIT": 86400,
    #: The longest token accepted, in bytes.
    "CCGUARD_MAX_TOKEN_BYTES": 16384,
    #: Accepted ``typ`` header values; None accepts none, ``JWT`` and ``at+jwt``.
    "CCGUARD_TOKEN_TYPES": None,
    #: Refuse tokens issued more than this many seconds ago; None: no limit.
    "CCGUARD_MAX_TOKEN_AGE": None,
    #: Claims that mark a payload as an ID token, which is refused; None:
    #: ``nonce``, ``at_hash``, ``c_hash``, ``s_hash``; ``[]`` turns the check off.
    "CCGUARD_ID_TOKEN_CLAIMS": None,
    #: Origins besides the issuer's that discovered endpoints may be on: False,
    #: True (any https origin) or a list such as ``["https://www.googleapis.com"]``.
    "CCGUARD_ALLOW_CROSS_ORIGIN_METADATA": False,
    #: Verified tokens remembered so a repeated token skips the signature check; 0 turns it off.
    "CCGUARD_TOKEN_CACHE_SIZE": 1024,
    #: Where discovery documents and key sets are cached: None (this process),
    #: ``file:///dir`` (the workers of one host) or ``redis://host:port/db`` (every host).
    "CCGUARD_CACHE": None,
    #: The ``realm`` of ``WWW-Authenticate`` challenges; None uses the app's import name.
    "CCGUARD_REALM": None,
    #: Accept ``?access_token=`` in the URL (RFC 6750 §2.3; tokens end up in logs).
    "CCGUARD_ALLOW_QUERY_TOKEN": False,
    #: Accept ``access_token`` in a form-encoded body (RFC 6750 §2.2).
    "CCGUARD_ALLOW_FORM_TOKEN": False,
    #: Fetch each fixed issuer's metadata and keys in ``init_app``: False, True
    #: (log the outcome) or ``"require"`` (raise ConfigurationError on a failure).
    "CCGUARD_WARM_UP": False,
}

#: Settings the Flask layer uses itself; all others go to the validator.
EXTENSION_KEYS = frozenset(
    {"CCGUARD_REALM", "CCGUARD_ALLOW_QUERY_TOKEN", "CCGUARD_ALLOW_FORM_TOKEN", "CCGUARD_WARM_UP"}
)

#: Environment names of the ``ccguard`` command's client side (the token it
#: requests); an app that loads every ``CCGUARD_*`` variable into its config
#: may carry them, so the extension leaves them alone instead of calling them typos.
CLIENT_KEYS = frozenset(
    {
        "CCGUARD_CLIENT_ID",
        "CCGUARD_CLIENT_SECRET",
        "CCGUARD_TOKEN_URL",
        "CCGUARD_TENANT",
        "CCGUARD_FQDN",
        "CCGUARD_SCOPE",
        "CCGUARD_RESOURCE",
        "CCGUARD_AUTH_METHOD",
        "CCGUARD_AUTHORITY",
        "CCGUARD_TOKEN",
    }
)

# RFC 9110 §11.5: the realm is a quoted-string; we refuse what would need escaping.
_REALM = re.compile(r"[\x20-\x7e]+")


def option_name(option: str) -> str:
    """The config key of a validator option: ``jwks_uri`` → ``CCGUARD_JWKS_URI``."""
    return PREFIX + option.upper()


def _unknown(key: str) -> ConfigurationError:
    close = difflib.get_close_matches(key, DEFAULTS, n=1)
    hint = f"; did you mean {close[0]}?" if close else f"; known settings are {', '.join(DEFAULTS)}."
    return ConfigurationError(f"{key} is not a flask-ccguard setting{hint}")


def read_settings(config: Mapping[str, Any], options: Mapping[str, Any], *, import_name: str) -> dict[str, Any]:
    """The effective settings: defaults, then ``config``, then keyword ``options``.

    :param config: the app's config; only ``CCGUARD_*`` keys are read.
    :param options: keyword options in lower case (``audience=...``).
    :param import_name: the app's import name, the default realm.
    :raises ConfigurationError: for an unknown ``CCGUARD_*`` key or option
        (a typo must not silently drop a check), or a bad extension setting.
    """
    settings = dict(DEFAULTS)
    for key, value in config.items():
        if isinstance(key, str) and key.startswith(PREFIX) and key not in CLIENT_KEYS:
            if key not in DEFAULTS:
                raise _unknown(key)
            settings[key] = value
    for name, value in options.items():
        key = option_name(name)
        if name != name.lower() or key not in DEFAULTS:
            names = [k[len(PREFIX) :].lower() for k in DEFAULTS]
            close = difflib.get_close_matches(name.lower(), names, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "options are the CCGUARD_* settings in lower case."
            raise ConfigurationError(f"CCGuard() got an unknown option {name!r}; {hint}")
        settings[key] = value
    realm = settings["CCGUARD_REALM"]
    if realm is None:
        settings["CCGUARD_REALM"] = import_name
    elif not isinstance(realm, str) or not _REALM.fullmatch(realm) or '"' in realm or "\\" in realm:
        raise ConfigurationError(
            "CCGUARD_REALM must be printable ASCII text without quotes or backslashes, "
            "or None for the app's import name."
        )
    for key in ("CCGUARD_ALLOW_QUERY_TOKEN", "CCGUARD_ALLOW_FORM_TOKEN"):
        if not isinstance(settings[key], bool):
            raise ConfigurationError(f"{key} must be True or False (got {settings[key]!r}).")
    warm_up = settings["CCGUARD_WARM_UP"]
    if not (isinstance(warm_up, bool) or warm_up == "require"):
        raise ConfigurationError(f"CCGUARD_WARM_UP must be False, True or 'require' (got {warm_up!r}).")
    return settings


def build_validator(settings: Mapping[str, Any]) -> TokenValidator:
    """The :class:`TokenValidator` of ``settings`` (config key ``CCGUARD_X`` → keyword ``x``).

    :raises ConfigurationError: naming the ``CCGUARD_*`` key at fault.
    """
    kwargs = {
        key[len(PREFIX) :].lower(): value
        for key, value in settings.items()
        if key.startswith(PREFIX) and key not in EXTENSION_KEYS
    }
    return TokenValidator(**kwargs, option_name=option_name)
