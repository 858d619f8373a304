"""Per-application state of the extension, kept in ``app.extensions["ccguard"]``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from .core.validator import TokenValidator
from .responses import BEARER, Scheme

if TYPE_CHECKING:
    from .extension import CCGuard
    from .sender import SenderSettings

__all__ = ["EXTENSION_KEY", "CCGuardState", "get_state"]

#: The key of the state in ``app.extensions``.
EXTENSION_KEY = "ccguard"


@dataclass(frozen=True, eq=False)
class CCGuardState:
    """What one application needs to check tokens, built once by ``init_app``.

    Found at ``app.extensions["ccguard"]``.
    """

    #: The extension that initialised the app.
    guard: CCGuard
    #: The validator built from the app's settings (it owns the key cache).
    validator: TokenValidator
    #: The ``realm`` of challenges.
    realm: str
    #: Whether ``access_token`` is read from the query string.
    allow_query_token: bool
    #: Whether ``access_token`` is read from a form-encoded body.
    allow_form_token: bool
    #: The effective ``CCGUARD_*`` settings (read-only).
    settings: Mapping[str, Any]
    #: DPoP and certificate-bound tokens (RFC 9449, RFC 8705): the binding step
    #: ``init_app`` adds, the schemes read and the request's URL and certificate sources.
    sender: SenderSettings
    #: The schemes challenged, in order, each with its own auth-params
    #: (:func:`~flask_ccguard.responses.challenges`), e.g. ``BEARER + (("DPoP", {"algs": "ES256"}),)``.
    schemes: tuple[Scheme, ...] = BEARER
    #: Auth-params of every challenge after ``realm``, e.g. ``{"resource_metadata": url}`` (RFC 9728 §5.1).
    challenge_params: Mapping[str, str] = field(default_factory=dict)


def get_state(app: Flask | None = None) -> CCGuardState:
    """The :class:`CCGuardState` of ``app`` (default: the current app).

    :raises RuntimeError: if :class:`CCGuard` was not initialised on it.
    """
    app = app if app is not None else current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        state: CCGuardState = app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "flask_ccguard is not set up on this app: call CCGuard(app) or guard.init_app(app) first."
        ) from None
    return state
