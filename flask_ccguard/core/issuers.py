"""Per-issuer settings: each issuer's options checked once, at start-up, into an :class:`IssuerEntry`.

Every message names the option as the user wrote it (``CCGUARD_AUDIENCE``,
``CCGUARD_ISSUER[1]['audience']``) and says how to fix it. Nothing here runs
per request; :mod:`.validator` holds the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

from .claims import ID_TOKEN_CLAIMS, ClaimRules
from .errors import ConfigurationError
from .fetch.discovery import EndpointFinder, check_cross_origin
from .fetch.http import HTTPClient, check_url
from .introspection import Introspector
from .jwks import KeySet
from .keys import ASYMMETRIC_ALGORITHMS
from .numbers import bounded_number
from .tenants import IssuerTemplate

__all__ = [
    "DEFAULT_TOKEN_TYPES",
    "PER_ISSUER_OPTIONS",
    "IssuerEntry",
    "build_issuer",
    "issuer_specs",
    "non_negative",
    "normalize_typ",
    "positive_int",
]

#: Options a per-issuer dict may set; the rest apply to the whole validator.
PER_ISSUER_OPTIONS = frozenset(
    {
        "audience",
        "algorithms",
        "leeway",
        "require_iat",
        "jwks_uri",
        "discovery_url",
        "roles_claim",
        "roles_delimiter",
        "scopes_claim",
        "jwks_refresh_cooldown",
        "jwks_max_age",
        "jwks_stale_limit",
        "token_types",
        "max_token_age",
        "id_token_claims",
        "tenants",
        "introspection",
        "allow_cross_origin_metadata",
    }
)

# RFC 9068 §2.1 asks for "at+jwt"; most issuers still send "JWT" or nothing.
DEFAULT_TOKEN_TYPES: frozenset[str | None] = frozenset({None, "jwt", "at+jwt"})


def normalize_typ(typ: str) -> str:
    # RFC 7515 §4.1.9: a media type, case-insensitive, "application/" optional.
    typ = typ.lower()
    return typ[len("application/") :] if typ.startswith("application/") else typ


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
        self.introspected_rules = ClaimRules(
            issuer=rules.issuer,
            audiences=rules.audiences,
            leeway=rules.leeway,
            require_iat=False,
            max_token_age=rules.max_token_age,
            roles_claim=rules.roles_claim,
            scopes_claim=rules.scopes_claim,
            require_aud=False,
            # The endpoint vouches that the token is an access token.
            id_token_claims=(),
            roles_delimiter=rules.roles_delimiter,
        )


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
    in_dict = isinstance(spec, Mapping) and len(spec) > 1

    def name(option: str) -> str:
        return f"{label}[{option!r}]" if in_dict and option in spec else option_name(option)

    iss = spec.get("issuer")
    if not isinstance(iss, str) or not iss.strip():
        raise ConfigurationError(f"{label} must be the issuer identifier (the exact 'iss' value of its tokens).")
    template = IssuerTemplate.parse(iss, spec.get("tenants"), label, name("tenants"))
    audiences = _audiences(opts["audience"], name("audience"))
    algs = _algorithms(opts["algorithms"], name("algorithms"))
    leeway = non_negative(opts["leeway"], name("leeway"))
    if leeway > 600:
        raise ConfigurationError(f"{name('leeway')} is {leeway} seconds; clock skew beyond 600 seconds defeats 'exp'.")
    jwks = opts["jwks_uri"]
    disco = opts["discovery_url"]
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
    roles_claim = opts["roles_claim"]
    if not isinstance(roles_claim, str) or not roles_claim:
        raise ConfigurationError(
            f"{name('roles_claim')} must be a claim name or dotted path such as 'realm_access.roles'."
        )
    roles_delimiter = opts["roles_delimiter"]
    if roles_delimiter is not None and (not isinstance(roles_delimiter, str) or not roles_delimiter):
        raise ConfigurationError(
            f"{name('roles_delimiter')} must be None (a string of roles is split on spaces) "
            "or the separator between the roles of one string, such as ','."
        )
    scopes_claim = opts["scopes_claim"]
    if scopes_claim is not None and (not isinstance(scopes_claim, str) or not scopes_claim):
        raise ConfigurationError(f"{name('scopes_claim')} must be a claim name, or None for 'scope' then 'scp'.")
    max_age = opts["max_token_age"]
    if max_age is not None:
        max_age = non_negative(max_age, name("max_token_age"))
    rules = ClaimRules(
        issuer=iss,
        audiences=audiences,
        leeway=leeway,
        require_iat=_bool(opts["require_iat"], name("require_iat")),
        max_token_age=max_age,
        roles_claim=roles_claim,
        scopes_claim=scopes_claim,
        id_token_claims=_id_token_claims(opts["id_token_claims"], name("id_token_claims")),
        roles_delimiter=roles_delimiter,
    )
    cooldown = non_negative(opts["jwks_refresh_cooldown"], name("jwks_refresh_cooldown"))
    cross_origin = check_cross_origin(opts["allow_cross_origin_metadata"], name("allow_cross_origin_metadata"))
    keys = KeySet(
        http,
        iss,
        algs,
        jwks_uri=jwks,
        discovery_url=disco,
        cooldown=cooldown,
        cross_origin=cross_origin,
        max_age=non_negative(opts["jwks_max_age"], name("jwks_max_age")),
        stale_limit=non_negative(opts["jwks_stale_limit"], name("jwks_stale_limit")),
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
        _token_types(opts["token_types"], name("token_types")),
        template=template,
        introspector=introspector,
    )


# -- option checks ---------------------------------------------------------------------


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


def _audiences(value: Any, name: str) -> frozenset[str]:
    if isinstance(value, str) and value:
        return frozenset((value,))
    if isinstance(value, (list, tuple, set, frozenset)) and value and all(isinstance(v, str) and v for v in value):
        return frozenset(value)
    raise ConfigurationError(
        f"{name} is required to check the 'aud' claim: set it to your API's identifier "
        "(e.g. 'https://api.example.com' or its client id), or a list of them."
    )


def _algorithms(value: Any, name: str) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple, set, frozenset)) or not value:
        raise ConfigurationError(f"{name} must be a non-empty list such as ['RS256'].")
    for alg in value:
        if not isinstance(alg, str):
            raise ConfigurationError(f"{name} must hold algorithm names such as 'RS256'.")
        if alg.lower() == "none" or alg.upper().startswith("HS"):
            raise ConfigurationError(
                f"{name} contains {alg!r}: unsigned and HMAC tokens are refused because "
                "a resource server must not hold the issuer's signing secret; use e.g. 'RS256'."
            )
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise ConfigurationError(
                f"{name} contains {alg!r}, which is not supported; choose from {sorted(ASYMMETRIC_ALGORITHMS)}."
            )
    return frozenset(value)


def _token_types(value: Any, name: str) -> frozenset[str | None]:
    if value is None:
        return DEFAULT_TOKEN_TYPES
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, (list, tuple, set, frozenset))
        or not value
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise ConfigurationError(f"{name} must be None or a list of 'typ' values such as ['at+jwt'].")
    return frozenset(normalize_typ(v) for v in value)


def _id_token_claims(value: Any, name: str) -> frozenset[str]:
    if value is None:
        return ID_TOKEN_CLAIMS
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigurationError(
            f"{name} must be None (refuse tokens with {sorted(ID_TOKEN_CLAIMS)}) or a list of claim "
            "names, e.g. ['at_hash', 'c_hash', 's_hash'] for an issuer that puts 'nonce' in access tokens, "
            "or [] to turn the check off."
        )
    return frozenset(value)


def non_negative(value: Any, name: str) -> float:
    seconds = bounded_number(value)  # never OverflowError, whatever the number
    if seconds is None or seconds < 0:
        raise ConfigurationError(f"{name} must be a number of seconds, 0 or more (got {value!r}).")
    return seconds


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(f"{name} must be a whole number above 0 (got {value!r}).")
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False (got {value!r}).")
    return value
