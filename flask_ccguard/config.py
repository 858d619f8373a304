"""The ``CCGUARD_*`` settings: defaults, checks, and the validator they build.

Settings are read once, in :meth:`CCGuard.init_app`, from ``app.config`` and
the extension's keyword options (which win). Each is declared once, in
:mod:`flask_ccguard.core.options`; validator options go to
:class:`~flask_ccguard.core.validator.TokenValidator` as the keyword of the
same name in lower case without the prefix (``CCGUARD_JWKS_URI`` →
``jwks_uri``), extension options are checked here by their own check.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from .core.errors import ConfigurationError
from .core.options import OPTIONS
from .core.validator import TokenValidator

__all__ = ["CLIENT_KEYS", "DEFAULTS", "EXTENSION_KEYS", "PREFIX", "build_validator", "option_name", "read_settings"]

PREFIX = "CCGUARD_"

#: Every setting and its default, from :data:`~flask_ccguard.core.options.OPTIONS`.
DEFAULTS: dict[str, Any] = {o.key: o.default for o in OPTIONS.values() if o.layer != "client"}

#: Settings the Flask layer uses itself; all others go to the validator.
EXTENSION_KEYS = frozenset(o.key for o in OPTIONS.values() if o.layer == "extension")

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
        "CCGUARD_AUTH_METHOD",
        "CCGUARD_AUTHORITY",
        "CCGUARD_TOKEN",
    }
)


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
    for option in OPTIONS.values():
        if option.layer == "extension":
            settings[option.key] = option.check(settings[option.key], option.key)
    if settings["CCGUARD_REALM"] is None:
        settings["CCGUARD_REALM"] = import_name
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
