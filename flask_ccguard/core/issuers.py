"""Per-issuer settings: each issuer's options checked once, at start-up, into an :class:`IssuerEntry`.

Every message names the option as the user wrote it (``CCGUARD_AUDIENCE``,
``CCGUARD_ISSUER[1]['audience']``) and says how to fix it. Nothing here runs
per request; :mod:`.validator` holds the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

from .claims import ClaimRules, canonical_uri
from .errors import ConfigurationError
from .fetch.discovery import EndpointFinder
from .fetch.http import HTTPClient, check_url
from .introspection import Introspector
from .jwks import KeySet
from .option_checks import DEFAULT_TOKEN_TYPES, non_negative, normalize_typ, positive_int
from .options import OPTIONS
from .tenants import IssuerTemplate

__all__ = [
    "DEFAULT_TOKEN_TYPES",
    "ISSUER_ONLY_OPTIONS",
    "PER_ISSUER_OPTIONS",
    "IssuerEntry",
    "build_issuer",
    "issuer_specs",
    "non_negative",
    "normalize_typ",
    "positive_int",
]

#: Settings only an issuer's dict has (they describe one issuer, so there is no validator-wide value).
ISSUER_ONLY_OPTIONS = frozenset({"tenants", "introspection"})
#: Options a per-issuer dict may set (from :data:`.options.OPTIONS`); the rest apply to the whole validator.
PER_ISSUER_OPTIONS = frozenset(o.name for o in OPTIONS.values() if o.per_issuer) | ISSUER_ONLY_OPTIONS


class IssuerEntry:
    """Everything needed to check one issuer's tokens, resolved at start-up."""

    __slots__ = ("algorithms", "introspected_rules", "introspector", "keys", "rules", "template", "token_types")

    def __init__(
        self,
        rules: ClaimRules,
        algorithms: frozenset[str],
        keys: KeySet,
        token_types: frozenset[str | None],
        template: IssuerTemplate | None = None,
        introspector: Introspector | None = None,
    ) -> None:
        self.rules = rules
        self.algorithms = algorithms
        self.keys = keys
        self.token_types = token_types
        self.template = template
        self.introspector = introspector
        # RFC 7662 §2.2 makes aud and iat optional in an introspection answer.
        # The endpoint vouches that the token is an access token (no ID-token claims check).
        self.introspected_rules = rules.replace(require_iat=False, require_aud=False, id_token_claims=())


def build_issuer(
    spec: Mapping[str, Any],
    defaults: Mapping[str, Any],
    label: str,
    *,
    option_name: Callable[[str], str],
    http: HTTPClient,
    clock: Callable[[], float],
) -> IssuerEntry:
    """Check one issuer's settings (its dict over the validator-wide ``defaults``).

    :param label: how the issuer is named in error messages.
    :raises ConfigurationError: naming the setting at fault and the fix.
    """
    unknown = set(spec) - PER_ISSUER_OPTIONS - {"issuer"}
    if unknown:
        raise ConfigurationError(
            f"{label}: unknown setting(s) {sorted(unknown)}; per-issuer settings are "
            f"'issuer' and {sorted(PER_ISSUER_OPTIONS)}."
        )
    opts = dict(defaults)
    opts.update(spec)
    resource = opts.pop("resource", None)
    # RFC 8707 §2 / RFC 9068 §4: without an audience of its own the API is its
    # resource, compared canonically (case, default port, trailing slash).
    canonical = opts.get("audience") is None and resource is not None
    if canonical:
        opts["audience"] = canonical_uri(resource)
    in_dict = isinstance(spec, Mapping) and len(spec) > 1

    def name(option: str) -> str:
        return f"{label}[{option!r}]" if in_dict and option in spec else option_name(option)

    iss = spec.get("issuer")
    if not isinstance(iss, str) or not iss.strip():
        raise ConfigurationError(f"{label} must be the issuer identifier (the exact 'iss' value of its tokens).")
    template = IssuerTemplate.parse(iss, spec.get("tenants"), label, name("tenants"))
    # Each per-issuer option through its one check (options.py), named as the user wrote it.
    v = {o: OPTIONS[o].check(opts[o], name(o)) for o in OPTIONS if o in PER_ISSUER_OPTIONS}
    jwks = v["jwks_uri"]
    disco = v["discovery_url"]
    if jwks is not None:
        check_url(jwks, name("jwks_uri"))
    elif disco is not None:
        check_url(disco, name("discovery_url"))
    elif template is not None:
        raise ConfigurationError(
            f"{label} {iss!r} is a multi-tenant template: set its discovery_url to the multi-tenant "
            "metadata (e.g. 'https://login.microsoftonline.com/organizations/v2.0/.well-known/"
            "openid-configuration') or its jwks_uri; a template cannot be discovered by itself."
        )
    else:
        try:
            check_url(iss, label)
        except ConfigurationError:
            raise ConfigurationError(
                f"{label} {iss!r} cannot be discovered: use an https:// issuer "
                f"(http only for loopback), or set {name('jwks_uri')}."
            ) from None
    rules = ClaimRules(
        issuer=iss,
        audiences=v["audience"],
        leeway=v["leeway"],
        require_iat=v["require_iat"],
        max_token_age=v["max_token_age"],
        roles_claim=v["roles_claim"],
        scopes_claim=v["scopes_claim"],
        id_token_claims=v["id_token_claims"],
        roles_delimiter=v["roles_delimiter"],
        canonical_audience=canonical,
    )
    cooldown = v["jwks_refresh_cooldown"]
    cross_origin = v["allow_cross_origin_metadata"]
    algs = v["algorithms"]
    keys = KeySet(
        http,
        iss,
        algs,
        jwks_uri=jwks,
        discovery_url=disco,
        cooldown=cooldown,
        cross_origin=cross_origin,
        max_age=v["jwks_max_age"],
        stale_limit=v["jwks_stale_limit"],
    )
    introspector = None
    if spec.get("introspection") is not None:
        if template is not None:
            raise ConfigurationError(
                f"{label}: introspection cannot be set on a {{tenantid}} template; an opaque token "
                "names no tenant. Configure each tenant's issuer with its own introspection."
            )
        options = Introspector.check_options(spec["introspection"], name("introspection"))
        # Discovered when first needed; a failure waits out the key-fetch cooldown.
        finder = EndpointFinder(
            http, iss, disco, "introspection_endpoint", cooldown=cooldown, cross_origin=cross_origin, clock=clock
        )
        introspector = Introspector(http, options, resolve_endpoint=finder, clock=clock)
    return IssuerEntry(
        rules,
        algs,
        keys,
        v["token_types"],
        template=template,
        introspector=introspector,
    )


# -- the issuer option ---------------------------------------------------------------------


def issuer_specs(issuer: Any, name: str) -> list[Mapping[str, Any]]:
    if isinstance(issuer, (str, Mapping)):
        items: list[Any] = [issuer]
    elif isinstance(issuer, (list, tuple)) and issuer:
        items = list(issuer)
    else:
        raise ConfigurationError(
            f"{name} is required: the identifier of the issuer whose tokens are accepted "
            "(e.g. 'https://login.microsoftonline.com/<tenant>/v2.0'), or a list of them."
        )
    specs: list[Mapping[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            specs.append({"issuer": item})
        elif isinstance(item, Mapping):
            specs.append(item)
        else:
            raise ConfigurationError(f"{name} entries must be issuer identifiers or dicts of per-issuer settings.")
    return specs
