"""TokenValidator: checks a JWT access token (RFC 9068) from configured issuers.

Options are checked once, in ``__init__`` (per issuer in :mod:`.issuers`, the
issuers gathered in :mod:`.registry`). ``validate()`` answers a token seen before
from the verified-token cache (:mod:`.token_cache`); any other token walks the
steps of :mod:`.pipeline` (parse, issuer, header, key, signature, claims,
binding, authorization), the same steps check-token reports on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable

from .claims import VerifiedToken, validity_window
from .errors import CCGuardError, InvalidToken
from .fetch.http import HTTPClient
from .fetch.http_cache import CacheSpec, DefaultFreshness, make_cache
from .header import check_header_rules
from .introspection import Introspector
from .issuers import PER_ISSUER_OPTIONS, IssuerEntry
from .jwks import KeySet
from .options import OPTIONS
from .pipeline import Pipeline, Run
from .registry import IssuerRegistry, IssuerSpec
from .request import HTTPRequest
from .stats import CACHE_HIT, ValidationCounter, snapshot
from .store import in_process
from .telemetry import Telemetry
from .token_cache import TokenCache

__all__ = ["TokenValidator"]

log = logging.getLogger("flask_ccguard")

# The defaults of the keyword parameters below, from the one declaration of each option.
_D = {name: option.default for name, option in OPTIONS.items()}


def _check(name: str, value: Any, option_name: Callable[[str], str]) -> Any:
    return OPTIONS[name].check(value, option_name(name))


class TokenValidator:
    """Validates client-credentials access tokens.

    :param issuer: the issuer identifier, or a list of identifiers or of
        dicts of per-issuer settings (``issuer`` plus any of
        :data:`~flask_ccguard.core.issuers.PER_ISSUER_OPTIONS`).
    :param audience: the audience (or audiences) a token must name in ``aud``;
        None with ``resource``: the resource, compared canonically.
    :param resource: the API's resource identifier (RFC 8707 §2, RFC 9728).
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
    :param dpop: ``"disabled"``, ``"allowed"`` or ``"required"`` (RFC 9449); also per
        issuer. Enforced by a :class:`~flask_ccguard.core.binding.SenderConstraint`
        added to :attr:`pipeline` (the Flask extension adds one).
    :param clock: returns the time in seconds since the epoch (for tests).
    :raises ConfigurationError: for any missing or wrong option.
    """

    def __init__(
        self,
        issuer: IssuerSpec | Sequence[IssuerSpec],
        audience: str | Sequence[str] | None = _D["audience"],
        algorithms: Iterable[str] = _D["algorithms"],
        leeway: float = _D["leeway"],
        *,
        resource: str | None = _D["resource"],
        require_iat: bool = _D["require_iat"],
        jwks_uri: str | None = _D["jwks_uri"],
        discovery_url: str | None = _D["discovery_url"],
        roles_claim: str = _D["roles_claim"],
        roles_delimiter: str | None = _D["roles_delimiter"],
        scopes_claim: str | None = _D["scopes_claim"],
        http_timeout: float = _D["http_timeout"],
        jwks_refresh_cooldown: float = _D["jwks_refresh_cooldown"],
        jwks_max_age: float = _D["jwks_max_age"],
        jwks_stale_limit: float = _D["jwks_stale_limit"],
        max_token_bytes: int = _D["max_token_bytes"],
        token_types: Iterable[str] | None = _D["token_types"],
        max_token_age: float | None = _D["max_token_age"],
        id_token_claims: Iterable[str] | None = _D["id_token_claims"],
        allow_cross_origin_metadata: bool | Sequence[str] = _D["allow_cross_origin_metadata"],
        token_cache_size: int = _D["token_cache_size"],
        cache: CacheSpec = _D["cache"],
        dpop: str = _D["dpop"],
        clock: Callable[[], float] | None = None,
        option_name: Callable[[str], str] = str,
    ) -> None:
        # The keywords above are spelled out for readers and IDEs; their defaults and
        # checks are those of OPTIONS (a test holds the two together).
        given = dict(locals())
        self._name = option_name
        self._clock = clock or time.time
        self.max_token_bytes = _check("max_token_bytes", max_token_bytes, option_name)
        timeout = _check("http_timeout", http_timeout, option_name)
        shared = None if in_process(cache) else make_cache(cache, option_name("cache"))
        # Only a shared cache needs heuristic freshness; its lifetime is set below.
        freshness = DefaultFreshness(0) if shared is not None else None
        self.http = HTTPClient(timeout=timeout, cache=shared, heuristic=freshness)
        self._counter = counter = ValidationCounter()
        # Decided once (telemetry.py): without an OpenTelemetry SDK, validate() is not wrapped.
        self.http.telemetry = telemetry = Telemetry.detect()
        if telemetry.active:
            self.validate, self._validate = telemetry.instrument(  # type: ignore[method-assign]
                self.validate, self._validate, self._configured_issuer
            )
            telemetry.count_cache_hits(self, counter.cache_hits)
        #: The validator-wide DPoP mode (RFC 9449); issuers' dicts may override it.
        self.dpop = _check("dpop", dpop, option_name)
        #: Most verified tokens remembered (0: no cache).
        self.token_cache_size = size = _check("token_cache_size", token_cache_size, option_name)
        self._cache = TokenCache(size) if size else None
        # Validator-wide values of the per-issuer options; each issuer's dict may override them.
        defaults = {name: given[name] for name in PER_ISSUER_OPTIONS if name in OPTIONS}
        #: The API's resource identifier (RFC 8707 §2), the default audience.
        self.resource = defaults["resource"] = _check("resource", resource, option_name)
        #: The configured issuers and the selection among them.
        self.registry = IssuerRegistry(issuer, defaults, option_name=option_name, http=self.http, clock=self._clock)
        #: The validation steps (:mod:`.pipeline`); check-token walks the same object.
        self.pipeline = Pipeline(self.registry, self.max_token_bytes, self._clock)
        if shared is not None and isinstance(cache, str):
            # Introspection answers are shared with the other workers and hosts too
            # (issue 18), each issuer under its own namespace.
            for entry in self.registry.entries():
                if entry.introspector is not None:
                    entry.introspector.share(cache, entry.rules.issuer, name=option_name("cache"))
        if freshness is not None:
            # Never fresher than the shortest refresh interval, or a refresh would be a cache hit.
            freshness.seconds = int(min(e.keys.max_age for e in self.registry.entries()))

    # -- configuration ---------------------------------------------------------------

    @property
    def issuers(self) -> tuple[str, ...]:
        """The configured issuer identifiers (templates as configured)."""
        return self.registry.identifiers

    @property
    def introspects(self) -> bool:
        """True when an issuer introspects opaque tokens (RFC 7662): :meth:`validate` sends them there."""
        return bool(self.registry.introspecting)

    def key_set(self, issuer: str) -> KeySet:
        """The key set of a configured issuer or template (for stats and tests)."""
        return self.registry.entry(issuer).keys

    @property
    def token_cache(self) -> TokenCache | None:
        """The verified-token cache, or None when ``token_cache_size`` is 0."""
        return self._cache

    def introspector(self, issuer: str) -> Introspector | None:
        """The introspector of a configured issuer, if it has one (for stats and tests)."""
        return self.registry.entry(issuer).introspector

    def issuer_settings(self, issuer: str) -> IssuerEntry:
        """The resolved settings of a configured issuer or template (``rules``,
        ``algorithms``, ``keys``, ``token_types``).

        :raises KeyError: ``issuer`` is not configured.
        """
        return self.registry.entry(issuer)

    def select_issuer(self, claims: Mapping[str, Any]) -> IssuerEntry | None:
        """The settings :meth:`validate` applies to a token with these (unverified) claims
        (see :meth:`.registry.IssuerRegistry.select`)."""
        return self.registry.select(claims)

    def check_header(self, header: Mapping[str, Any], issuer: str | IssuerEntry) -> None:
        """Check a token header's ``crit``, ``b64``, ``nonce`` and ``typ`` for ``issuer``.

        :raises InvalidToken: as :meth:`validate` would.
        """
        check_header_rules(header, issuer if isinstance(issuer, IssuerEntry) else self.registry.entry(issuer))

    # -- validation ------------------------------------------------------------------

    def validate(self, token: str | bytes, request: HTTPRequest | None = None) -> VerifiedToken:
        """Check ``token`` and return its verified claims.

        :param request: what is known of the HTTP request that carried the token,
            for the ``binding`` step (DPoP, mTLS); None: the token is checked alone.
        :raises InvalidToken: (or :class:`ExpiredToken`) if the token is not
            acceptable; ``reason`` and ``claim`` say why.
        :raises KeysUnavailable: if the issuer's keys cannot be had.
        """
        try:
            cache = self._cache
            now = self._clock()
            hit = cache.get(token, now) if cache is not None and isinstance(token, str) else None
            if hit is not None:
                # The hit path skips the pipeline's objects: its steps before
                # "binding" passed when the token was cached (time claims are
                # re-checked by the cache itself).
                hit.keys.refresh_if_due()
                verified = hit.token
                # The "binding" step (check_binding) without its Run: a proof or a
                # certificate belongs to this request, so it runs on every hit.
                for binding in self.pipeline.bindings:
                    binding(request, verified)
                reason = CACHE_HIT
            else:
                verified = self._validate(token, request, cache, now)
                reason = "ok"
        except CCGuardError as exc:
            self._counter.add("unavailable" if exc.status == 503 else "rejected", exc.reason)
            raise
        except Exception as exc:  # a bug must not turn into a 500 or a leak
            log.error("flask_ccguard: unexpected %s while validating a token; refused", type(exc).__name__)
            log.debug("flask_ccguard: validation failure detail", exc_info=True)
            self._counter.add("rejected", "internal")
            raise InvalidToken(reason="internal") from None
        self._counter.add("accepted", reason)
        return verified

    def _configured_issuer(self, issuer: str) -> str:
        """The configured identifier that accepts ``issuer``: itself, or the template
        of a tenant's (whose ``iss`` the token's sender chose), for telemetry."""
        if issuer in self.registry.fixed:
            return issuer
        for entry in self.registry.templates:
            if entry.template is not None and entry.template.covers(issuer):
                return entry.rules.issuer
        return "other"

    def stats(self) -> dict[str, Any]:
        """Counters since start: validations by outcome and reason, key fetches,
        unknown-``kid`` refetches, cooldown refusals, stale keys served, cache hits.

        Cheap enough to expose on a metrics endpoint; a new dict each call.
        See :func:`~flask_ccguard.core.stats.snapshot` for its members.
        """
        return snapshot(self._counter, self.http, (e.keys for e in self.registry.entries()))

    def _validate(
        self, token: str | bytes, request: HTTPRequest | None, cache: TokenCache | None, now: float
    ) -> VerifiedToken:
        run = Run(token, now, request)
        verified = self.pipeline.run(run)
        key = run.key
        # Introspected tokens have no key (nor parsed JWS) and are asked again; keys
        # without a kid are rare, and are found by their place in the set rather than
        # by name: their tokens are verified every time.
        if cache is not None and key is not None and key.kid is not None:
            token, entry = run.token, run.entry
            if cache.admit(token):
                # The parsed payload, not verified.claims (a fresh copy at each access).
                since, until = validity_window(run.parsed.payload, entry.rules)
                cache.put(
                    token,
                    verified,
                    since=since,
                    until=until,
                    keys=entry.keys,
                    fingerprint=key.fingerprint,
                    generation=run.generation,
                )
        return verified
