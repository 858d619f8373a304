"""Load and fault harness: a TestIssuer, the API under gunicorn, concurrent clients.

Each scenario starts a :class:`~flask_ccguard.testing.TestIssuer` and the API
(the example asset API configured through ``CCGUARD_ISSUER``/``AUDIENCE`` to
trust the TestIssuer, or ``--app minimal``) under a real gunicorn on
loopback, warms every worker, then drives client threads with a mix of valid,
expired, forged and random-``kid`` tokens for a bounded time and number of
requests, while the issuer goes down, slows down, rotates keys or answers
garbage. It reports requests/s, p50/p99 latency, statuses by token kind, the
discovery and JWKS requests the issuer saw, the workers' ``stats()``, and
every broken promise (a valid token refused while keys were cached, a 5xx
other than 503, a bad token accepted, too many issuer requests)::

    python -m benchmarks.load all --duration 60
    python -m benchmarks.load issuer_down --cache memory --workers 2
    python -m benchmarks.load kid_flood_etag --duration 20 --cooldown 2

``kid_flood_etag`` serves the JWKS as a static file is served (``ETag``,
``Last-Modified``, ``304`` to conditional requests): the unknown-``kid``
refetches must still cost at most one issuer request per cooldown per worker.

The shared-state scenarios (issue 18) run the minimal app against an issuer
with RFC 7662 introspection and opaque tokens: ``introspection`` (a pool of
opaque tokens across the workers: at most one issuer call per token per
``--introspection-ttl`` with a shared cache), ``redis_outage`` (Redis stops
at 30 % and comes back at 60 %: the caches fail open, every valid token keeps
working) and ``second_host`` (a second gunicorn on 127.0.0.2 sharing the same
Redis). Each reports the Redis commands per request (``INFO commandstats``).
A scenario that needs DPoP (replays to other workers) adds a token kind and
a violation rule here, and sets ``dpop`` in the app's settings.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import email.utils
import hashlib
import http.client
import itertools
import json
import math
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from flask_ccguard.testing import TestIssuer

from .servers import Gunicorn, RedisServer, running_redis

PATH = "/archivist/v2/assets"
AUDIENCE = "https://api.example.com"
KINDS = ("valid", "valid_new", "expired", "forged", "random_kid", "opaque", "opaque_random", "dpop", "dpop_replay")
DEFAULT_MIX = (("valid", 0.7), ("expired", 0.1), ("forged", 0.1), ("random_kid", 0.1))
FLOOD_MIX = (("valid", 0.2), ("random_kid", 0.8))
REFRESH_MIX = (("valid", 0.8), ("expired", 0.1), ("forged", 0.1))
OPAQUE_MIX = (("opaque", 0.83), ("opaque_random", 0.02), ("valid", 0.1), ("forged", 0.05))
DPOP_MIX = (("dpop", 0.6), ("dpop_replay", 0.3), ("valid", 0.1))
#: The public base URL every server is told (the ``htu`` of the proofs).
DPOP_BASE = "http://api.test"
#: Opaque tokens in the pool the clients draw from.
OPAQUE_POOL = 200
# Claims every token carries, so the example's role check passes for valid ones.
CLAIMS: dict[str, Any] = {"roles": ["archivist_administrator"], "client_id": "load-client"}


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    #: (fraction of the run, action) pairs; see :func:`_act`.
    events: tuple[tuple[float, str], ...] = ()
    mix: tuple[tuple[str, float], ...] = DEFAULT_MIX
    #: The issuer stayed healthy, so shared-cache bounds apply.
    healthy: bool = False
    #: The JWKS is served like a static file: ETag, Last-Modified, 304 to conditional GETs.
    etag: bool = False
    #: Opaque tokens introspected at the issuer (RFC 7662); the minimal app.
    opaque: bool = False
    #: Gunicorns on 127.0.0.1, 127.0.0.2, … sharing the cache (hosts).
    hosts: int = 1
    #: DPoP-bound tokens with proofs, some replayed to other workers (RFC 9449 §11.1).
    dpop: bool = False


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("steady", "issuer healthy throughout", healthy=True),
        Scenario("issuer_down", "issuer stops for good at 30% (keys cached)", ((0.3, "stop"),)),
        Scenario("issuer_slow", "JWKS answers after 5 s from 20% to 80%", ((0.2, "slow"), (0.8, "fast"))),
        Scenario("rotation", "new signing key at 30%, old one still published", ((0.3, "rotate"),), healthy=True),
        Scenario(
            "issuer_error",
            "JWKS answers 500 from 25%, HTML garbage from 50%, healthy from 75%",
            ((0.25, "error500"), (0.5, "garbage"), (0.75, "heal")),
        ),
        Scenario("kid_flood", "80% of requests carry a random kid", mix=FLOOD_MIX, healthy=True),
        # Conditional refetches answered 304 must still count against the cooldown.
        Scenario(
            "kid_flood_etag",
            "80% random kids; the JWKS is a static file (ETag, Last-Modified, 304)",
            mix=FLOOD_MIX,
            healthy=True,
            etag=True,
        ),
        # Without unknown kids only max-age refreshes fetch: the shared-cache bound.
        Scenario("refresh", "issuer healthy, no unknown kids: max-age refreshes only", mix=REFRESH_MIX, healthy=True),
        # Issue 18: state shared across workers and hosts.
        Scenario(
            "introspection", "opaque tokens introspected across workers", mix=OPAQUE_MIX, healthy=True, opaque=True
        ),
        Scenario(
            "redis_outage",
            "opaque tokens and JWTs; Redis stops at 30%, is back at 60%",
            ((0.3, "redis_stop"), (0.6, "redis_start")),
            mix=OPAQUE_MIX,
            healthy=True,
            opaque=True,
        ),
        Scenario(
            "dpop_replay",
            "DPoP proofs, 30% replayed on a new connection (another worker or host)",
            mix=DPOP_MIX,
            healthy=True,
            hosts=2,
            dpop=True,
        ),
        Scenario(
            "second_host",
            "opaque tokens and JWTs; a second gunicorn on 127.0.0.2 shares the Redis",
            mix=OPAQUE_MIX,
            healthy=True,
            opaque=True,
            hosts=2,
        ),
    )
}


@dataclasses.dataclass
class Settings:
    duration: float = 60.0
    workers: int = 4
    threads: int = 4
    clients: int = 16
    #: memory, file, redis, or a CCGUARD_CACHE URL.
    cache: str = "redis"
    cooldown: float = 5.0
    max_age: float = 15.0
    http_timeout: float = 5.0
    slow_delay: float = 5.0
    #: Cache-Control max-age the issuer sends on its JWKS; None sends no header.
    issuer_max_age: int | None = None
    max_requests: int = 2_000_000
    #: auto (the example if importable), example or minimal.
    app: str = "auto"
    seed: int = 1
    #: introspection['ttl'] of the opaque-token scenarios.
    introspection_ttl: float = 10.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Tokens:
    """Pre-built tokens of each kind; random-``kid`` tokens are made per request."""

    def __init__(self, issuer: TestIssuer, foreign: TestIssuer, lifetime: int) -> None:
        self._issuer = issuer
        self._lifetime = lifetime
        now = int(time.time())
        self.pools: dict[str, list[str]] = {
            "valid": self._mint_valid(),
            "valid_new": [],
            "expired": [
                issuer.mint(sub=f"expired-{i}", iat=now - 7200, nbf=now - 7200, exp=now - 3600, **CLAIMS)
                for i in range(5)
            ],
        }
        kid = issuer.public_jwk("RS256")["kid"]
        # Forged: the issuer's kid with another key's signature, and a valid
        # token whose payload was changed after signing.
        forged = [foreign.mint(iss=issuer.issuer, aud=AUDIENCE, kid=kid, expires_in=lifetime, **CLAIMS)]
        header, _, signature = self.pools["valid"][0].split(".")
        evil = dict(CLAIMS, iss=issuer.issuer, aud=AUDIENCE, sub="admin", exp=now + lifetime, iat=now)
        forged.append(f"{header}.{_b64(json.dumps(evil).encode())}.{signature}")
        self.pools["forged"] = forged
        self._payload = self.pools["valid"][0].split(".")[1]

    def _mint_valid(self) -> list[str]:
        return [
            self._issuer.mint(sub=f"client-{i}", aud=AUDIENCE, expires_in=self._lifetime, **CLAIMS) for i in range(20)
        ]

    def rotate(self) -> None:
        self.pools["valid_new"] = self._mint_valid()

    def random_kid(self, rng: random.Random) -> str:
        header = {"alg": "RS256", "typ": "at+jwt", "kid": uuid.UUID(int=rng.getrandbits(128)).hex}
        signature = rng.getrandbits(2048).to_bytes(256, "big")
        return f"{_b64(json.dumps(header).encode())}.{self._payload}.{_b64(signature)}"


class StaticFileIssuer(TestIssuer):
    """A TestIssuer whose JWKS is served as nginx, S3 or a CDN serve a file.

    Its JWKS carries an ``ETag`` (a hash of the body) and a ``Last-Modified``,
    and a conditional GET that matches (RFC 9110 §13.1.1-13.1.3) is answered
    ``304 Not Modified`` without a body; :attr:`not_modified` counts those.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.not_modified = 0
        self._modified = email.utils.formatdate(time.time() - 3600, usegmt=True)

    def _respond(self, endpoint: str, method: str, headers: Any, body: bytes) -> tuple[int, Any, bytes]:
        status, extra, content = super()._respond(endpoint, method, headers, body)
        if endpoint != "jwks" or status != 200:
            return status, extra, content
        tag = '"' + hashlib.sha256(content).hexdigest()[:16] + '"'
        extra = [*extra, ("ETag", tag), ("Last-Modified", self._modified)]
        match = headers.get("If-None-Match")
        unchanged = tag in match if match is not None else headers.get("If-Modified-Since") == self._modified
        if unchanged:
            with self._lock:
                self.not_modified += 1
            return 304, extra, b""
        return status, extra, content


@dataclasses.dataclass
class Result:
    scenario: Scenario
    settings: Settings
    cache: str
    app: str
    duration: float
    #: (seconds since start, kind, status (0: no answer), latency seconds)
    records: list[tuple[float, str, int, float]]
    hits_warm: dict[str, int]
    hits_end: dict[str, int]
    worker_stats: list[dict[str, Any]]
    event_times: dict[str, float]
    #: JWKS requests the issuer answered 304 (static-file issuer only).
    not_modified: int = 0
    #: Introspection calls per opaque token of the pool, during the run.
    introspected: dict[str, int] = dataclasses.field(default_factory=dict)
    #: Redis commands executed during the run (INFO commandstats), by command.
    redis_commands: dict[str, int] = dataclasses.field(default_factory=dict)
    #: Redis GET and SET commands after Redis came back (redis_outage).
    redis_after_restart: int = 0

    # -- analysis -------------------------------------------------------------------

    def by_kind(self) -> dict[str, dict[int, int]]:
        table: dict[str, Counter[int]] = {}
        for _, kind, status, _ in self.records:
            table.setdefault(kind, Counter())[status] += 1
        return {k: dict(sorted(v.items())) for k, v in sorted(table.items(), key=lambda kv: KINDS.index(kv[0]))}

    def latency_ms(self, q: float) -> float:
        values = sorted(r[3] for r in self.records)
        if not values:
            return 0.0
        return 1000 * values[min(len(values) - 1, int(q * len(values)))]

    def issuer_requests(self) -> dict[str, dict[str, int]]:
        discovery = ("openid_configuration", "oauth_metadata")
        out = {}
        for label, hits in (("total", self.hits_end), ("during_run", _minus(self.hits_end, self.hits_warm))):
            out[label] = {
                "discovery": sum(hits.get(k, 0) for k in discovery),
                "jwks": hits.get("jwks", 0),
                "introspect": hits.get("introspect", 0),
            }
        return out

    def per_worker_per_cooldown(self) -> float:
        """JWKS requests during the run, per worker and per cooldown window."""
        windows = max(1.0, self.duration / self.settings.cooldown)
        return round(self.issuer_requests()["during_run"]["jwks"] / self.settings.workers / windows, 2)

    def summed_stats(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for stats in self.worker_stats:
            for key, value in stats.items():
                if isinstance(value, int):
                    total[key] += value
            for outcome, count in stats.get("validations", {}).items():
                total[f"validations_{outcome}"] += count
        return dict(total)

    def violations(self) -> list[str]:
        """Every broken promise of the run, as readable lines (empty: all held)."""
        found: Counter[str] = Counter()
        s = self.settings
        rotated = self.event_times.get("rotate")
        grace = s.cooldown + s.http_timeout + 1  # one cooldown, one fetch, one second
        for t, kind, status, _ in self.records:
            if status == 0:
                found["no answer (connection error or client timeout)"] += 1
            elif status >= 500 and status != 503:
                found[f"HTTP {status} (only 503 is allowed, and only without keys)"] += 1
            elif kind == "dpop_replay" and status != 401:
                found[f"replayed DPoP proof answered {status}, not 401" + (" (ACCEPTED)" if status == 200 else "")] += 1
            elif kind in ("valid", "opaque", "dpop") and status != 200:
                found[f"{kind} token refused with {status} while keys / answers were cached"] += 1
            elif kind == "opaque_random" and status not in (401, 503):
                # 503: introspection_rate_limited, the documented bound on calls.
                found[f"random opaque token answered {status}, not 401 or 503"] += 1
            elif kind == "valid_new" and status != 200:
                if status != 401 or rotated is None or t > rotated + grace:
                    found[f"token signed with the rotated-in key refused with {status} after {grace:g} s"] += 1
            elif kind not in ("valid", "valid_new", "opaque", "dpop") and status == 200:
                found[f"{kind} token ACCEPTED"] += 1
            elif kind not in ("valid", "valid_new", "opaque", "opaque_random", "dpop") and status != 401:
                found[f"{kind} token answered {status}, not 401, while keys were cached"] += 1
        lines = [f"{count} x {what}" for what, count in found.items()]
        lines += self._bound_violations()
        return lines

    def _bound_violations(self) -> list[str]:
        s = self.settings
        processes = s.workers * self.scenario.hosts
        lines = []
        span = self.duration + 1
        refresh = max(s.max_age, s.issuer_max_age or 0)
        during = self.issuer_requests()["during_run"]
        refetches = self.summed_stats().get("unknown_kid_refetches", 0)
        per_cooldown = math.ceil(span / s.cooldown) + 1
        if refetches > processes * per_cooldown:
            # An unknown kid: one issuer request per cooldown per process, a
            # 304 revalidation included.
            lines.append(f"{refetches} unknown-kid refetches > {processes} workers x {per_cooldown} cooldowns")
        # KeySet: one fetch per cooldown (unknown kid, or retry after failure)
        # and one refresh per max-age, per process.
        per_process = math.ceil(span / s.cooldown) + math.ceil(span / refresh) + 2
        if during["jwks"] > processes * per_process:
            lines.append(f"{during['jwks']} JWKS requests > {processes} workers x {per_process}")
        # Discovery runs again only inside a key-set fetch: at a refresh once
        # the metadata's freshness lapsed, and after a failed fetch (one per cooldown).
        rediscoveries = math.ceil(span / refresh) + 1 + (0 if self.scenario.healthy else math.ceil(span / s.cooldown))
        if during["discovery"] > processes * rediscoveries:
            lines.append(
                f"{during['discovery']} discovery requests after warm-up > {processes} workers x {rediscoveries}"
            )
        if self.scenario.opaque and self.cache != "memory" and self.introspected:
            # Shared answers: one call per token per ttl across workers and hosts
            # (plus the warm-up call of the first token).
            allowed = math.ceil(span / s.introspection_ttl) + 1
            if "redis_stop" in self.event_times:
                # Redis down: each process remembers its own answers (one call
                # per token per ttl per process while it lasts).
                allowed += processes
            worst = max(self.introspected.values())
            if worst > allowed:
                lines.append(f"a token was introspected {worst} times > {allowed} (one per ttl across workers)")
        if "redis_start" in self.event_times and not self.redis_after_restart:
            lines.append("the shared cache was not used again after Redis came back")
        if len(self.worker_stats) != processes:
            lines.append(f"stats from {len(self.worker_stats)} of {processes} workers (a worker died?)")
        elif self.cache != "memory" and self.scenario.healthy:
            # Shared cache: the regular refreshes of all workers together, one
            # per max-age (unknown-kid refetches bypass the cache by design).
            # HTTP dates have one-second resolution, so a cached copy can look
            # up to a second older than it is.
            regular = during["jwks"] - refetches
            allowed = math.ceil(span / max(1.0, refresh - 1)) + 1
            if regular > allowed:
                lines.append(f"{regular} regular JWKS requests across workers > {allowed} (one per max-age)")
        return lines

    def report(self) -> dict[str, Any]:
        statuses: Counter[int] = Counter(r[2] for r in self.records)
        return {
            "scenario": self.scenario.name,
            "description": self.scenario.description,
            "app": self.app,
            "cache": self.cache,
            "settings": dataclasses.asdict(self.settings),
            "duration_s": round(self.duration, 2),
            "requests": len(self.records),
            "rps": round(len(self.records) / self.duration, 1) if self.duration else 0,
            "p50_ms": round(self.latency_ms(0.5), 2),
            "p99_ms": round(self.latency_ms(0.99), 2),
            "max_ms": round(self.latency_ms(1.0), 1),
            "errors_by_status": {str(k): v for k, v in sorted(statuses.items()) if k != 200},
            "by_kind": {k: {str(s): n for s, n in v.items()} for k, v in self.by_kind().items()},
            "issuer_requests": self.issuer_requests(),
            "jwks_not_modified": self.not_modified,
            "introspection_calls_per_token_max": max(self.introspected.values(), default=0),
            "redis_commands": self.redis_commands,
            "redis_commands_per_request": round(sum(self.redis_commands.values()) / max(1, len(self.records)), 2),
            "redis_commands_after_restart": self.redis_after_restart,
            "jwks_per_worker_per_cooldown": self.per_worker_per_cooldown(),
            "worker_stats": self.summed_stats(),
            "violations": self.violations(),
        }


def _minus(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) - b.get(k, 0) for k in a}


def format_report(rep: dict[str, Any]) -> str:
    st = rep["settings"]
    ws = rep["worker_stats"]
    iss = rep["issuer_requests"]
    lines = [
        f"== {rep['scenario']}: {rep['description']}",
        f"   {rep['app']} app, {st['workers']} workers x {st['threads']} threads, {st['clients']} clients, "
        f"cache {rep['cache']}, cooldown {st['cooldown']:g} s, max-age {st['max_age']:g} s",
        f"   {rep['requests']} requests in {rep['duration_s']} s: {rep['rps']} req/s, "
        f"p50 {rep['p50_ms']} ms, p99 {rep['p99_ms']} ms, max {rep['max_ms']} ms",
        "   statuses: " + "; ".join(f"{k} {v}" for k, v in rep["by_kind"].items()),
        f"   non-200: {rep['errors_by_status'] or 'none'}",
        f"   issuer: discovery {iss['total']['discovery']} (during run {iss['during_run']['discovery']}), "
        f"JWKS {iss['total']['jwks']} (during run {iss['during_run']['jwks']}; "
        f"{rep['jwks_per_worker_per_cooldown']} per worker per cooldown; {rep['jwks_not_modified']} answered 304)",
        f"   introspection: {iss['during_run']['introspect']} calls during the run, at most "
        f"{rep['introspection_calls_per_token_max']} per token; Redis: {rep['redis_commands_per_request']} "
        f"commands per request {rep['redis_commands'] or ''}",
        "   workers: "
        + ", ".join(
            f"{k} {ws.get(k, 0)}"
            for k in (
                "key_fetches",
                "key_fetch_failures",
                "unknown_kid_refetches",
                "cooldown_refusals",
                "stale_keys_served",
                "cache_hits",
                "issuer_requests",
            )
        ),
        "   violations: " + ("none" if not rep["violations"] else "\n     ".join(["", *rep["violations"]])),
    ]
    return "\n".join(lines)


# -- running ---------------------------------------------------------------------------


def _app_spec(choice: str) -> tuple[str, str]:
    if choice == "auto":
        try:
            import example_app  # noqa: F401
        except ImportError:
            choice = "minimal"
        else:
            choice = "example"
    if choice == "example":
        return "example", "example_app:create_app()"
    return "minimal", "benchmarks.minimal_app:create_app()"


def _cache_url(choice: str, workdir: Path, stack: Any) -> tuple[str, RedisServer | None]:
    if choice == "memory":
        return "", None
    if choice == "file":
        return f"file://{workdir / 'httpcache'}", None
    if choice == "redis":
        server = stack.enter_context(running_redis(workdir))
        return server.url, server
    return choice, None


def _commandstats(url: str) -> dict[str, int]:
    """Calls per Redis command so far (``INFO commandstats``); empty if Redis is down."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        info = client.info("commandstats")
    except redis.RedisError:
        return {}
    finally:
        client.close()
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items() if k != "cmdstat_info"}


class IntrospectingIssuer:
    """Builds the ``ibm_verify`` profile issuer (opaque tokens, RFC 7662)
    counting introspection calls per token."""

    @staticmethod
    def create(audience: str) -> Any:
        from urllib.parse import parse_qs

        from flask_ccguard.testing.profiles import profile_class

        base = profile_class("ibm_verify")

        class Counting(base):  # type: ignore[valid-type,misc]
            def _introspect(self, method: str, headers: Any, body: bytes) -> Any:
                token = (parse_qs(body.decode("utf-8", "replace")).get("token") or [""])[0]
                with self._lock:
                    self.per_token[token] += 1
                return super()._introspect(method, headers, body)

        issuer = Counting(audience=audience, start=False)
        issuer.per_token = Counter()
        issuer.opaque_tokens = False  # JWTs unless mint(opaque=True)
        issuer.start()
        return issuer


def _act(
    action: str, issuer: TestIssuer, tokens: Tokens, settings: Settings, redis_server: RedisServer | None = None
) -> None:
    if action in ("redis_stop", "redis_start"):
        if redis_server is None:
            raise ValueError(f"{action} needs --cache redis")
        redis_server.stop() if action == "redis_stop" else redis_server.start()
    elif action == "stop":
        issuer.stop()
    elif action == "slow":
        issuer.jwks_delay = settings.slow_delay
    elif action == "fast":
        issuer.jwks_delay = 0.0
    elif action == "rotate":
        issuer.rotate_keys(keep_old=True)
        tokens.rotate()
    elif action == "error500":
        issuer.jwks_status = 500
    elif action == "garbage":
        issuer.jwks_status, issuer.jwks_body = 200, b"<html><body>Service Unavailable</body></html>"
    elif action == "heal":
        issuer.jwks_status, issuer.jwks_body = 200, None
    else:
        raise ValueError(f"unknown action {action!r}")


def _client(
    address: tuple[str, int],
    tokens: Tokens,
    mix: tuple[tuple[str, float], ...],
    seed: int,
    start: float,
    ctx: dict[str, Any],
) -> None:
    rng = random.Random(seed)
    kinds = [k for k, _ in mix]
    weights = [w for _, w in mix]
    records = ctx["records"]
    stop: threading.Event = ctx["stop"]
    budget: itertools.count[int] = ctx["budget"]

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(address[0], address[1], timeout=30)

    conn = connect()
    while not stop.is_set() and next(budget) < ctx["max_requests"]:
        kind = rng.choices(kinds, weights)[0]
        if kind == "valid" and tokens.pools["valid_new"] and rng.random() < 0.5:
            kind = "valid_new"
        headers: dict[str, str] = {}
        if kind in ("dpop", "dpop_replay"):
            replays: list[tuple[str, str]] = ctx["dpop_accepted"]
            if kind == "dpop_replay" and not replays:
                kind = "dpop"
            if kind == "dpop":
                token = rng.choice(tokens.pools["dpop"])
                proof = ctx["dpop_key"].proof("GET", DPOP_BASE + PATH, token)
            else:
                token, proof = rng.choice(replays)
                conn.close()  # a new connection: most likely another worker
                conn = connect()
            headers = {"Authorization": "DPoP " + token, "DPoP": proof}
        elif kind == "random_kid":
            token = tokens.random_kid(rng)
        elif kind == "opaque_random":
            token = _b64(rng.getrandbits(240).to_bytes(30, "big"))  # never issued: inactive
        else:
            token = rng.choice(tokens.pools[kind])
        t0 = time.perf_counter()
        try:
            conn.request("GET", PATH, headers=headers or {"Authorization": "Bearer " + token})
            resp = conn.getresponse()
            resp.read()
            status = resp.status
            if kind == "dpop" and status == 200 and len(ctx["dpop_accepted"]) < 1000:
                ctx["dpop_accepted"].append((token, headers["DPoP"]))
            if resp.will_close:
                conn.close()
                conn = connect()
        except (OSError, http.client.HTTPException):
            status = 0
            conn.close()
            conn = connect()
        t1 = time.perf_counter()
        records.append((t0 - start, kind, status, t1 - t0))
    conn.close()


def run(name: str, settings: Settings, *, keep: bool = False) -> Result:
    """Run one scenario and return its :class:`Result`."""
    import contextlib
    import shutil

    scenario = SCENARIOS[name]
    app_name, app_spec = _app_spec("minimal" if scenario.opaque or scenario.dpop else settings.app)
    workdir = Path(tempfile.mkdtemp(prefix=f"ccguard-load-{name}-"))
    with contextlib.ExitStack() as stack:
        if not keep:
            stack.callback(shutil.rmtree, workdir, True)
        if scenario.opaque:
            issuer = stack.enter_context(IntrospectingIssuer.create(AUDIENCE))
        else:
            issuer_class = StaticFileIssuer if scenario.etag else TestIssuer
            issuer = stack.enter_context(issuer_class(audience=AUDIENCE))
        foreign = stack.enter_context(TestIssuer(audience=AUDIENCE, start=False))
        if settings.issuer_max_age is not None:
            issuer.jwks_cache_control = f"max-age={settings.issuer_max_age}"
        tokens = Tokens(issuer, foreign, lifetime=int(settings.duration) + 3600)
        issuer_setting: str = issuer.issuer
        if scenario.opaque:
            lifetime = int(settings.duration) + 3600
            tokens.pools["opaque"] = [
                issuer.mint(opaque=True, sub=f"opaque-{i}", aud=AUDIENCE, expires_in=lifetime, **CLAIMS)
                for i in range(OPAQUE_POOL)
            ]
            client_id, secret = next(iter(issuer.introspection_clients.items()))
            issuer_setting = json.dumps(
                {
                    "issuer": issuer.issuer,
                    "introspection": {
                        "endpoint": issuer.introspection_endpoint,
                        "client_id": client_id,
                        "client_secret": secret,
                        "ttl": settings.introspection_ttl,
                        # Above what the pool's refreshes and the random tokens need:
                        # a valid token must never meet the bound here.
                        "max_calls_per_second": 500,
                    },
                }
            )
        if scenario.dpop:
            from tests.dpop_proofs import DPoPKey  # the test suite's proof maker

            dpop_key = DPoPKey()
            lifetime = int(settings.duration) + 3600
            tokens.pools["dpop"] = [
                issuer.mint(sub=f"dpop-{i}", aud=AUDIENCE, expires_in=lifetime, cnf={"jkt": dpop_key.jkt}, **CLAIMS)
                for i in range(20)
            ]
        cache, redis_srv = _cache_url(settings.cache, workdir, stack)
        env = {
            "CCGUARD_ISSUER": issuer_setting,
            "CCGUARD_AUDIENCE": AUDIENCE,
            "CCGUARD_CACHE": cache,
            "CCGUARD_JWKS_REFRESH_COOLDOWN": str(settings.cooldown),
            "CCGUARD_JWKS_MAX_AGE": str(settings.max_age),
            "CCGUARD_HTTP_TIMEOUT": str(settings.http_timeout),
            "LOADTEST_WARM_TOKEN": tokens.pools["valid"][0],
            "LOADTEST_PATH": PATH,
            "EXAMPLE_INSTANCE_PATH": str(workdir / "instance"),
        }
        if scenario.dpop:
            env["CCGUARD_PUBLIC_BASE_URL"] = DPOP_BASE
        if not cache:
            del env["CCGUARD_CACHE"]
        if app_name == "example":
            _init_example(env)
        servers = []
        for host in range(scenario.hosts):
            hostdir = workdir if host == 0 else workdir / f"host{host + 1}"
            hostdir.mkdir(exist_ok=True)
            server = Gunicorn(
                app_spec, env, hostdir, workers=settings.workers, threads=settings.threads, host=f"127.0.0.{host + 1}"
            )
            stack.callback(server.stop)
            servers.append(server)
        for server in servers:
            warm = server.wait_ready()
            if any(status != 200 for status in warm):
                raise RuntimeError(f"warm-up answered {warm}; see {server.workdir}:\n{server.log_tail()}")
        if scenario.opaque:
            _warm_pool(servers, tokens.pools["opaque"])
        hits_warm = dict(issuer.hits)
        introspected_warm = dict(getattr(issuer, "per_token", {}))
        redis_before = _commandstats(cache) if redis_srv is not None else {}

        ctx: dict[str, Any] = {
            "records": [],
            "stop": threading.Event(),
            "budget": itertools.count(),
            "max_requests": settings.max_requests,
            "dpop_accepted": [],
            "dpop_key": dpop_key if scenario.dpop else None,
        }
        start = time.perf_counter()
        clients = [
            threading.Thread(
                target=_client,
                args=(
                    (servers[i % len(servers)].host, servers[i % len(servers)].port),
                    tokens,
                    scenario.mix,
                    settings.seed * 1000 + i,
                    start,
                    ctx,
                ),
                daemon=True,
            )
            for i in range(settings.clients)
        ]
        for thread in clients:
            thread.start()
        event_times: dict[str, float] = {}
        redis_during: dict[str, int] = {}
        for fraction, action in scenario.events:
            ctx["stop"].wait(max(0.0, start + fraction * settings.duration - time.perf_counter()))
            if ctx["stop"].is_set():
                break
            event_times[action] = time.perf_counter() - start
            if action == "redis_stop" and redis_srv is not None:
                # The commands until the stop, as the restarted server counts from 0.
                redis_during = _minus(_commandstats(cache), redis_before)
                redis_before = {}
            _act(action, issuer, tokens, settings, redis_srv)
        ctx["stop"].wait(max(0.0, start + settings.duration - time.perf_counter()))
        ctx["stop"].set()
        for thread in clients:
            thread.join(60)
        duration = time.perf_counter() - start
        hits_end = dict(issuer.hits)
        redis_commands: dict[str, int] = {}
        redis_after_restart = 0
        if redis_srv is not None:
            after = _minus(_commandstats(cache), redis_before)
            if "redis_start" in event_times:
                redis_after_restart = after.get("set", 0) + after.get("get", 0)
            for command in {*after, *redis_during}:
                redis_commands[command] = after.get(command, 0) + redis_during.get(command, 0)
        stats = [s for server in servers for s in server.stop()]
        per_token = getattr(issuer, "per_token", {})
        pool = tokens.pools.get("opaque", [])
        introspected = {t[:8]: per_token.get(t, 0) - introspected_warm.get(t, 0) for t in pool}
    return Result(
        scenario,
        settings,
        settings.cache if settings.cache in ("memory", "file", "redis") else "url",
        app_name,
        duration,
        ctx["records"],
        hits_warm,
        hits_end,
        stats,
        event_times,
        getattr(issuer, "not_modified", 0),
        introspected,
        dict(sorted(redis_commands.items())),
        redis_after_restart,
    )


def _warm_pool(servers: list[Gunicorn], pool: list[str]) -> None:
    """Send each opaque token once (about 100 a second), so that the run
    measures the steady state: answers cached, refreshed once per ttl."""
    for i, token in enumerate(pool):
        server = servers[i % len(servers)]
        conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
        try:
            conn.request("GET", PATH, headers={"Authorization": "Bearer " + token})
            conn.getresponse().read()
        finally:
            conn.close()
        time.sleep(0.01)


def _init_example(env: dict[str, str]) -> None:
    """Create the example's database once, before several workers race to."""
    import subprocess

    from .servers import ROOT

    code = "import example_app; example_app.create_app()"
    full = dict(os.environ, **env, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, "-c", code], env=full, check=True, capture_output=True, timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", default=["all"], help=f"'all' or any of {', '.join(SCENARIOS)}")
    defaults = Settings()
    for field in dataclasses.fields(Settings):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        kind = int if field.name in ("issuer_max_age",) else type(default)
        parser.add_argument(flag, type=kind, default=default, help=f"(default: {default})")
    parser.add_argument("--json", metavar="FILE", help="also write the reports as JSON")
    parser.add_argument("--keep", action="store_true", help="keep each run's directory (logs)")
    args = parser.parse_args(argv)
    names = list(SCENARIOS) if args.scenarios in (["all"], []) else args.scenarios
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    settings = Settings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)})
    reports = []
    for name in names:
        rep = run(name, settings, keep=args.keep).report()
        print(format_report(rep), flush=True)
        reports.append(rep)
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2))
    return 1 if any(r["violations"] for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
