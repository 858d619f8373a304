"""Sender-constrained tokens in the Flask layer: settings, the FAPI 2.0 preset, the request's URL and certificate.

:func:`apply_profile` checks and applies ``CCGUARD_PROFILE`` before the validator
is built; :func:`configure` adds the :class:`~.core.binding.SenderConstraint` to the
validator's pipeline and says which schemes the app challenges with;
:func:`request_url` and :func:`request_certificate` fill the
:class:`~.core.request.HTTPRequest` the ``binding`` step reads.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import Request

from .core.binding import SenderConstraint
from .core.dpop import DPoPVerifier
from .core.dpop_nonce import HmacNonceSource, NonceSource
from .core.errors import ConfigurationError, InvalidToken
from .core.mtls import HEADER_SOURCES, client_certificate
from .core.option_checks_binding import FAPI2_ALGORITHMS
from .core.proxies import Network
from .core.replay_store import DailyNonceSource, SharedNonceSecret, open_replay_store
from .core.request_url import effective_request_url, parse_forwarded_headers
from .core.store import in_process
from .core.validator import TokenValidator
from .responses import BEARER, Scheme

__all__ = ["SenderSettings", "apply_profile", "configure", "request_certificate", "request_url", "server_host"]


@dataclass(frozen=True)
class SenderSettings:
    """What the Flask layer needs for DPoP and certificate-bound tokens."""

    constraint: SenderConstraint
    #: Whether ``Authorization: DPoP`` is read at all (some issuer allows it).
    dpop_scheme: bool
    public_base_url: str | None
    trusted_proxies: tuple[Network, ...]
    #: The forwarding headers read from a trusted proxy (``CCGUARD_FORWARDED_HEADERS``).
    forwarded_headers: frozenset[str]
    client_cert_source: str | None
    nonce: NonceSource | None
    #: The challenges offered (RFC 9449 §7.1: ``DPoP algs="…"`` beside or instead of ``Bearer``).
    schemes: tuple[Scheme, ...]

    def bearer_only_suffices(self, bindings: tuple[object, ...]) -> bool:
        """Whether a ``Bearer`` request may be handed to the binding step as
        :data:`~flask_ccguard.core.request.BEARER_REQUEST`: when our constraint is
        the only binding and no certificate is read, it looks at nothing else."""
        return self.client_cert_source is None and bindings == (self.constraint,)


def _issuer_dicts(settings: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    issuers = settings.get("CCGUARD_ISSUER")
    if isinstance(issuers, Mapping):
        return [issuers]
    if isinstance(issuers, (list, tuple)):
        return [i for i in issuers if isinstance(i, Mapping)]
    return []


def apply_profile(settings: dict[str, Any], explicit: Collection[str] = ()) -> dict[str, Any]:
    """The settings with ``CCGUARD_PROFILE`` applied; conflicts fail here, at start-up.

    ``"fapi2"`` (FAPI 2.0 Security Profile §5.3.4, §5.4.1): tokens only in the
    ``Authorization`` header; PS256, ES256 or EdDSA for tokens and DPoP proofs
    (defaults become these three; anything else is refused); a token must be
    sender-constrained (DPoP, or certificate-bound when a certificate source is
    set). RSA keys under 2048 bits are refused everywhere already.

    :param explicit: the keys the application set (the others hold defaults,
        which the profile replaces).

    :raises ConfigurationError: naming the key that conflicts and the fix.
    """
    if settings.get("CCGUARD_PROFILE") != "fapi2":
        return settings
    out = dict(settings)
    fix = "; remove it or unset CCGUARD_PROFILE"
    for key in ("CCGUARD_ALLOW_QUERY_TOKEN", "CCGUARD_ALLOW_FORM_TOKEN"):
        if out.get(key):
            raise ConfigurationError(
                f"{key} conflicts with CCGUARD_PROFILE='fapi2', which accepts tokens in the Authorization header "
                f"only (FAPI 2.0 §5.3.4){fix}."
            )
    for key in ("CCGUARD_ALGORITHMS", "CCGUARD_DPOP_ALGORITHMS"):
        value = out.get(key)
        if key not in explicit or value is None:
            out[key] = FAPI2_ALGORITHMS
        else:
            algs = [value] if isinstance(value, str) else list(value)
            bad = [a for a in algs if a not in FAPI2_ALGORITHMS]
            if bad:
                raise ConfigurationError(
                    f"{key} holds {bad!r}, which CCGUARD_PROFILE='fapi2' does not allow; use only "
                    f"{list(FAPI2_ALGORITHMS)} (FAPI 2.0 §5.4.1){fix}."
                )
    for index, spec in enumerate(_issuer_dicts(out)):
        given = spec.get("algorithms")
        if given is not None and any(a not in FAPI2_ALGORITHMS for a in ([given] if isinstance(given, str) else given)):
            raise ConfigurationError(
                f"CCGUARD_ISSUER[{index}]['algorithms'] conflicts with CCGUARD_PROFILE='fapi2'; use only "
                f"{list(FAPI2_ALGORITHMS)}."
            )
        # An issuer's own 'dpop' overrides CCGUARD_DPOP for its tokens, so
        # it can switch the only sender constraint off just the same.
        if spec.get("dpop") == "disabled" and out.get("CCGUARD_CLIENT_CERT_SOURCE") is None:
            raise ConfigurationError(
                f"CCGUARD_ISSUER[{index}]['dpop']='disabled' with no CCGUARD_CLIENT_CERT_SOURCE leaves that "
                "issuer's tokens no sender constraint, which CCGUARD_PROFILE='fapi2' requires: allow DPoP for "
                "it or set CCGUARD_CLIENT_CERT_SOURCE."
            )
    if out.get("CCGUARD_DPOP", "allowed") == "disabled" and out.get("CCGUARD_CLIENT_CERT_SOURCE") is None:
        raise ConfigurationError(
            "CCGUARD_DPOP='disabled' with no CCGUARD_CLIENT_CERT_SOURCE leaves no sender constraint, which "
            "CCGUARD_PROFILE='fapi2' requires: allow DPoP or set CCGUARD_CLIENT_CERT_SOURCE."
        )
    return out


def configure(settings: Mapping[str, Any], validator: TokenValidator) -> SenderSettings:
    """Add the ``binding`` step to ``validator``'s pipeline from ``settings``.

    :raises ConfigurationError: for a header certificate source without trusted proxies.
    """
    source = settings["CCGUARD_CLIENT_CERT_SOURCE"]
    proxies = settings["CCGUARD_TRUSTED_PROXIES"]
    if source in HEADER_SOURCES and not proxies:
        raise ConfigurationError(
            f"CCGUARD_CLIENT_CERT_SOURCE {source!r} reads the {HEADER_SOURCES[source]} header, which any "
            "client can send; set CCGUARD_TRUSTED_PROXIES to the addresses or networks of the proxies "
            "that set it, such as ['10.0.0.0/8']."
        )
    cache = settings.get("CCGUARD_CACHE")
    shared = isinstance(cache, str) and not in_process(cache)
    # A shared cache holds the replay store, so a proof accepted by one worker is
    # refused by every other (issue 18); it fails closed (503) when unreachable.
    replay_store = open_replay_store(cache if shared else None, name="CCGUARD_CACHE")
    secret = settings["CCGUARD_DPOP_NONCE"]
    nonce: NonceSource | None = None
    if secret is True and shared:
        # The day's secret from the shared store: every worker agrees.
        nonce = DailyNonceSource(SharedNonceSecret(replay_store), HmacNonceSource)
    elif secret:
        # True without a shared cache: one secret per process (nonces differ between workers).
        nonce = HmacNonceSource(secrets.token_bytes(32) if secret is True else secret)
    algorithms = settings["CCGUARD_DPOP_ALGORITHMS"]
    verifier = DPoPVerifier(
        algorithms,
        iat_past=settings["CCGUARD_DPOP_IAT_WINDOW"],
        replay_store=replay_store,
        nonce_source=nonce,
    )
    modes = {
        spec["issuer"]: spec["dpop"]
        for spec in _issuer_dicts(settings)
        if "dpop" in spec and isinstance(spec.get("issuer"), str)
    }
    constraint = SenderConstraint(
        verifier,
        validator.dpop,
        issuer_modes=modes,
        require_bound=settings.get("CCGUARD_PROFILE") == "fapi2",
    )
    validator.pipeline.add_binding(constraint)
    # The modes in force: each issuer's own, or the validator-wide one.
    all_modes = {modes.get(identifier, validator.dpop) for identifier in validator.issuers}
    dpop_offer: Scheme = ("DPoP", {"algs": " ".join(algorithms)})
    if all_modes == {"disabled"}:
        schemes: tuple[Scheme, ...] = BEARER
    elif all_modes == {"required"}:
        schemes = (dpop_offer,)
    else:
        schemes = (*BEARER, dpop_offer)
    return SenderSettings(
        constraint=constraint,
        dpop_scheme=all_modes != {"disabled"},
        public_base_url=settings["CCGUARD_PUBLIC_BASE_URL"],
        trusted_proxies=proxies,
        forwarded_headers=parse_forwarded_headers(settings["CCGUARD_FORWARDED_HEADERS"]),
        client_cert_source=source,
        nonce=nonce,
        schemes=schemes,
    )


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def server_host(environ: Mapping[str, Any]) -> tuple[str, str]:
    """The server's own scheme and host (``SERVER_NAME``, with ``SERVER_PORT``
    unless it is the scheme's default), as WSGI gives them: never ``Host``."""
    scheme = environ.get("wsgi.url_scheme", "http")
    port = str(environ.get("SERVER_PORT", ""))
    host = str(environ.get("SERVER_NAME", "localhost"))
    if port and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return scheme, host


def request_url(req: Request, sender: SenderSettings) -> str:
    """The URL the client addressed, for ``htu`` (RFC 9449 §4.3 step 9): from the public
    base URL, or a trusted proxy's forwarding headers, else the server's own name;
    never the ``Host`` header (auth0 express-oauth2-jwt-bearer 1.9.1)."""
    environ = req.environ
    scheme, host = server_host(environ)
    # SCRIPT_NAME + PATH_INFO as sent (WSGI decodes them as latin-1).
    raw = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1", "replace")
    path = quote(raw, safe="/:@!$&'()*+,;=-._~%")
    return effective_request_url(
        scheme=scheme,
        server_host=host,
        path=path,
        headers=dict(req.headers.items()),
        remote_addr=req.remote_addr,
        public_base_url=sender.public_base_url,
        trusted_proxies=sender.trusted_proxies,
        forwarded_headers=sender.forwarded_headers,
    )


def request_certificate(req: Request, sender: SenderSettings) -> bytes | None:
    """The client's certificate (DER) from the configured source (RFC 8705 §3), or None.

    A value that cannot be read counts as no certificate: a certificate-bound
    token is then refused (``certificate_missing``) and an unbound one passes.
    """
    if sender.client_cert_source is None:
        return None
    try:
        return client_certificate(sender.client_cert_source, req.environ, req.remote_addr, sender.trusted_proxies)
    except InvalidToken:
        return None
