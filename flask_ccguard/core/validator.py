"""TokenValidator: checks a JWT access token (RFC 9068) from configured issuers.

Options are checked once, in ``__init__`` (see :mod:`.issuers`); ``validate()`` then parses the
token once, selects the issuer by the token's unverified ``iss`` (only among
configured issuers, before any key or network work), checks the header,
verifies the signature with a cached key, and checks the claims.

The ``iss`` lookup is one dict lookup; multi-tenant issuer templates (Entra
ID's ``.../{tenantid}/v2.0``, see :mod:`.tenants`) are tried only when it
misses. Tokens that are not a compact JWS go to the issuers that configure
RFC 7662 introspection (:mod:`.introspection`), in the configured order.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable, Union

from .claims import VerifiedToken, check_claims, validity_window
from .errors import CCGuardError, ConfigurationError, IntrospectionUnavailable, InvalidToken
from .fetch.discovery import issuer_near_miss
from .fetch.http import HTTPClient
from .fetch.http_cache import CacheSpec, DefaultFreshness, make_cache
from .introspection import Introspector, check_introspected, looks_like_jws
from .issuers import (
    IssuerEntry,
    build_issuer,
    issuer_specs,
    non_negative,
    normalize_typ,
    positive_int,
)
from .jwks import KeySet
from .jws import parse_compact
from .keys import VerifyingKey
from .stats import ValidationCounter, snapshot
from .token_cache import TokenCache

__all__ = ["TokenValidator"]

log = logging.getLogger("flask_ccguard")

IssuerSpec = Union[str, Mapping[str, Any]]

# RFC 6750 §2.1 b64token: what an opaque bearer token may consist of.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 7515 §4.1.11: we implement no extension, so any critical one is refused.
_UNDERSTOOD_CRIT: frozenset[str] = frozenset()
_ABSENT = object()


class TokenValidator:
    """Validates client-credentials access tokens.

    :param issuer: the issuer identifier, or a list of identifiers or of
        dicts of per-issuer settings (``issuer`` plus any of
        :data:`~flask_ccguard.core.issuers.PER_ISSUER_OPTIONS`).
    :param audience: the audience (or audiences) a token must name in ``aud``.
    :param algorithms: the allowed JWS algorithms; asymmetric only.
    :param leeway: seconds of clock skew allowed on ``exp``, ``nbf``, ``iat``.
    :param require_iat: refuse tokens without ``iat``.
    :param jwks_uri: the issuer's JWKS URL; skips discovery.
    :param discovery_url: an explicit metadata URL instead of the well-knowns.
    :param roles_claim: claim (or dotted path) holding roles.
    :param roles_delimiter: what separates the roles of a claim that is one
        string (such as ``","``); None: whitespace. Arrays are not split.
    :param scopes_claim: claim holding scopes (default ``scope``, then ``scp``).
    :param http_timeout: seconds for each outbound request, start to finish.
    :param jwks_refresh_cooldown: seconds between refetches for unknown ``kid``.
    :param jwks_max_age: seconds before the key set is refreshed.
    :param jwks_stale_limit: seconds cached keys keep serving while refreshes fail.
    :param max_token_bytes: longest token accepted.
    :param token_types: accepted ``typ`` values (default: absent, ``JWT``, ``at+jwt``).
    :param max_token_age: refuse tokens issued longer ago than this (seconds).
    :param id_token_claims: claims that mark a payload as an ID token, which is
        refused (default: ``nonce``, ``at_hash``, ``c_hash``, ``s_hash``); ``[]``
        turns the check off.
    :param allow_cross_origin_metadata: the origins besides the issuer's that
        discovered endpoints (``jwks_uri``, ``introspection_endpoint``) may be
        on: False (none), True (any https origin) or a list such as
        ``["https://www.googleapis.com"]``.
    :param token_cache_size: how many verified tokens to remember, so that a
        token seen again skips the signature check (its time claims are
        checked again on every use); 0 turns the cache off.
    :param cache: where fetched metadata and key sets are cached: None for
        this process, ``"file:///dir"`` or ``"redis://host:port/db"`` to share
        them between workers, or a CacheControl cache object
        (see :func:`~flask_ccguard.core.fetch.http_cache.make_cache`).
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
        roles_delimiter: str | None = None,
        scopes_claim: str | None = None,
        http_timeout: float = 5,
        jwks_refresh_cooldown: float = 30,
        jwks_max_age: float = 600,
        jwks_stale_limit: float = 86400,
        max_token_bytes: int = 16384,
        token_types: Iterable[str] | None = None,
        max_token_age: float | None = None,
        id_token_claims: Iterable[str] | None = None,
        allow_cross_origin_metadata: bool | Sequence[str] = False,
        token_cache_size: int = 1024,
        cache: CacheSpec = None,
        clock: Callable[[], float] | None = None,
        option_name: Callable[[str], str] = str,
    ) -> None:
        self._name = option_name
        self._clock = clock or time.time
        self.max_token_bytes = positive_int(max_token_bytes, option_name("max_token_bytes"))
        timeout = non_negative(http_timeout, option_name("http_timeout"))
        if timeout == 0:
            raise ConfigurationError(f"{option_name('http_timeout')} must be more than 0 seconds.")
        shared = make_cache(cache, option_name("cache")) if cache not in (None, "", "memory://") else None
        # Only a shared cache needs heuristic freshness; its lifetime is set below.
        freshness = DefaultFreshness(0) if shared is not None else None
        self.http = HTTPClient(timeout=timeout, cache=shared, heuristic=freshness)
        self._counter = ValidationCounter()
        size = token_cache_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ConfigurationError(
                f"{option_name('token_cache_size')} must be a whole number of tokens, 0 to turn the cache off "
                f"(got {size!r})."
            )
        #: Most verified tokens remembered (0: no cache).
        self.token_cache_size = size
        self._cache = TokenCache(size) if size else None
        defaults: dict[str, Any] = {
            "audience": audience,
            "algorithms": algorithms,
            "leeway": leeway,
            "require_iat": require_iat,
            "jwks_uri": jwks_uri,
            "discovery_url": discovery_url,
            "roles_claim": roles_claim,
            "roles_delimiter": roles_delimiter,
            "scopes_claim": scopes_claim,
            "jwks_refresh_cooldown": jwks_refresh_cooldown,
            "jwks_max_age": jwks_max_age,
            "jwks_stale_limit": jwks_stale_limit,
            "token_types": token_types,
            "max_token_age": max_token_age,
            "id_token_claims": id_token_claims,
            "allow_cross_origin_metadata": allow_cross_origin_metadata,
        }
        specs = issuer_specs(issuer, option_name("issuer"))
        self._issuers: dict[str, IssuerEntry] = {}
        self._templates: list[IssuerEntry] = []
        self._introspecting: list[IssuerEntry] = []
        for index, spec in enumerate(specs):
            label = (
                option_name("issuer")
                if len(specs) == 1 and isinstance(issuer, (str, Mapping))
                else f"{option_name('issuer')}[{index}]"
            )
            entry = build_issuer(
                spec,
                defaults,
                label,
                option_name=option_name,
                http=self.http,
                clock=self._clock,
            )
            if entry.rules.issuer in self._issuers or any(
                t.rules.issuer == entry.rules.issuer for t in self._templates
            ):
                raise ConfigurationError(
                    f"{label}: issuer {entry.rules.issuer!r} is configured twice; list each issuer once."
                )
            if entry.template is not None:
                self._templates.append(entry)
            else:
                self._issuers[entry.rules.issuer] = entry
            if entry.introspector is not None:
                self._introspecting.append(entry)
        if freshness is not None:
            # Never fresher than the shortest refresh interval, or a refresh would be a cache hit.
            freshness.seconds = int(min(e.keys.max_age for e in self._entries()))

    # -- configuration ---------------------------------------------------------------

    @property
    def issuers(self) -> tuple[str, ...]:
        """The configured issuer identifiers (templates as configured)."""
        return tuple(self._issuers) + tuple(t.rules.issuer for t in self._templates)

    @property
    def introspects(self) -> bool:
        """True when an issuer introspects opaque tokens (RFC 7662): :meth:`validate` sends them there."""
        return bool(self._introspecting)

    def _entry(self, issuer: str) -> IssuerEntry:
        entry = self._issuers.get(issuer)
        if entry is None:
            entry = next((t for t in self._templates if t.rules.issuer == issuer), None)
            if entry is None:
                raise KeyError(issuer)
        return entry

    def key_set(self, issuer: str) -> KeySet:
        """The key set of a configured issuer or template (for stats and tests)."""
        return self._entry(issuer).keys

    @property
    def token_cache(self) -> TokenCache | None:
        """The verified-token cache, or None when ``token_cache_size`` is 0."""
        return self._cache

    def introspector(self, issuer: str) -> Introspector | None:
        """The introspector of a configured issuer, if it has one (for stats and tests)."""
        return self._entry(issuer).introspector

    def issuer_settings(self, issuer: str) -> IssuerEntry:
        """The resolved settings of a configured issuer or template (``rules``,
        ``algorithms``, ``keys``, ``token_types``), so check-token runs the same rules one by one.

        :raises KeyError: ``issuer`` is not configured.
        """
        return self._entry(issuer)

    def select_issuer(self, claims: Mapping[str, Any]) -> IssuerEntry | None:
        """The settings :meth:`validate` applies to a token with these (unverified)
        claims: the fixed issuer named by ``iss``, else the first template that
        ``iss`` and ``tid`` match (its rules bound to that ``iss``); None if none.
        """
        iss = claims.get("iss")
        entry = self._issuers.get(iss) if isinstance(iss, str) else None
        if entry is None and self._templates:
            # Templates only on a miss, so fixed issuers cost one dict lookup.
            entry = self._match_template(iss, claims)
        return entry

    def check_header(self, header: Mapping[str, Any], issuer: str | IssuerEntry) -> None:
        """Check a token header's ``crit``, ``b64``, ``nonce`` and ``typ`` for ``issuer``
        (an identifier or template, or the settings :meth:`select_issuer` gave).

        :raises InvalidToken: as :meth:`validate` would.
        """
        self._check_header(header, issuer if isinstance(issuer, IssuerEntry) else self._entry(issuer))

    # -- validation ------------------------------------------------------------------

    def validate(self, token: str | bytes) -> VerifiedToken:
        """Check ``token`` and return its verified claims.

        :raises InvalidToken: (or :class:`ExpiredToken`) if the token is not
            acceptable; ``reason`` and ``claim`` say why.
        :raises KeysUnavailable: if the issuer's keys cannot be had.
        """
        try:
            cache = self._cache
            now = self._clock()
            hit = cache.get(token, now) if cache is not None and isinstance(token, str) else None
            if hit is not None:
                # Keeps the periodic JWKS refresh going, which is what
                # notices keys that leave the set, while every request hits.
                hit.keys.refresh_if_due()
                verified = hit.token
            else:
                verified = self._validate(token, cache, now)
        except CCGuardError as exc:
            self._counter.add("unavailable" if exc.status == 503 else "rejected", exc.reason)
            raise
        except Exception as exc:  # a bug must not turn into a 500 or a leak
            log.error("flask_ccguard: unexpected %s while validating a token; refused", type(exc).__name__)
            log.debug("flask_ccguard: validation failure detail", exc_info=True)
            self._counter.add("rejected", "internal")
            raise InvalidToken(reason="internal") from None
        self._counter.add("accepted", "ok")
        return verified

    def stats(self) -> dict[str, Any]:
        """Counters since start: validations by outcome and reason, key fetches,
        unknown-``kid`` refetches, cooldown refusals, stale keys served, cache hits.

        Cheap enough to expose on a metrics endpoint; a new dict each call.
        See :func:`~flask_ccguard.core.stats.snapshot` for its members.
        """
        return snapshot(self._counter, self.http, (e.keys for e in self._entries()))

    def _entries(self) -> list[IssuerEntry]:
        return [*self._issuers.values(), *self._templates]

    def _validate(self, token: str | bytes, cache: TokenCache | None, now: float) -> VerifiedToken:
        if isinstance(token, bytes):
            try:
                token = token.decode("ascii")
            except UnicodeDecodeError:
                raise InvalidToken("The access token is malformed: it is not ASCII.", reason="malformed") from None
        if self._introspecting and isinstance(token, str) and not looks_like_jws(token):
            return self._introspect_opaque(token)
        parsed = parse_compact(token, self.max_token_bytes)
        header, claims = parsed.header, parsed.payload
        iss = claims.get("iss")
        entry = self.select_issuer(claims)
        if entry is None:
            for configured in self._issuers:  # only on this refusal path
                near = issuer_near_miss(iss, configured)
                if near:
                    log.info(
                        "flask_ccguard: token iss differs from the configured issuer %r only by %s",
                        configured,
                        near,
                    )
                    break
            raise InvalidToken("The access token is from an unexpected issuer.", reason="issuer", claim="iss")
        if entry.introspector is not None and entry.introspector.all_tokens:
            return self._introspect_with(entry, token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in entry.algorithms:
            raise InvalidToken("The token's signing algorithm is not allowed.", reason="algorithm")
        self._check_header(header, entry)
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("The token's key id is malformed.", reason="malformed")
        signing_input, signature = parsed.signing_input, parsed.signature
        keys = entry.keys
        # Read before the lookup: material withdrawn while this runs may have verified the token.
        generation = keys.generation
        found = keys.candidates(kid, alg)
        key, wrong_issuer = _first_verifying(found, alg, iss, claims, signing_input, signature)
        if key is None and kid is not None and not wrong_issuer:
            # The issuer may have put new material under this kid (cooldown-bounded refetch).
            replacement = keys.replacement(kid, alg, found[0])
            if replacement is not None:
                key, wrong_issuer = _first_verifying((replacement,), alg, iss, claims, signing_input, signature)
        if key is None:
            if wrong_issuer:
                raise InvalidToken("The token's signing key belongs to another issuer.", reason="key_issuer")
            raise InvalidToken("The token's signature is invalid.", reason="bad_signature")
        rules = entry.rules
        check_claims(claims, rules, now)
        verified = VerifiedToken(claims, header, rules)
        # Keys without a kid are rare, and are found by their place in the
        # set rather than by name: their tokens are verified every time.
        if cache is not None and key.kid is not None and cache.admit(token):
            since, until = validity_window(claims, rules)
            cache.put(
                token, verified, since=since, until=until, keys=keys, fingerprint=key.fingerprint, generation=generation
            )
        return verified

    def _match_template(self, iss: Any, claims: Mapping[str, Any]) -> IssuerEntry | None:
        if not isinstance(iss, str):
            return None
        for entry in self._templates:
            assert entry.template is not None
            if entry.template.matches(iss, claims.get("tid")):
                return IssuerEntry(
                    entry.rules.for_issuer(iss), entry.algorithms, entry.keys, entry.token_types, entry.template
                )
        return None

    # -- introspection (RFC 7662) ----------------------------------------------------

    def _introspect_opaque(self, token: str) -> VerifiedToken:
        """Ask each issuer with introspection, in the configured order (RFC 7662 §2).

        An opaque token names no issuer. The first issuer whose endpoint calls
        it active *and* whose checks the answer passes decides. An active
        answer that fails them (another ``aud``, an ``iss`` naming another
        issuer, expired) does not end the search: that issuer does not vouch
        for this token here, and the next may. So the order matters only when
        two issuers would both accept the same token string. If none accepts:
        503 if an endpoint could not answer (it might have), else the first
        such refusal, else "not active".
        """
        if len(token) > self.max_token_bytes:
            raise InvalidToken("The access token is too large.", reason="too_large")
        if not _B64TOKEN.fullmatch(token):
            raise InvalidToken("The access token is malformed.", reason="malformed")
        unavailable: IntrospectionUnavailable | None = None
        refused: InvalidToken | None = None
        for entry in self._introspecting:
            try:
                return self._introspect_with(entry, token)
            except IntrospectionUnavailable as exc:
                unavailable = unavailable or exc
            except InvalidToken as exc:
                if exc.reason != "inactive":
                    refused = refused or exc
        if unavailable is not None:
            raise unavailable
        if refused is not None:
            raise refused
        raise InvalidToken("The access token is not active.", reason="inactive")

    def _introspect_with(self, entry: IssuerEntry, token: str) -> VerifiedToken:
        assert entry.introspector is not None
        answer = entry.introspector.introspect(token)
        check_introspected(answer, entry.introspected_rules, self._clock())
        return VerifiedToken(answer, {}, entry.introspected_rules)

    @staticmethod
    def _check_header(header: Mapping[str, Any], entry: IssuerEntry) -> None:
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
        if (None if typ is None else normalize_typ(typ)) not in entry.token_types:
            raise InvalidToken("The token's type is not allowed.", reason="token_type")


def _first_verifying(
    keys: tuple[VerifyingKey, ...],
    alg: str,
    iss: Any,
    claims: Mapping[str, Any],
    signing_input: bytes,
    signature: bytes,
) -> tuple[VerifyingKey | None, bool]:
    """The first of ``keys`` that verifies the signature, and whether one was skipped for its ``issuer``."""
    wrong_issuer = False
    for key in keys:
        if key.issuer is not None and not _key_issuer_matches(key, iss, claims):
            wrong_issuer = True
            continue
        if key.verify(alg, signing_input, signature):
            return key, wrong_issuer
    return None, wrong_issuer


def _key_issuer_matches(key: VerifyingKey, iss: Any, claims: Mapping[str, Any]) -> bool:
    """Entra ID's signing-key issuer check: a JWK's ``issuer`` member must equal
    the token's ``iss``, after a ``{tenantid}`` in it is replaced by ``tid``."""
    expected = key.issuer
    assert expected is not None
    if "{tenantid}" in expected:
        tid = claims.get("tid")
        if not isinstance(tid, str) or not tid:
            return False
        expected = expected.replace("{tenantid}", tid)
    return bool(expected == iss)
