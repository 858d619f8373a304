"""Where the example lives: its base URL, issuer identifier and audience.

The issuer identifier (RFC 8414 §2, OpenID Connect Discovery 1.0 §3) must be
the exact URL the asset API fetches metadata from, so it is derived from the
address the example serves, once, at start-up:

1. ``EXAMPLE_ISSUER`` / ``EXAMPLE_AUDIENCE`` (config or environment) win;
2. else ``EXAMPLE_BASE_URL`` (config or environment);
3. else the ``--host``/``--port`` given to ``flask run``;
4. else ``http://127.0.0.1:5000``.

The issuer is ``{base}/archivist/iam/v1/appidp``, so its token endpoint is
``{issuer}/token`` -- the same path as RKVST's -- and its metadata is at
``{issuer}/.well-known/openid-configuration``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import click

DEFAULT_BASE_URL = "http://127.0.0.1:5000"
ISSUER_PATH = "/archivist/iam/v1/appidp"
AUDIENCE_PATH = "/archivist"
# Hosts that mean "every interface": the example calls itself on loopback.
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "localhost", ""})  # noqa: S104 - compared, not bound


def _setting(config: Mapping[str, Any], name: str) -> str | None:
    value = config.get(name) or os.environ.get(name)
    return str(value).rstrip("/") if value else None


def serving() -> bool:
    """True when ``flask run`` is loading the app (not ``flask register``, not a test)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.info_name == "run"


def served_base_url() -> str:
    """The base URL of ``flask run`` when called from it, else the default.

    ``flask run`` loads the app inside its click context, whose parameters are
    the address the server is about to bind.
    """
    ctx = click.get_current_context(silent=True)
    if ctx is None or not serving():
        return DEFAULT_BASE_URL
    host = str(ctx.params.get("host") or "127.0.0.1")
    port = int(ctx.params.get("port") or 5000)
    scheme = "https" if ctx.params.get("cert") else "http"
    if host in _WILDCARD_HOSTS:
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"  # RFC 3986 §3.2.2: IPv6 literals in brackets
    return f"{scheme}://{host}:{port}"


def resolve(config: Mapping[str, Any]) -> dict[str, str]:
    """``EXAMPLE_BASE_URL``, ``EXAMPLE_ISSUER`` and ``EXAMPLE_AUDIENCE`` for ``config``."""
    base = _setting(config, "EXAMPLE_BASE_URL") or served_base_url()
    return {
        "EXAMPLE_BASE_URL": base,
        "EXAMPLE_ISSUER": _setting(config, "EXAMPLE_ISSUER") or base + ISSUER_PATH,
        "EXAMPLE_AUDIENCE": _setting(config, "EXAMPLE_AUDIENCE") or base + AUDIENCE_PATH,
    }
