"""An issuer's signing keys (RFC 7517 §5), cached by ``kid`` and refreshed with care.

* Keys are prepared once per fetch and looked up by ``kid`` in a dict.
* An unknown ``kid`` triggers at most one refetch per cooldown window; threads
  that miss while that fetch runs wait for it instead of fetching again
  (single flight). The refetch bypasses the HTTP cache, so a key the issuer
  just rotated in is seen at once.
* The whole set is refreshed after ``max_age`` (or the issuer's longer
  ``Cache-Control: max-age``, counted up to :data:`MAX_ISSUER_MAX_AGE` or the
  stale limit if lower); a failed refresh keeps the previous keys in service
  for up to ``stale_limit`` seconds after the last success.
* A key that a successful fetch no longer lists stops validating. Keys are
  told apart by material, not by name (:attr:`VerifyingKey.fingerprint`):
  :attr:`KeySet.generation` moves whenever material is withdrawn, even under
  a ``kid`` that stays, and :meth:`KeySet.holds` says whether a fingerprint
  is still published. The verified-token cache reads both; nothing here
  calls up into it.
* A signature that fails under a known ``kid`` may mean the issuer replaced
  the material under that ``kid``: it refetches as an unknown ``kid`` does,
  sharing the same cooldown and single flight.
* A discovered ``jwks_uri`` is discovered again after a failed fetch (past
  the HTTP cache, within the failure cooldown) and at each scheduled refresh
  (through the HTTP cache, so only once the metadata's freshness lapses): an
  issuer may move its key set. A configured ``jwks_uri`` stays fixed.
* A token without ``kid`` is tried against at most
  :data:`MAX_KIDLESS_CANDIDATES` keys of its algorithm, so a forged one costs
  a bounded number of signature checks however many keys the set holds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Callable

from .errors import InvalidToken, KeysUnavailable
from .fetch.discovery import CrossOrigin, DiscoveryError, discover
from .fetch.http import FetchError, HTTPClient
from .jwk_set import MAX_KIDLESS_CANDIDATES, KeyIndex, NoKeysArray, read_key_set
from .keys import VerifyingKey

__all__ = ["MAX_ISSUER_MAX_AGE", "MAX_KIDLESS_CANDIDATES", "KeySet"]

log = logging.getLogger("flask_ccguard")

#: Fetch reasons that bypass the refresh schedule and the HTTP cache, bounded
#: by the cooldown: a kid we do not know, a known kid whose signature failed.
_FORCED = frozenset({"unknown_kid", "bad_signature"})
#: The longest issuer ``Cache-Control: max-age`` honoured (one day; lower if
#: the stale limit is). Real issuers send minutes to hours; beyond this a key
#: the issuer withdrew would keep validating as long as the issuer's header
#: said (``max-age=999999999``: 31 years). The stale limit is how long we
#: accept keys no fetch has confirmed, so no max-age may outlast it either.
MAX_ISSUER_MAX_AGE = 86400


class KeySet:
    """The verification keys of one issuer.

    :param http: the validator's HTTP client.
    :param issuer: the configured issuer identifier.
    :param allowed: the algorithm allowlist; keys for nothing allowed are skipped.
    :param jwks_uri: fetch keys here and skip discovery.
    :param discovery_url: an explicit metadata URL instead of the well-knowns.
    :param cross_origin: other origins a discovered ``jwks_uri`` may be on
        (see :func:`~flask_ccguard.core.fetch.discovery.discover`).
    :param cooldown: seconds between fetches triggered by unknown ``kid`` values
        (and between retries after a failed fetch).
    :param max_age: seconds after which the set is refreshed.
    :param stale_limit: seconds after the last success that cached keys keep
        serving while refreshes fail.
    :param clock: returns the current time in seconds (``time.monotonic``).
    """

    def __init__(
        self,
        http: HTTPClient,
        issuer: str,
        allowed: frozenset[str],
        *,
        jwks_uri: str | None = None,
        discovery_url: str | None = None,
        cross_origin: CrossOrigin = False,
        cooldown: float = 30,
        max_age: float = 600,
        stale_limit: float = 86400,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self.issuer = issuer
        self._allowed = allowed
        self._jwks_uri = jwks_uri  # configured, or the last one discovered
        self._jwks_uri_fixed = jwks_uri is not None
        self._discovery_url = discovery_url
        self._cross_origin = cross_origin
        self._cooldown = cooldown
        self._max_age = max_age
        self._stale_limit = stale_limit
        self._clock = clock

        self._index = KeyIndex()  # swapped whole by each install
        #: Bumped whenever installed key material is withdrawn (a key leaves
        #: the set, or its kid now names other material, or the set is
        #: dropped past its stale limit). Written after :attr:`_index`, so
        #: a reader that sees a generation sees material at least that new.
        self.generation = 0
        self._loaded = False
        self._last_success = 0.0
        self._refresh_at = 0.0
        self._last_attempt: float | None = None
        self._last_failed = False

        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._fetching = False
        self._installs = 0  # key sets installed so far; see _refresh(seen=...)
        self.fetches = 0  # successful and failed key-set fetches, for stats and tests
        self.cooldown_refusals = 0  # unknown kids that found the cooldown closed
        self.refetches = 0  # fetches started by an unknown kid, or a failed signature under a known one
        self.fetch_failures = 0  # fetches that brought no usable key set
        self.cache_hits = 0  # fetches the HTTP cache answered without the issuer
        self.stale_served = 0  # lookups served by keys due for refresh
        self.last_failure: str | None = None  # why the last fetch failed (None after a success), for warm-up

    # -- lookups ---------------------------------------------------------------------

    def candidates(self, kid: str | None, alg: str) -> tuple[VerifyingKey, ...]:
        """The keys that may have signed a token with this ``kid`` and ``alg``.

        :raises InvalidToken: no such key (after a refetch, if one was allowed).
        :raises KeysUnavailable: no keys could be obtained and none are cached.
        """
        if not self._loaded or self._clock() >= self._refresh_at:
            self.refresh_if_due()
        seen = self._installs
        found = self._lookup(kid, alg)
        if found:
            return found
        # An unknown kid may be a key the issuer has just rotated in.
        if self._refresh(self._clock(), reason="unknown_kid", seen=seen):
            found = self._lookup(kid, alg)
            if found:
                return found
        if kid is None:
            raise InvalidToken("No key of the issuer fits the token's algorithm.", reason="no_matching_key")
        raise InvalidToken("The token's key id is not one of the issuer's keys.", reason="unknown_kid")

    def refresh_if_due(self) -> None:
        """Load the set if never loaded, and start its periodic refresh when due.

        :meth:`candidates` calls this; so do callers that answer without a key
        (the verified-token cache), so that keys leaving the JWKS are noticed.

        :raises KeysUnavailable: no keys could be obtained and none are usable.
        """
        now = self._clock()
        if self._loaded and now < self._refresh_at:
            return
        if not self._loaded:
            self._refresh(now, reason="initial")
        else:
            # Stale-while-revalidate: keep serving the cached keys while one
            # background fetch refreshes them, unless they are past their limit.
            stale = now - self._last_success > self._stale_limit
            self._refresh(now, reason="expired", wait=stale)

    def _lookup(self, kid: str | None, alg: str) -> tuple[VerifyingKey, ...]:
        if kid is not None:
            key = self._index.by_kid.get(kid)
            return (key,) if key is not None and alg in key.algorithms else ()
        # RFC 7515 §4.1.4: kid is optional; try the first keys that fit the algorithm.
        return self._index.by_alg.get(alg, ())

    def replacement(self, kid: str, alg: str, failed: VerifyingKey) -> VerifyingKey | None:
        """The key published under ``kid`` now, if its material differs from ``failed``'s.

        ``failed`` (this set's key for ``kid``) did not verify a token. RFC 7517
        §4.5 leaves the issuer free to reuse a ``kid`` for new material, and
        some do, so the set is fetched again as for an unknown ``kid``: at
        most once per cooldown, shared by all threads.

        :returns: the new key, or None if ``kid`` still names the same material.
        :raises KeysUnavailable: as :meth:`candidates`.
        """
        current = self._index.by_kid.get(kid)
        if (current is None or current.fingerprint == failed.fingerprint) and self._refresh(
            self._clock(), reason="bad_signature"
        ):
            current = self._index.by_kid.get(kid)
        if current is None or current.fingerprint == failed.fingerprint or alg not in current.algorithms:
            return None
        return current

    def holds(self, fingerprint: bytes) -> bool:
        """True if a key with this :attr:`~VerifyingKey.fingerprint` is installed."""
        return fingerprint in self._index.material

    def __contains__(self, kid: object) -> bool:
        return kid in self._index.by_kid

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._index.by_kid)

    @property
    def max_age(self) -> float:
        """Seconds between refreshes of the whole set (at least)."""
        return self._max_age

    # -- fetching --------------------------------------------------------------------

    def _refresh(self, now: float, *, reason: str, wait: bool = True, seen: int | None = None) -> bool:
        """Fetch the set unless the cooldown forbids it.

        :param wait: run the fetch in this thread (and wait for one under way);
            with ``False`` it runs in a background thread and this returns at once.
        :param seen: the install count when the caller looked its key up; if a
            fetch has installed a set since, the caller looks again instead.
        :returns: True if the set may have changed since the caller looked.
        :raises KeysUnavailable: the set was never loaded (or is beyond its
            stale limit) and cannot be fetched now.
        """
        with self._lock:
            if self._fetching:
                if not wait:
                    self.stale_served += 1
                    self._http.telemetry.count("ccguard.key_set.stale_served")
                    return False
                # Single flight: wait for the fetch under way rather than start another.
                self._done.wait(self._http.timeout * 3 + 1)
                self._raise_if_unusable(self._clock())
                return True
            if seen is not None and seen != self._installs:
                # A fetch finished between the caller's lookup and now: its
                # set is the fresh one, and single flight means not fetching again.
                return True
            if reason not in _FORCED and self._loaded and now < self._refresh_at:
                return False
            if not wait:
                self.stale_served += 1  # this caller goes on with the keys it has
                self._http.telemetry.count("ccguard.key_set.stale_served")
            cooling = self._last_attempt is not None and now - self._last_attempt < self._cooldown
            forced = reason in _FORCED
            if cooling and (forced or self._last_failed):
                if forced:
                    self.cooldown_refusals += 1
                    self._http.telemetry.count("ccguard.key_set.cooldown_refusals")
                self._raise_if_unusable(now)
                return False
            if forced:
                self.refetches += 1
            self._fetching = True
            self._last_attempt = now
        # The flight is open: every path from here closes it (_land), so no
        # exception, wherever it is raised, can leave later callers waiting on
        # a fetch that no longer runs.
        if wait:
            return self._fly(now, reason)
        try:
            threading.Thread(target=self._fly_quietly, args=(now, reason), name="ccguard-jwks", daemon=True).start()
        except Exception as exc:  # e.g. "can't start new thread": keep serving the cached keys
            self._land()
            log.warning("flask_ccguard: cannot refresh the keys of %r in the background: %s", self.issuer, exc)
        return False

    def _fly(self, now: float, reason: str) -> bool:
        """Run the fetch of the open flight, and close the flight whatever happens."""
        try:
            return self._run_fetch(now, reason)
        finally:
            self._land()

    def _fly_quietly(self, now: float, reason: str) -> None:
        with contextlib.suppress(KeysUnavailable):  # logged; the next request reports it
            self._fly(now, reason)

    def _land(self) -> None:
        """Close the flight and wake the threads waiting for it (the one place that does)."""
        with self._lock:
            self._fetching = False
            self._done.notify_all()

    def _run_fetch(self, now: float, reason: str) -> bool:
        try:
            # After a failure the cached copy may be what failed: ask the issuer.
            keys, max_age, from_cache = self._fetch(
                fresh=reason in _FORCED or self._last_failed, scheduled=reason == "expired"
            )
            # Everything that can fail is computed here, before the lock, so a
            # failure is a failed fetch like any other.
            index = KeyIndex(keys, self.issuer)
            refresh_at = now + self._refresh_interval(max_age)
        except Exception as exc:
            # Any failure, expected (FetchError, DiscoveryError) or not, is a
            # failed fetch: it keeps the cached keys and starts the cooldown,
            # so a broken document cannot make every request fetch again.
            why = str(exc) if isinstance(exc, (FetchError, DiscoveryError)) else f"unexpected {type(exc).__name__}"
            log.warning("flask_ccguard: cannot fetch keys of %r (%s): %s", self.issuer, reason, why)
            with self._lock:
                self.last_failure = str(exc)
                self._last_failed = True
                self.fetches += 1
                self.fetch_failures += 1
                self._http.telemetry.count("ccguard.key_set.fetches", {"ccguard.outcome": "failure"})
                self._http.telemetry.count("ccguard.key_set.fetch_failures")
                self._raise_if_unusable(self._clock())
            return False
        with self._lock:
            self._install(index, now, refresh_at)
            if from_cache:
                # The shared cache answered and the issuer was not asked: a key
                # rotated in since it was stored may still be fetched at once.
                self._last_attempt = None
            self._last_failed = False
            self.last_failure = None
            self.fetches += 1
            self._http.telemetry.count("ccguard.key_set.fetches", {"ccguard.outcome": "success"})
        return True

    def _raise_if_unusable(self, now: float) -> None:
        if not self._loaded:
            raise KeysUnavailable(reason="keys_unavailable", retry_after=max(1, int(self._cooldown)))
        if now - self._last_success > self._stale_limit:
            # Too old to trust: the issuer may have revoked these keys long ago.
            dropped, self._index, self._loaded = self._index, KeyIndex(), False
            self._refresh_at = 0.0
            if dropped.material:
                self.generation += 1
            raise KeysUnavailable(reason="keys_stale", retry_after=max(1, int(self._cooldown)))

    def _install(self, index: KeyIndex, now: float, refresh_at: float) -> None:
        self._installs += 1
        old, self._index = self._index, index
        if old.material - self._index.material:
            self.generation += 1  # material withdrawn; after the index: see __init__
        self._loaded = True
        self._last_success = now
        self._refresh_at = refresh_at

    def _refresh_interval(self, max_age: int | None) -> float:
        """Seconds until the next refresh: ``max_age``, or the issuer's longer ``max-age``.

        The issuer's value counts up to :attr:`issuer_max_age_cap`, which also
        keeps a header of any size finite (RFC 9111 §1.2.2: ``max-age=`` and
        400 nines once overflowed ``now + max_age``).
        """
        return max(self._max_age, float(min(max_age or 0, self.issuer_max_age_cap)))

    @property
    def issuer_max_age_cap(self) -> float:
        """The longest issuer ``max-age`` honoured: :data:`MAX_ISSUER_MAX_AGE`, or the stale limit if lower."""
        return min(MAX_ISSUER_MAX_AGE, self._stale_limit)

    def _resolve_jwks_uri(self, *, after_failure: bool, scheduled: bool) -> str:
        """Where to fetch the set: the configured ``jwks_uri``, or the discovered one.

        A discovered ``jwks_uri`` is not kept for good: the issuer may move its
        key set (OIDC Discovery §4, RFC 8414 §3 make it metadata, not a
        constant). Discovery runs again, in the flight and so within its bounds:

        * after a failed fetch (``after_failure``), past the HTTP cache, whose
          copy may name the URI that failed; the failure cooldown spaces these
          out like the fetches themselves;
        * at a scheduled refresh, through the HTTP cache, so the issuer is
          asked only once its metadata's own freshness has lapsed.

        If discovery fails then, the known ``jwks_uri`` is used.
        """
        known = self._jwks_uri
        if known is not None and (self._jwks_uri_fixed or not (after_failure or scheduled)):
            return known
        try:
            doc = discover(
                self._http, self.issuer, self._discovery_url, cross_origin=self._cross_origin, fresh=after_failure
            )
        except DiscoveryError as exc:
            if known is None:
                raise
            log.warning("flask_ccguard: cannot rediscover the keys of %r (%s); fetching %r", self.issuer, exc, known)
            return known
        uri = str(doc["jwks_uri"])
        if known is not None and uri != known:
            log.warning("flask_ccguard: the jwks_uri of %r moved from %r to %r", self.issuer, known, uri)
        self._jwks_uri = uri
        return uri

    def _fetch(self, *, fresh: bool, scheduled: bool) -> tuple[list[VerifyingKey], int | None, bool]:
        uri = self._resolve_jwks_uri(after_failure=self._last_failed, scheduled=scheduled)
        resp = self._http.get_json(uri, fresh=fresh, purpose="key_set")
        if resp.from_cache:
            self.cache_hits += 1
            if not fresh and resp.max_age is not None and resp.max_age > self.issuer_max_age_cap:
                # The HTTP cache keeps this copy as long as the issuer said,
                # longer than we accept, and its age is unknown: ask the issuer.
                resp = self._http.get_json(uri, fresh=True, purpose="key_set")
        try:
            keys = read_key_set(resp.data, self._allowed, self.issuer)
        except NoKeysArray as exc:
            self._http.forget(uri)  # not to be served to the other workers
            raise FetchError(str(exc)) from None
        return keys, resp.max_age, resp.from_cache
