"""TokenValidator: checks a JWT access token (RFC 9068) from configured issuers.

Options are checked once, in ``__init__``; ``validate()`` then parses the
token once, selects the issuer by the token's unverified ``iss`` (only among
configured issuers, before any key or network work), checks the header,
verifies the signature with a cached key, and checks the claims.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable, Union

from cachecontrol.cache import BaseCache

from .claims import ClaimRules, VerifiedToken, check_claims
from .errors import CCGuardError, ConfigurationError, InvalidToken
from .http import HTTPClient, check_url
from .jwks import KeySet
from .jws import parse_compact
from .keys import ASYMMETRIC_ALGORITHMS

__all__ = ["TokenValidator"]

log = logging.getLogger("flask_ccguard")

IssuerSpec = Union[str, Mapping[str, Any]]

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
        "scopes_claim",
        "jwks_refresh_cooldown",
        "jwks_max_age",
        "jwks_stale_limit",
        "token_types",
        "max_token_age",
    }
)

# RFC 9068 §2.1 asks for "at+jwt"; most issuers still send "JWT" or nothing.
DEFAULT_TOKEN_TYPES: frozenset[str | None] = frozenset({None, "jwt", "at+jwt"})
# RFC 7515 §4.1.11: we implement no extension, so any critical one is refused.
_UNDERSTOOD_CRIT: frozenset[str] = frozenset()
_ABSENT = object()


def _normalize_typ(typ: str) -> str:
    # RFC 7515 §4.1.9: a media type, case-insensitive, "application/" optional.
    typ = typ.lower()
    return typ[len("application/") :] if typ.startswith("application/") else typ


class _Issuer:
    """Everything needed to check one issuer's tokens, resolved at start-up."""

    __slots__ = ("algorithms", "keys", "rules", "token_types")

    def __init__(
        self, rules: ClaimRules, algorithms: frozenset[str], keys: KeySet, token_types: frozenset[str | None]
    ) -> None:
        self.rules = rules
        self.algorithms = algorithms
        self.keys = keys
        self.token_types = token_types


class TokenValidator:
    """Validates client-credentials access tokens.

    :param issuer: the issuer identifier, or a list of identifiers or of
        dicts of per-issuer settings (``issuer`` plus any of
        :data:`PER_ISSUER_OPTIONS`).
    :param audience: the audience (or audiences) a token must name in ``aud``.
    :param algorithms: the allowed JWS algorithms; asymmetric only.
    :param leeway: seconds of clock skew allowed on ``exp``, ``nbf``, ``iat``.
    :param require_iat: refuse tokens without ``iat``.
    :param jwks_uri: the issuer's JWKS URL; skips discovery.
    :param discovery_url: an explicit metadata URL instead of the well-knowns.
    :param roles_claim: claim (or dotted path) holding roles.
    :param scopes_claim: claim holding scopes (default ``scope``, then ``scp``).
    :param http_timeout: seconds for each outbound request, start to finish.
    :param jwks_refresh_cooldown: seconds between refetches for unknown ``kid``.
    :param jwks_max_age: seconds before the key set is refreshed.
    :param jwks_stale_limit: seconds cached keys keep serving while refreshes fail.
    :param max_token_bytes: longest token accepted.
    :param token_types: accepted ``typ`` values (default: absent, ``JWT``, ``at+jwt``).
    :param max_token_age: refuse tokens issued longer ago than this (seconds).
    :param cache: a CacheControl cache shared by the HTTP session.
    :param clock: returns the time in seconds since the epoch (for tests).
    :raises ConfigurationError: for any missing or wrong option.
    """

    def __init__(
        self,
        issuer: IssuerSpec | Sequence[IssuerSpec],
        audience: str | Sequence[str] | None = None,
        algorithms: Iterable[str] = ("RS256",),
        leeway: float = 60,
        *,
        require_iat: bool = True,
        jwks_uri: str | None = None,
        discovery_url: str | None = None,
        roles_claim: str = "roles",
        scopes_claim: str | None = None,
        http_timeout: float = 5,
        jwks_refresh_cooldown: float = 30,
        jwks_max_age: float = 600,
        jwks_stale_limit: float = 86400,
        max_token_bytes: int = 16384,
        token_types: Iterable[str] | None = None,
        max_token_age: float | None = None,
        cache: BaseCache | None = None,
        clock: Callable[[], float] | None = None,
        option_name: Callable[[str], str] = str,
    ) -> None:
        self._name = option_name
        self._clock = clock or time.time
        self.max_token_bytes = _positive_int(max_token_bytes, option_name("max_token_bytes"))
        timeout = _non_negative(http_timeout, option_name("http_timeout"))
        if timeout == 0:
            raise ConfigurationError(f"{option_name('http_timeout')} must be more than 0 seconds.")
        self.http = HTTPClient(timeout=timeout, cache=cache)
        defaults: dict[str, Any] = {
            "audience": audience,
            "algorithms": algorithms,
            "leeway": leeway,
            "require_iat": require_iat,
            "jwks_uri": jwks_uri,
            "discovery_url": discovery_url,
            "roles_claim": roles_claim,
            "scopes_claim": scopes_claim,
            "jwks_refresh_cooldown": jwks_refresh_cooldown,
            "jwks_max_age": jwks_max_age,
            "jwks_stale_limit": jwks_stale_limit,
            "token_types": token_types,
            "max_token_age": max_token_age,
        }
        specs = _issuer_specs(issuer, option_name("issuer"))
        self._issuers: dict[str, _Issuer] = {}
        for index, spec in enumerate(specs):
            label = (
                option_name("issuer")
                if len(specs) == 1 and isinstance(issuer, (str, Mapping))
                else f"{option_name('issuer')}[{index}]"
            )
            entry = self._build_issuer(spec, defaults, label)
            if entry.rules.issuer in self._issuers:
                raise ConfigurationError(
                    f"{label}: issuer {entry.rules.issuer!r} is configured twice; list each issuer once."
                )
            self._issuers[entry.rules.issuer] = entry

    # -- configuration ---------------------------------------------------------------

    def _build_issuer(self, spec: Mapping[str, Any], defaults: Mapping[str, Any], label: str) -> _Issuer:
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
            return f"{label}[{option!r}]" if in_dict and option in spec else self._name(option)

        iss = spec.get("issuer")
        if not isinstance(iss, str) or not iss.strip():
            raise ConfigurationError(f"{label} must be the issuer identifier (the exact 'iss' value of its tokens).")
        audiences = _audiences(opts["audience"], name("audience"))
        algs = _algorithms(opts["algorithms"], name("algorithms"))
        leeway = _non_negative(opts["leeway"], name("leeway"))
        if leeway > 600:
            raise ConfigurationError(
                f"{name('leeway')} is {leeway} seconds; clock skew beyond 600 seconds defeats 'exp'."
            )
        jwks = opts["jwks_uri"]
        disco = opts["discovery_url"]
        if jwks is not None:
            check_url(jwks, name("jwks_uri"))
        elif disco is not None:
            check_url(disco, name("discovery_url"))
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
        scopes_claim = opts["scopes_claim"]
        if scopes_claim is not None and (not isinstance(scopes_claim, str) or not scopes_claim):
            raise ConfigurationError(f"{name('scopes_claim')} must be a claim name, or None for 'scope' then 'scp'.")
        max_age = opts["max_token_age"]
        if max_age is not None:
            max_age = _non_negative(max_age, name("max_token_age"))
        rules = ClaimRules(
            issuer=iss,
            audiences=audiences,
            leeway=leeway,
            require_iat=_bool(opts["require_iat"], name("require_iat")),
            max_token_age=max_age,
            roles_claim=roles_claim,
            scopes_claim=scopes_claim,
        )
        keys = KeySet(
            self.http,
            iss,
            algs,
            jwks_uri=jwks,
            discovery_url=disco,
            cooldown=_non_negative(opts["jwks_refresh_cooldown"], name("jwks_refresh_cooldown")),
            max_age=_non_negative(opts["jwks_max_age"], name("jwks_max_age")),
            stale_limit=_non_negative(opts["jwks_stale_limit"], name("jwks_stale_limit")),
        )
        return _Issuer(rules, algs, keys, _token_types(opts["token_types"], name("token_types")))

    @property
    def issuers(self) -> tuple[str, ...]:
        """The configured issuer identifiers."""
        return tuple(self._issuers)

    def key_set(self, issuer: str) -> KeySet:
        """The key set of a configured issuer (for stats and tests)."""
        return self._issuers[issuer].keys

    # -- validation ------------------------------------------------------------------

    def validate(self, token: str | bytes) -> VerifiedToken:
        """Check ``token`` and return its verified claims.

        :raises InvalidToken: (or :class:`ExpiredToken`) if the token is not
            acceptable; ``reason`` and ``claim`` say why.
        :raises KeysUnavailable: if the issuer's keys cannot be had.
        """
        try:
            return self._validate(token)
        except CCGuardError:
            raise
        except Exception as exc:  # a bug must not turn into a 500 or a leak
            log.error("flask_ccguard: unexpected %s while validating a token; refused", type(exc).__name__)
            log.debug("flask_ccguard: validation failure detail", exc_info=True)
            raise InvalidToken(reason="internal") from None

    def _validate(self, token: str | bytes) -> VerifiedToken:
        parsed = parse_compact(token, self.max_token_bytes)
        header, claims = parsed.header, parsed.payload
        iss = claims.get("iss")
        entry = self._issuers.get(iss) if isinstance(iss, str) else None
        if entry is None:
            raise InvalidToken("The access token is from an unexpected issuer.", reason="issuer", claim="iss")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in entry.algorithms:
            raise InvalidToken("The token's signing algorithm is not allowed.", reason="algorithm")
        self._check_header(header, entry)
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("The token's key id is malformed.", reason="malformed")
        signing_input, signature = parsed.signing_input, parsed.signature
        for key in entry.keys.candidates(kid, alg):
            if key.verify(alg, signing_input, signature):
                break
        else:
            raise InvalidToken("The token's signature is invalid.", reason="bad_signature")
        check_claims(claims, entry.rules, self._clock())
        return VerifiedToken(claims, header, entry.rules)

    @staticmethod
    def _check_header(header: Mapping[str, Any], entry: _Issuer) -> None:
        # RFC 7515 §4.1.11: if present, a non-empty array of strings naming
        # extensions we understand. Checked member by member, so a nested
        # array or object (unhashable) is refused rather than crashing set().
        crit = header.get("crit", _ABSENT)
        if crit is not _ABSENT and (
            not isinstance(crit, list)
            or not crit
            or not all(isinstance(c, str) and c in _UNDERSTOOD_CRIT for c in crit)
        ):
            raise InvalidToken("The token requires an unsupported extension ('crit').", reason="crit")
        if "b64" in header and header["b64"] is not True:
            raise InvalidToken("Unencoded payloads (RFC 7797) are not supported.", reason="crit")
        if "nonce" in header:
            # Microsoft first-party tokens (e.g. for Graph): signed over a hashed
            # nonce in a proprietary way, and never meant for this API.
            raise InvalidToken(
                "The token is a Microsoft first-party token (it has a 'nonce' header) "
                "and cannot be validated by third parties.",
                reason="first_party_token",
            )
        typ = header.get("typ")
        if typ is not None and not isinstance(typ, str):
            raise InvalidToken("The token's type is not allowed.", reason="token_type")
        if (None if typ is None else _normalize_typ(typ)) not in entry.token_types:
            raise InvalidToken("The token's type is not allowed.", reason="token_type")


# -- option checks ---------------------------------------------------------------------


def _issuer_specs(issuer: Any, name: str) -> list[Mapping[str, Any]]:
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
    return frozenset(_normalize_typ(v) for v in value)


def _non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"{name} must be a number of seconds, 0 or more (got {value!r}).")
    return float(value)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(f"{name} must be a whole number above 0 (got {value!r}).")
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False (got {value!r}).")
    return value
