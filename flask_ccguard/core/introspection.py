"""Opaque access tokens checked at the issuer's introspection endpoint (RFC 7662).

An :class:`Introspector` POSTs ``token=…&token_type_hint=access_token``
(RFC 7662 §2.1) with the resource server's own client authentication (HTTP
Basic or form post, RFC 6749 §2.3.1), and caches each answer under the
SHA-256 of the token -- never the token itself -- until the earlier of the
token's ``exp`` and a configured TTL. Inactive answers go to a separate,
bounded negative cache for ``inactive_ttl`` seconds, so a flood of random
tokens cannot push the good answers out. Both caches are
:class:`~flask_ccguard.core.store.ByteStore` s (in-process by default, each
bounded to ``max_entries`` answers and :data:`ANSWER_CACHE_BYTES`; shared
through ``CCGUARD_CACHE`` by :meth:`Introspector.share`, failing open). A
token being introspected by one thread is not introspected again by another
of the same process at the same moment: they wait for the first call's
answer (single flight). Calls to the endpoint are bounded by
a token bucket (``max_calls_per_second``): a flood of new opaque tokens cannot
be amplified through this API into the issuer. An endpoint that cannot answer
(or whose bound is spent) raises :class:`IntrospectionUnavailable` (503); an
opaque token is never accepted without an answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable

from .errors import ConfigurationError, IntrospectionUnavailable
from .fetch.basic_auth import basic_authorization
from .fetch.discovery import DiscoveryError
from .fetch.http import FetchError, HTTPClient, check_url
from .numbers import bounded_number
from .store import ByteStore, FailOpen, Key, MemoryStore, open_store, redact

__all__ = ["ANSWER_CACHE_BYTES", "INTROSPECTION_OPTIONS", "Introspector", "looks_like_jws"]

log = logging.getLogger("flask_ccguard")

#: Keys of a per-issuer ``introspection`` dict, and their defaults.
INTROSPECTION_OPTIONS: dict[str, Any] = {
    "endpoint": None,  # None: the issuer metadata's introspection_endpoint
    "client_id": None,
    "client_secret": None,
    "auth_method": "client_secret_basic",
    "ttl": 60,
    "inactive_ttl": 5,
    "tokens": "opaque",
    "max_entries": 10000,
    "max_calls_per_second": 50,  # None: unbounded
}
_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
_TOKENS = ("opaque", "all")
_INACTIVE: dict[str, Any] = {"active": False}
#: Bound on the bytes of each in-process answer cache (active, inactive), keys included.
ANSWER_CACHE_BYTES = 16 << 20  # 16 MiB
# A stored entry starts with its end of validity by the validator's clock
# (which a test may drive): the store's own TTL is a bound, this is the rule.
_UNTIL = struct.Struct(">d")
#: How long a thread waits for another thread's call on the same token before
#: answering 503: past the HTTP timeout, the first call has failed anyway.
FLIGHT_WAIT_SECONDS = 30.0
#: Life of the shared lease one process takes to introspect a token, and how
#: long another waits for its answer before asking itself.
LEASE_SECONDS = 2.0
_LEASE_POLL = 0.005


class _Flight:
    """One call to the endpoint in progress, and its outcome for the waiters."""

    __slots__ = ("answer", "done", "failed")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: dict[str, Any] | None = None
        self.failed = False


class _Tiered:
    """This process's store in front of the shared one: a repeated token costs
    no round trip, and while the shared store is down each process still
    remembers what it asked (one call per token per ``ttl`` per process).
    A shared answer copied here keeps its own end of validity (the entry's
    prefix), so copying never extends it."""

    def __init__(self, local: ByteStore, shared: ByteStore, ttl: float) -> None:
        self.local = local
        self.shared = shared
        self._ttl = ttl

    def get(self, key: Key) -> bytes | None:
        value = self.local.get(key)
        if value is None:
            value = self.shared.get(key)
            if value is not None:
                self.local.set(key, value, self._ttl)
        return value

    def set(self, key: Key, value: bytes, ttl: float) -> None:
        self.local.set(key, value, ttl)
        self.shared.set(key, value, ttl)

    def add_if_absent(self, key: Key, value: bytes, ttl: float) -> bool:  # pragma: no cover - protocol only
        return self.shared.add_if_absent(key, value, ttl) and self.local.add_if_absent(key, value, ttl)

    def delete(self, key: Key) -> None:
        # This process's copy only: the shared entry expires by itself at the
        # same moment, and deleting it could delete a newer answer another
        # process has just stored.
        self.local.delete(key)


def shared_namespace(issuer: str) -> str:
    """The store namespace of ``issuer``'s introspection answers:
    ``introspection:<first 32 hex of SHA-256(issuer)>``, so that one issuer's
    answer never vouches for a token at another (keys are token digests)."""
    return "introspection:" + hashlib.sha256(issuer.encode("utf-8")).hexdigest()[:32]


def looks_like_jws(token: str) -> bool:
    """True if ``token`` has the shape of a compact JWS: three dot-separated
    segments (RFC 7515 §7.1). Anything else is opaque and never JWT-decoded."""
    return token.count(".") == 2


class Introspector:
    """Asks one issuer's introspection endpoint about tokens, with a cache.

    :param http: the validator's HTTP client.
    :param options: the per-issuer ``introspection`` dict (see
        :data:`INTROSPECTION_OPTIONS`), already checked by :meth:`from_options`.
    :param resolve_endpoint: returns the endpoint when none is configured
        (from the issuer's metadata, e.g. an
        :class:`~flask_ccguard.core.fetch.discovery.EndpointFinder`); may raise
        :class:`DiscoveryError`, which it logs itself.
    :param clock: seconds since the epoch (the validator's clock).
    :param answers: the store of active answers (namespace ``introspection``);
        by default this process's, bounded to ``max_entries`` answers.
    :param inactive: the store of inactive answers (the negative cache), apart
        from ``answers`` so a flood of bad tokens cannot evict good answers.
        A shared store must be this issuer's alone (keys are token digests).
    """

    def __init__(
        self,
        http: HTTPClient,
        options: Mapping[str, Any],
        *,
        resolve_endpoint: Callable[[], str] | None = None,
        clock: Callable[[], float],
        answers: ByteStore | None = None,
        inactive: ByteStore | None = None,
    ) -> None:
        self._http = http
        self._endpoint: str | None = options["endpoint"]
        self._resolve = resolve_endpoint
        self._client_id: str = options["client_id"]
        self._client_secret: str = options["client_secret"]
        self._basic = options["auth_method"] == "client_secret_basic"
        self.ttl: float = options["ttl"]
        self.inactive_ttl: float = options["inactive_ttl"]
        self.all_tokens = options["tokens"] == "all"
        self._clock = clock
        self._lock = threading.Lock()
        max_entries = options["max_entries"]
        self._answers: ByteStore = answers or MemoryStore(max_entries, ANSWER_CACHE_BYTES)
        self._inactive: ByteStore = inactive or MemoryStore(max_entries, ANSWER_CACHE_BYTES)
        # Stored entry -> its parsed answer: a hit costs a dict lookup, not a
        # JSON parse (bytes cache their hash). Emptied at max_entries.
        self._parsed: dict[bytes, dict[str, Any]] = {}
        self._max_parsed = max_entries
        rate = options["max_calls_per_second"]
        self._rate: float | None = None if rate is None else float(rate)
        # A bucket of one second's calls, full at start (RFC 7662 §4 asks the
        # protected resource not to let callers hammer the endpoint through it).
        self._burst = max(1.0, self._rate) if self._rate is not None else 0.0
        self._tokens = self._burst
        self._filled_at: float | None = None
        self.calls = 0  # requests sent to the endpoint, for stats and tests
        self.rate_limited = 0  # tokens refused because the call bound was spent
        # Token digest -> the call in progress (single flight). At most one entry
        # per thread waiting in this process, removed when the call ends.
        self._flights: dict[bytes, _Flight] = {}
        # Digests whose shared lease this process holds (as many as flights).
        self._leases: set[bytes] = set()
        self._max_entries = max_entries

    def share(self, spec: str, issuer: str, *, name: str = "cache") -> None:
        """Keep the answers in the ``CCGUARD_CACHE`` store ``spec`` (file or
        Redis), under :func:`shared_namespace` of ``issuer``.

        The shared stores fail open (:class:`~flask_ccguard.core.store.FailOpen`):
        when Redis is down every process introspects directly, still bounded by
        ``max_calls_per_second``. An answer is kept there exactly as in process:
        until the earlier of ``exp`` and ``ttl``, inactive ones ``inactive_ttl``.

        :raises ConfigurationError: for a bad ``spec`` (naming ``name``).
        """
        namespace = shared_namespace(issuer)
        label = redact(spec)
        bounds = {"max_entries": self._max_entries, "max_bytes": ANSWER_CACHE_BYTES, "name": name}
        self._answers = _Tiered(self._answers, FailOpen(open_store(spec, namespace, **bounds), label), self.ttl)
        self._inactive = _Tiered(
            self._inactive, FailOpen(open_store(spec, namespace + ":inactive", **bounds), label), self.inactive_ttl
        )

    @classmethod
    def check_options(cls, value: Any, name: str) -> dict[str, Any]:
        """The ``introspection`` dict with defaults filled in.

        :raises ConfigurationError: naming the bad key and the fix.
        """
        if not isinstance(value, Mapping):
            raise ConfigurationError(f"{name} must be a dict with 'client_id', 'client_secret' and usually 'endpoint'.")
        unknown = set(value) - set(INTROSPECTION_OPTIONS)
        if unknown:
            raise ConfigurationError(
                f"{name}: unknown key(s) {sorted(unknown)}; allowed are {sorted(INTROSPECTION_OPTIONS)}."
            )
        opts = {**INTROSPECTION_OPTIONS, **value}
        if opts["endpoint"] is not None:
            check_url(opts["endpoint"], f"{name}['endpoint']")
        for key in ("client_id", "client_secret"):
            if not isinstance(opts[key], str) or not opts[key]:
                raise ConfigurationError(
                    f"{name}['{key}'] is required: the credentials this API uses to call the "
                    "introspection endpoint (RFC 7662 §2.1 requires the caller to authenticate)."
                )
        if opts["auth_method"] not in _AUTH_METHODS:
            raise ConfigurationError(f"{name}['auth_method'] must be one of {list(_AUTH_METHODS)}.")
        if opts["tokens"] not in _TOKENS:
            raise ConfigurationError(
                f"{name}['tokens'] must be 'opaque' (only non-JWT tokens are introspected) "
                "or 'all' (this issuer's JWTs are introspected too)."
            )
        for key in ("ttl", "inactive_ttl"):
            v = bounded_number(opts[key])
            if v is None or v < 0:
                raise ConfigurationError(f"{name}['{key}'] must be a number of seconds, 0 or more.")
            opts[key] = v
        m = opts["max_entries"]
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ConfigurationError(f"{name}['max_entries'] must be a whole number above 0.")
        r = opts["max_calls_per_second"]
        rate = None if r is None else bounded_number(r)
        if r is not None and (rate is None or rate <= 0):
            raise ConfigurationError(
                f"{name}['max_calls_per_second'] must be a number above 0 (calls to the endpoint "
                "per second, beyond which new tokens get 503), or None for no bound."
            )
        return opts

    # -- asking ----------------------------------------------------------------------

    def introspect(self, token: str) -> dict[str, Any]:
        """The endpoint's answer for ``token`` (cached); ``{"active": False}`` if inactive.

        :raises IntrospectionUnavailable: no answer could be had, or the bound
            on calls to the endpoint is spent (reason ``introspection_rate_limited``).
        """
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        now = self._clock()
        hit = self._answers.get(digest)
        if hit is not None:
            if now < _UNTIL.unpack_from(hit)[0]:
                parsed = self._parsed.get(hit)
                if parsed is None:
                    if len(self._parsed) >= self._max_parsed:
                        self._parsed.clear()
                    parsed = self._parsed[hit] = json.loads(hit[_UNTIL.size :])
                if self._http.telemetry.active:
                    self._http.telemetry.count("ccguard.introspection.cache_hits")
                return dict(parsed)
            self._answers.delete(digest)
        seen = self._inactive.get(digest)
        if seen is not None and now < _UNTIL.unpack_from(seen)[0]:
            if self._http.telemetry.active:
                self._http.telemetry.count("ccguard.introspection.cache_hits")
            return dict(_INACTIVE)
        with self._lock:
            flight = self._flights.get(digest)
            leader = flight is None
            if leader:
                allowed = self._take_call(now)
                if allowed:
                    flight = self._flights[digest] = _Flight()
        if not leader:
            return self._follow(flight)  # type: ignore[arg-type]
        if not allowed:
            # 503, not 401: the token may be good, and a client told its token
            # is invalid would fetch new ones, adding load instead of waiting.
            raise IntrospectionUnavailable(reason="introspection_rate_limited", retry_after=1)
        assert flight is not None
        try:
            answer = self._await_other(digest, now) or self._call(token, digest, now)
            flight.answer = answer
            return dict(answer)
        except BaseException:
            flight.failed = True
            raise
        finally:
            with self._lock:
                del self._flights[digest]
                leased = digest in self._leases
                self._leases.discard(digest)
            if leased and isinstance(self._answers, _Tiered):
                self._answers.shared.delete(b"lease:" + digest)
            flight.done.set()

    @staticmethod
    def _follow(flight: _Flight) -> dict[str, Any]:
        """Wait for another thread's call on the same token, and share its answer
        (a failure is not retried here: it would double the calls at a sick issuer)."""
        if not flight.done.wait(FLIGHT_WAIT_SECONDS) or flight.failed or flight.answer is None:
            raise IntrospectionUnavailable()
        return dict(flight.answer)

    def _await_other(self, digest: bytes, now: float) -> dict[str, Any] | None:
        """With a shared store, take a short lease on the token (``add_if_absent``)
        so that one process calls the endpoint; another that finds the lease
        taken polls the shared store for the answer, and calls itself only if
        none came within :data:`LEASE_SECONDS` (the holder failed). A store
        that fails grants the lease (fail open). None: call the endpoint."""
        answers, inactive = self._answers, self._inactive
        if not isinstance(answers, _Tiered) or not isinstance(inactive, _Tiered):
            return None
        lease = b"lease:" + digest
        if answers.shared.add_if_absent(lease, b"1", LEASE_SECONDS):
            self._leases.add(digest)
            # Checked again under the lease: the previous holder may have stored
            # the answer and released it since this process missed.
            first = True
        else:
            first = False
        deadline = time.monotonic() + LEASE_SECONDS
        while first or time.monotonic() < deadline:
            if not first:
                time.sleep(_LEASE_POLL)
            hit = answers.shared.get(digest)
            if hit is not None and now < _UNTIL.unpack_from(hit)[0]:
                answers.local.set(digest, hit, self.ttl)
                parsed: dict[str, Any] = json.loads(hit[_UNTIL.size :])
                return parsed
            seen = inactive.shared.get(digest)
            if seen is not None and now < _UNTIL.unpack_from(seen)[0]:
                return dict(_INACTIVE)
            if first:
                return None  # the lease holder: call the endpoint
        return None

    def _call(self, token: str, digest: bytes, now: float) -> dict[str, Any]:
        """Ask the endpoint and store the answer (never a failure)."""
        answer = self._ask(token)
        if answer.get("active") is not True:
            # Remembered briefly: a replayed bad token costs no call, and a
            # token activated a moment later is seen soon.
            if self.inactive_ttl > 0:
                self._inactive.set(digest, _UNTIL.pack(now + self.inactive_ttl), self.inactive_ttl)
            return dict(_INACTIVE)
        until = now + self.ttl
        # An 'exp' that is no usable number is ignored here and refused by
        # check_introspected (RFC 7662 §2.2; claim_type): never an exception.
        exp = bounded_number(answer.get("exp"))
        if exp is not None:
            until = min(until, exp)
        if until > now:
            body = json.dumps(answer, separators=(",", ":")).encode("utf-8")
            self._answers.set(digest, _UNTIL.pack(until) + body, until - now)
        return dict(answer)

    def _take_call(self, now: float) -> bool:
        """Take one call from the bucket (refilled at ``max_calls_per_second``); under the lock."""
        if self._rate is None:
            return True
        if self._filled_at is not None:
            # max(0, ...): a clock set back must not drain or overfill the bucket.
            self._tokens = min(self._burst, self._tokens + max(0.0, now - self._filled_at) * self._rate)
        self._filled_at = now
        if self._tokens < 1:
            self.rate_limited += 1
            if self.rate_limited == 1 or self.rate_limited % 1000 == 0:
                log.warning(
                    "flask_ccguard: introspection calls exceed %g per second; new opaque tokens get 503 "
                    "(%d so far). A flood of unknown tokens, or set the issuer's "
                    "introspection['max_calls_per_second']",
                    self._rate,
                    self.rate_limited,
                )
            return False
        self._tokens -= 1
        return True

    def forget(self) -> None:
        """Drop every cached answer (e.g. after a revocation event).

        Only the in-process stores can be cleared; a shared one keeps its
        entries until they expire (at most ``ttl`` seconds).
        """
        self._parsed.clear()
        for store in (self._answers, self._inactive):
            local = store.local if isinstance(store, _Tiered) else store
            if isinstance(local, MemoryStore):
                local.clear()

    def _endpoint_url(self) -> str:
        if self._endpoint is not None:
            return self._endpoint
        if self._resolve is None:  # pragma: no cover - the validator always passes one
            raise IntrospectionUnavailable()
        try:
            return self._resolve()
        except DiscoveryError as exc:
            # Logged by the resolver, once per attempt (a dead end once); it
            # keeps a failure for its cooldown, so a flood of tokens does not
            # rediscover each time.
            reason = "introspection_misconfigured" if exc.dead_end else None
            raise IntrospectionUnavailable(reason=reason) from None

    def _ask(self, token: str) -> dict[str, Any]:
        url = self._endpoint_url()
        data = {"token": token, "token_type_hint": "access_token"}
        headers: dict[str, str] = {}
        if self._basic:
            headers["Authorization"] = basic_authorization(self._client_id, self._client_secret)
        else:
            data["client_id"] = self._client_id
            data["client_secret"] = self._client_secret
        self.calls += 1
        self._http.telemetry.count("ccguard.introspection.calls")
        try:
            resp = self._http.post_form(url, data, headers=headers, purpose="introspection")
        except FetchError as exc:
            log.warning("flask_ccguard: introspection failed: %s", exc)
            raise IntrospectionUnavailable() from None
        if resp.status != 200:
            # 401/403 mean this API's own introspection credentials are wrong;
            # the caller's token may be fine, so this is ours to fix, not a 401.
            log.error(
                "flask_ccguard: introspection endpoint %r answered HTTP %d%s",
                url,
                resp.status,
                "; check the introspection client_id/client_secret" if resp.status in (401, 403) else "",
            )
            raise IntrospectionUnavailable()
        if not isinstance(resp.data, dict):
            log.error("flask_ccguard: introspection endpoint %r did not answer a JSON object", url)
            raise IntrospectionUnavailable()
        return resp.data
