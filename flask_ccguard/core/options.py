"""Every option declared once: its name, default, documentation, checks, scope and layer.

``TokenValidator``'s keywords, the ``CCGUARD_*`` keys (:mod:`flask_ccguard.config`),
the keys of per-issuer dicts, the configuration table of the docs
(:func:`option_table_rst`, rendered in ``docs/configuration.rst``) and the configuration error messages all come from
:data:`OPTIONS`. Adding an option is one :class:`Option` here plus its use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable

from . import option_checks as c
from . import option_checks_binding as b
from .fetch.discovery import check_cross_origin

__all__ = ["OPTIONS", "Option", "option_table_rst"]


@dataclass(frozen=True)
class Option:
    """One setting of flask-ccguard."""

    #: Keyword and per-issuer key, e.g. ``"jwks_uri"``.
    name: str
    default: Any
    #: One short reST paragraph.
    doc: str
    #: May be set in an issuer's dict (``CCGUARD_ISSUER=[{"issuer": ..., name: ...}]``).
    per_issuer: bool
    #: Who reads it: ``"validator"``, ``"extension"`` or ``"client"``.
    layer: str
    #: ``(value, display name) -> normalized value``; raises ConfigurationError naming the display name and the fix.
    check: Callable[[Any, str], Any]

    @property
    def key(self) -> str:
        """The Flask config key: ``"CCGUARD_" + name.upper()``."""
        return "CCGUARD_" + self.name.upper()


def _o(
    name: str,
    default: Any,
    doc: str,
    check: Callable[[Any, str], Any],
    *,
    issuer: bool = False,
    layer: str = "validator",
) -> Option:
    return Option(name, default, doc, issuer, layer, check)


_ALL = (
    _o(
        "issuer",
        None,
        "Required. The issuer identifier (the exact ``iss`` of its tokens), or a list of identifiers "
        "or of dicts of per-issuer settings (see `Issuer recipes`_).",
        c.anything,
    ),
    _o(
        "audience",
        None,
        "Required. The API's identifier (or a list); a token's ``aud`` must name one.",
        c.audiences,
        issuer=True,
    ),
    _o(
        "algorithms",
        ("RS256",),
        "Allowed JWS algorithms; asymmetric only, ``none`` and ``HS*`` are refused.",
        c.algorithms,
        issuer=True,
    ),
    _o(
        "leeway",
        60,
        "Seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat`` (600 at most).",
        c.leeway,
        issuer=True,
    ),
    _o(
        "resource",
        None,
        "The API's canonical resource identifier (RFC 8707 §2; an https URI in lower case, no fragment, "
        "e.g. ``https://api.example.com``): the extension serves its metadata (RFC 9728, see "
        "`Protected resource metadata`_), names it in every challenge, and, when ``CCGUARD_AUDIENCE`` "
        "is unset, tokens must name it in ``aud`` (compared canonically).",
        c.resource,
    ),
    _o("require_iat", True, "Refuse tokens without an ``iat`` claim.", c.boolean, issuer=True),
    _o(
        "jwks_uri",
        None,
        "The issuer's JWKS URL; ``None`` discovers it from the issuer's metadata.",
        c.url_or_none,
        issuer=True,
    ),
    _o(
        "discovery_url",
        None,
        "An explicit metadata URL; ``None`` tries ``{issuer}/.well-known/openid-configuration``, then RFC 8414.",
        c.url_or_none,
        issuer=True,
    ),
    _o(
        "roles_claim",
        "roles",
        "The claim holding the roles; a dotted path such as ``realm_access.roles`` works.",
        c.claim_path,
        issuer=True,
    ),
    _o(
        "roles_delimiter",
        None,
        'What separates the roles of a roles claim that is one string (``","`` for '
        '``"guest,archivist_administrator"``; parts are stripped); ``None``: whitespace. Arrays are never split.',
        c.delimiter,
        issuer=True,
    ),
    _o(
        "scopes_claim",
        None,
        "The claim holding the scopes; ``None`` reads ``scope``, then ``scp``.",
        c.scopes_claim,
        issuer=True,
    ),
    _o(
        "http_timeout",
        5,
        "Seconds for each request to the issuer (and for one whole discovery, all its metadata URLs together).",
        c.timeout,
    ),
    _o(
        "jwks_refresh_cooldown",
        30,
        "Seconds between refetches for an unknown ``kid`` (and between retries of a failed fetch or discovery).",
        c.non_negative,
        issuer=True,
    ),
    _o(
        "jwks_max_age",
        600,
        "Seconds (or the issuer's longer ``Cache-Control: max-age``, counted up to 86400 s "
        "or the stale limit if lower) before the key set is refreshed.",
        c.non_negative,
        issuer=True,
    ),
    _o(
        "jwks_stale_limit",
        86400,
        "Seconds that cached keys keep serving while refreshes fail.",
        c.non_negative,
        issuer=True,
    ),
    _o("max_token_bytes", 16384, "The longest token accepted, in bytes.", c.positive_int),
    _o(
        "token_types",
        None,
        "Accepted ``typ`` header values; ``None``: absent, ``JWT``, ``at+jwt`` or "
        '``application/at+jwt``; ``["at+jwt"]`` to be strict.',
        c.token_types,
        issuer=True,
    ),
    _o(
        "max_token_age",
        None,
        "Refuse tokens issued more than this many seconds ago; ``None``: no limit.",
        c.optional_seconds,
        issuer=True,
    ),
    _o(
        "id_token_claims",
        None,
        "Claims that mark a payload as an OpenID Connect ID token, which is refused; "
        "``None``: ``nonce``, ``at_hash``, ``c_hash``, ``s_hash``; a list replaces these names "
        '(``["at_hash", "c_hash", "s_hash"]`` for Keycloak before 25, whose access tokens carry ``nonce``); '
        "``[]`` turns the check off.",
        c.id_token_claims,
        issuer=True,
    ),
    _o(
        "allow_cross_origin_metadata",
        False,
        "Origins besides the issuer's that discovered endpoints may be on: "
        '``False``, ``True`` (any https origin) or a list such as ``["https://www.googleapis.com"]``.',
        check_cross_origin,
        issuer=True,
    ),
    _o(
        "token_cache_size",
        1024,
        "Verified tokens remembered so that a repeated token skips the signature check "
        "(see `Performance`_); ``0`` turns the cache off.",
        c.cache_size,
    ),
    _o(
        "cache",
        None,
        "Where fetched metadata and key sets are cached: ``None`` (this process), ``file:///dir`` "
        "or ``redis://host:port/db`` to share them between workers (see `Deployment`_).",
        c.anything,
    ),
    _o(
        "dpop",
        "allowed",
        '``"disabled"``, ``"allowed"`` or ``"required"``: whether ``Authorization: DPoP`` with a proof is '
        'accepted (RFC 9449), and, when ``"required"``, whether it is the only scheme (see `Sender-constrained tokens`_).',
        b.dpop_mode,
        issuer=True,
    ),
    _o(
        "dpop_algorithms",
        ("ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "EdDSA"),
        "The DPoP proof algorithms accepted (asymmetric only), offered as ``algs`` in the ``DPoP`` challenge.",
        b.dpop_algorithms,
        layer="extension",
    ),
    _o(
        "dpop_iat_window",
        60,
        "Seconds a DPoP proof's ``iat`` may lie in the past (10 s ahead are allowed for fast clocks); "
        "the replay store keeps each proof this long.",
        b.dpop_iat_window,
        layer="extension",
    ),
    _o(
        "dpop_nonce",
        False,
        "Require server nonces in DPoP proofs (RFC 9449 §9): ``True`` (a secret per process, or one per day "
        "shared through ``CCGUARD_CACHE`` when set) or a secret of at least 32 bytes shared by every worker.",
        b.dpop_nonce,
        layer="extension",
    ),
    _o(
        "public_base_url",
        None,
        "Where the API's root is reachable, e.g. ``https://api.example.com/v1``: the base of the URL a DPoP "
        "proof's ``htu`` must name; ``None``: the server's own name, or a trusted proxy's forwarding headers.",
        b.public_base_url,
        layer="extension",
    ),
    _o(
        "trusted_proxies",
        (),
        "Addresses or networks of the proxies whose forwarding and client-certificate headers are read, "
        'e.g. ``["10.0.0.0/8"]``; headers from any other peer are ignored.',
        b.trusted_proxies,
        layer="extension",
    ),
    _o(
        "forwarded_headers",
        "x-forwarded",
        'The forwarding headers the trusted proxies write, the only ones read: ``"x-forwarded"`` '
        '(``X-Forwarded-Proto``/``-Host``), ``"forwarded"`` (RFC 7239) or a list such as '
        '``["x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix"]``; the proxy must overwrite them.',
        b.forwarded_headers,
        layer="extension",
    ),
    _o(
        "client_cert_source",
        None,
        'Where the client certificate of a certificate-bound token comes from (RFC 8705): ``"environ"`` '
        '(``SSL_CLIENT_CERT``), or a trusted proxy\'s header: ``"rfc9440"``, ``"envoy"``, ``"nginx"``, '
        '``"traefik"``, ``"aws-alb"``; ``None``: certificate-bound tokens are refused.',
        b.client_cert_source,
        layer="extension",
    ),
    _o(
        "profile",
        None,
        '``"fapi2"``: the FAPI 2.0 resource-server preset (header-only tokens, PS256/ES256/EdDSA, '
        "sender-constrained tokens required); conflicting settings fail at start-up.",
        b.profile,
        layer="extension",
    ),
    _o(
        "realm",
        None,
        "The ``realm`` of ``WWW-Authenticate`` challenges; ``None``: the app's import name.",
        c.realm,
        layer="extension",
    ),
    _o(
        "allow_query_token",
        False,
        "Accept ``?access_token=`` in the URL (RFC 6750 §2.3); tokens in URLs end up in logs and histories.",
        c.boolean,
        layer="extension",
    ),
    _o(
        "allow_form_token",
        False,
        "Accept ``access_token`` in a form-encoded body (RFC 6750 §2.2).",
        c.boolean,
        layer="extension",
    ),
    _o(
        "scope_hierarchy",
        None,
        "Scopes that imply others: ``{broad: [narrower, ...]}`` or a callable ``scope -> implied scopes``; "
        "``@require_scopes`` and ``scopes_supported`` follow it.",
        c.scope_hierarchy,
        layer="extension",
    ),
    _o(
        "resource_name",
        None,
        "``resource_name`` of the metadata document (RFC 9728 §2).",
        c.text_or_none,
        layer="extension",
    ),
    _o(
        "resource_documentation",
        None,
        "``resource_documentation`` of the metadata document: a URL of the API's documentation.",
        c.uri_or_none,
        layer="extension",
    ),
    _o(
        "resource_policy_uri",
        None,
        "``resource_policy_uri`` of the metadata document.",
        c.uri_or_none,
        layer="extension",
    ),
    _o("resource_tos_uri", None, "``resource_tos_uri`` of the metadata document.", c.uri_or_none, layer="extension"),
    _o(
        "warm_up",
        False,
        "Fetch each fixed issuer's metadata and keys in ``init_app``: ``True`` logs the "
        'outcome; ``"require"`` also raises ``ConfigurationError`` if one fails.',
        c.warm_up,
        layer="extension",
    ),
)

#: Every option by name, in documentation order.
OPTIONS: Mapping[str, Option] = MappingProxyType({o.name: o for o in _ALL})


def _default(option: Option) -> str:
    value = option.default
    if isinstance(value, tuple):
        value = list(value)
    return f"``{value!r}``".replace("'", '"')


def option_table_rst() -> str:
    """The configuration table (reST) of the extension's and validator's options."""
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 30 15 55",
        "",
        "   * - key",
        "     - default",
        "     - meaning",
    ]
    for option in OPTIONS.values():
        if option.layer == "client":
            continue
        scope = " Also per issuer." if option.per_issuer else ""
        lines += [f"   * - ``{option.key}``", f"     - {_default(option)}", f"     - {option.doc}{scope}"]
    return "\n".join(lines) + "\n"
