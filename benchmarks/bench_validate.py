"""Benchmark: flask-ccguard token validation against the bare signature check and Python peers.

Run with ``tox -e bench`` or ``python benchmarks/bench_validate.py [--json out.json]``.
Every figure is a median of per-round ratios measured in one interleaved run
(see :mod:`harness`), so a busy machine moves both sides of a ratio together.

Groups, per algorithm (RS256, ES256, PS256, EdDSA):

* ``limit``: split, base64url-decode, ``json.loads`` header and payload, one
  ``cryptography`` verify with a pre-loaded key (and pre-built padding/hash);
* ``ccguard first-seen``: ``TokenValidator.validate`` over a pool of distinct
  tokens larger than its token cache, so every call is a miss;
* ``ccguard repeated``: ``validate`` of one token again and again (cache hits);
* PyJWT with a cached ``PyJWK``, joserfc and Authlib with imported keys, and
  python-jose the quickstart way (a JWK dict on every call).

Then a Flask app driven through ``app.wsgi_app(environ, start_response)``:
an unprotected view against the same view under ``@require_roles``.
Finally the cost of ``import flask_ccguard`` against importing the
third-party modules it pulls in.
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import timeit
import tracemalloc
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import Case, Group, run_groups, use_clock

import flask_ccguard
from flask_ccguard import TokenValidator
from flask_ccguard.testing import TestIssuer

ALGORITHMS = ("RS256", "ES256", "PS256", "EdDSA")
AUDIENCE = "api://8a1c4e2f-5b7d-4c3a-9e6f-1d2b3c4d5e6f"
TARGETS = {
    "first_seen": {"RS256": 0.85, "PS256": 0.85, "ES256": 0.9, "EdDSA": 0.9},
    "repeated": 10.0,
    "flask_repeated": 0.85,
    "flask_first_seen_rs256": 0.45,
    "import": 1.2,
    # Cost bounds (lower is better): a first-seen DPoP request against the token's
    # verification plus one proof's; a cached token with a fresh proof against one proof.
    "dpop_first_seen_cost": 1.10,
    "dpop_repeated_proofs": 2.0,
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- tokens -------------------------------------------------------------------------------


def realistic_claims(tenant: str) -> dict[str, Any]:
    """Claims shaped like a Microsoft Entra ID v2 client-credentials access token."""
    app_id = "3f2b1c0d-9e8f-4a7b-8c6d-5e4f3a2b1c0d"
    return {
        "aud": AUDIENCE,
        "azp": app_id,
        "azpacr": "1",
        "client_id": app_id,
        "idp": f"https://sts.windows.net/{tenant}/",
        "oid": str(uuid.uuid4()),
        "rh": "0.AQsA" + uuid.uuid4().hex + "AAA.",
        "roles": ["archivist_administrator", "assets.read"],
        "scope": "assets.read assets.write",
        "sub": str(uuid.uuid4()),
        "tid": tenant,
        "uti": uuid.uuid4().hex[:22],
        "ver": "2.0",
    }


def mint_pool(issuer: TestIssuer, alg: str, size: int) -> list[str]:
    tenant = str(uuid.uuid4())
    return [issuer.mint(alg=alg, expires_in=3600, **realistic_claims(tenant)) for _ in range(size)]


# -- contenders ---------------------------------------------------------------------------


def limit_op(alg: str, public_key: Any) -> Callable[[str], object]:
    """The floor: what any validator must do, written inline with nothing else."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    b64 = base64.urlsafe_b64decode
    loads = json.loads

    def parts(token: str) -> tuple[bytes, dict[str, Any], bytes]:
        h, p, s = token.split(".")
        loads(b64(h + "=" * (-len(h) % 4)))
        payload = loads(b64(p + "=" * (-len(p) % 4)))
        return f"{h}.{p}".encode("ascii"), payload, b64(s + "=" * (-len(s) % 4))

    if alg in ("RS256", "PS256"):
        sha = hashes.SHA256()
        pad = padding.PKCS1v15() if alg == "RS256" else padding.PSS(padding.MGF1(hashes.SHA256()), 32)

        def rsa(token: str) -> object:
            data, payload, sig = parts(token)
            public_key.verify(sig, data, pad, sha)
            return payload

        return rsa
    if alg == "ES256":
        ecdsa = ec.ECDSA(hashes.SHA256())

        def es(token: str) -> object:
            data, payload, sig = parts(token)
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            public_key.verify(der, data, ecdsa)
            return payload

        return es

    def ed(token: str) -> object:
        data, payload, sig = parts(token)
        public_key.verify(sig, data)
        return payload

    return ed


def peer_ops(issuer: TestIssuer, alg: str) -> dict[str, Callable[[str], object] | None]:
    """Each peer used the way its documentation shows, checking signature, exp, iss and aud."""
    jwk_dict = issuer.public_jwk(alg)
    iss, aud = issuer.issuer, AUDIENCE
    ops: dict[str, Callable[[str], object] | None] = {}

    import jwt as pyjwt

    pyjwk = pyjwt.PyJWK(jwk_dict, alg)

    def pyjwt_op(token: str) -> object:
        return pyjwt.decode(token, pyjwk, algorithms=[alg], audience=aud, issuer=iss)

    ops["PyJWT (cached PyJWK)"] = pyjwt_op

    from joserfc import jwk as rfc_jwk
    from joserfc import jwt as rfc_jwt

    rfc_key = rfc_jwk.import_key(jwk_dict)
    registry = rfc_jwt.JWTClaimsRegistry(iss={"essential": True, "value": iss}, aud={"essential": True, "value": aud})

    warnings.filterwarnings("ignore", message="EdDSA is deprecated")  # RFC 9864 prefers "Ed25519"

    def joserfc_op(token: str) -> object:
        tok = rfc_jwt.decode(token, rfc_key, algorithms=[alg])
        registry.validate(tok.claims)
        return tok.claims

    ops["joserfc"] = joserfc_op

    try:
        with warnings.catch_warnings(record=True):  # authlib.jose is deprecated (for joserfc) but shipped
            from authlib.jose import JsonWebKey, JsonWebToken
    except ImportError:
        ops["Authlib"] = None
    else:
        authlib_jwt = JsonWebToken([alg])
        authlib_key = JsonWebKey.import_key(jwk_dict)
        options = {"iss": {"essential": True, "value": iss}, "aud": {"essential": True, "value": aud}}

        def authlib_op(token: str) -> object:
            claims = authlib_jwt.decode(token, authlib_key, claims_options=options)
            claims.validate()
            return claims

        ops["Authlib"] = authlib_op

    from jose import jwt as jose_jwt

    def jose_op(token: str) -> object:
        return jose_jwt.decode(token, jwk_dict, algorithms=[alg], audience=aud, issuer=iss)

    ops["python-jose (JWK dict per call)"] = jose_op
    return ops


def validate_groups(issuer: TestIssuer, pool_size: int) -> list[Group]:
    groups = []
    for alg in ALGORITHMS:
        log(f"minting {pool_size} {alg} tokens")
        pool = mint_pool(issuer, alg, pool_size)
        validator = TokenValidator(issuer.issuer, AUDIENCE, algorithms=[alg])
        validator.validate(pool[0])  # loads the keys once, as a running server would have
        size = getattr(validator, "token_cache_size", 0)
        if size >= pool_size:
            raise SystemExit(f"--pool must exceed the token cache ({size}) for first-seen tokens to miss")
        repeated = pool[:1]
        cases = [
            Case("limit", limit_op(alg, issuer.key_for(alg).public_key()), pool),
            Case("flask-ccguard first-seen", validator.validate, pool),
            Case("flask-ccguard repeated", validator.validate, repeated),
        ]
        for case in cases:  # ours and the limit must accept the tokens they are timed on
            case.op(pool[0])
        for name, op in peer_ops(issuer, alg).items():
            try:
                if op is None:
                    raise NotImplementedError
                op(pool[0])
            except Exception as exc:  # the peer cannot do this algorithm
                log(f"{name}: {alg} not supported ({type(exc).__name__}); shown as n/a")
                continue
            cases.append(Case(name, op, pool))
        groups.append(Group(alg, cases))
    return groups


# -- DPoP (RFC 9449) --------------------------------------------------------------------------


class _FreshKeys:
    """A replay store that never refuses: each key made unique, so the pool's
    proofs can be cycled; the underlying store does its full work per call."""

    def __init__(self) -> None:
        from flask_ccguard.core.store import MemoryStore

        self.inner = MemoryStore(100_000, 100_000 * 200)
        self.n = 0

    def add_if_absent(self, key: bytes, value: bytes, ttl: float) -> bool:
        self.n += 1
        return self.inner.add_if_absent(key + self.n.to_bytes(8, "big"), value, ttl)

    def get(self, key: bytes) -> bytes | None:
        return self.inner.get(key)

    def set(self, key: bytes, value: bytes, ttl: float) -> None:
        self.inner.set(key, value, ttl)

    def delete(self, key: bytes) -> None:
        self.inner.delete(key)


def dpop_group(issuer: TestIssuer, pool_size: int) -> Group:
    """RS256 tokens bound to ES256 client keys, each request with a fresh proof.

    Baseline: the token's first-seen verification plus one proof verification,
    made by two separate objects; then ``validate(token, request)`` with the
    binding step, for first-seen tokens and for one repeated (cached) token.
    """
    from flask_ccguard.core.binding import SenderConstraint
    from flask_ccguard.core.dpop import DPoPVerifier
    from flask_ccguard.core.request import Headers, HTTPRequest
    from tests.dpop_proofs import DPoPKey

    url = "https://api.example.com/v1/assets"
    clients = [DPoPKey() for _ in range(16)]
    log(f"minting {pool_size} DPoP-bound tokens and proofs")
    tenant = str(uuid.uuid4())

    def request(token: str, key: DPoPKey) -> HTTPRequest:
        headers = Headers([("Authorization", f"DPoP {token}"), ("DPoP", key.proof("GET", url, token))])
        return HTTPRequest("GET", url, headers)

    pairs = []
    for i in range(pool_size):
        key = clients[i % len(clients)]
        token = issuer.mint(alg="RS256", expires_in=3600, cnf={"jkt": key.jkt}, **realistic_claims(tenant))
        pairs.append((token, request(token, key)))
    repeated_token = pairs[0][0]
    repeated = [(repeated_token, request(repeated_token, clients[0])) for _ in range(pool_size)]

    def verifier() -> DPoPVerifier:
        # iat window of an hour: the pool's proofs stay acceptable for the whole run.
        return DPoPVerifier(("ES256",), iat_past=3600, replay_store=_FreshKeys())

    plain = TokenValidator(issuer.issuer, AUDIENCE, algorithms=["RS256"])
    alone = verifier()
    bound = TokenValidator(issuer.issuer, AUDIENCE, algorithms=["RS256"])
    bound.pipeline.add_binding(SenderConstraint(alone_bound := verifier()))
    del alone_bound

    def limit(item: tuple[str, HTTPRequest]) -> object:
        token, req = item
        plain.validate(token)
        return alone.verify(req.headers["DPoP"], method="GET", url=url, access_token=token, jkt=None)

    def proof_only(item: tuple[str, HTTPRequest]) -> object:
        token, req = item
        return alone.verify(req.headers["DPoP"], method="GET", url=url, access_token=token, jkt=None)

    def ours(item: tuple[str, HTTPRequest]) -> object:
        return bound.validate(item[0], item[1])

    cases = [
        Case("token + one proof (limit)", limit, pairs),
        Case("flask-ccguard DPoP first-seen", ours, pairs),
        Case("flask-ccguard DPoP repeated token, fresh proofs", ours, repeated),
        Case("one proof verification", proof_only, pairs),
    ]
    for case in cases:
        case.op(case.items[0])
    return Group("DPoP", cases)


# -- Flask ----------------------------------------------------------------------------------


def flask_group(issuer: TestIssuer, pool_size: int) -> Group | None:
    try:
        from flask import Flask, request

        from flask_ccguard import CCGuard, require_roles  # type: ignore[attr-defined]
    except ImportError:
        log("flask_ccguard has no Flask extension yet: skipping the Flask benchmark")
        return None
    from werkzeug.test import EnvironBuilder

    app = Flask("bench")
    app.config.update(CCGUARD_ISSUER=issuer.issuer, CCGUARD_AUDIENCE=AUDIENCE, CCGUARD_ALGORITHMS=["RS256"])
    CCGuard(app)

    @app.get("/open")
    def open_view() -> dict[str, Any]:
        return {"assets": []}

    limit = limit_op("RS256", issuer.key_for("RS256").public_key())

    @app.get("/limit")
    def limit_view() -> dict[str, Any]:
        # The reference: the bare signature check of the limit, inline in the view.
        limit(request.environ["HTTP_AUTHORIZATION"][len("Bearer ") :])
        return {"assets": []}

    @app.get("/guarded")
    @require_roles("archivist_administrator")
    def guarded_view() -> dict[str, Any]:
        return {"assets": []}

    log(f"minting {pool_size} RS256 tokens for Flask")
    pool = mint_pool(issuer, "RS256", pool_size)

    def environ(path: str, token: str | None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return EnvironBuilder(path=path, headers=headers).get_environ()

    wsgi = app.wsgi_app
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        statuses.append(status)

    def call(env: dict[str, Any]) -> object:
        body = wsgi(dict(env), start_response)
        try:
            return b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    open_envs = [environ("/open", token) for token in pool]
    first_envs = [environ("/guarded", token) for token in pool]
    repeated_envs = first_envs[:1]
    limit_envs = [environ("/limit", token) for token in pool]
    cases = [
        Case("unprotected view", call, open_envs),
        Case("@require_roles, repeated token", call, repeated_envs),
        Case("@require_roles, first-seen RS256", call, first_envs),
        Case("reference: the limit inline in the view, first-seen RS256", call, limit_envs),
    ]
    for case in cases:
        statuses.clear()
        case.op(case.items[0])
        if statuses != ["200 OK"]:
            raise SystemExit(f"Flask case {case.name!r} answered {statuses}")
    return Group("Flask", cases)


# -- cache memory -------------------------------------------------------------------------


def cache_memory(issuer: TestIssuer, entries: int) -> dict[str, Any]:
    """Bytes per verified-token cache entry (tracemalloc), and what a SHA-256 key would change."""
    pool = mint_pool(issuer, "EdDSA", entries)
    validator = TokenValidator(issuer.issuer, AUDIENCE, algorithms=["EdDSA"], token_cache_size=entries)
    validator.validate(pool[0])
    cache = validator.token_cache
    assert cache is not None
    cache.clear()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for token in pool:
        validator.validate(token)
        validator.validate(token)  # stored on the second verification
    gc.collect()
    traced = (tracemalloc.get_traced_memory()[0] - before) / entries
    tracemalloc.stop()
    assert len(cache) == entries
    # The token string was allocated before tracing started, but the cache keeps it alive.
    token_bytes = statistics.mean(sys.getsizeof(t) for t in pool)
    digest_bytes = sys.getsizeof(hashlib.sha256(b"").digest())

    def fresh() -> list[str]:  # new string objects, as every request brings
        return [(t + " ")[:-1] for t in pool]

    def per_token(fn: Callable[[list[str]], object]) -> float:
        best = min(timeit.repeat(lambda: fn(fresh()), number=5, repeat=5))
        copy = min(timeit.repeat(fresh, number=5, repeat=5))
        return 1e6 * max(best - copy, 0.0) / (5 * len(pool))

    return {
        "entries": entries,
        "token_chars": statistics.mean(len(t) for t in pool),
        "bytes_per_entry": traced + token_bytes,
        "token_key_bytes": token_bytes,
        "sha256_key_bytes_per_entry": traced + digest_bytes,
        "str_hash_us": per_token(lambda ts: [hash(t) for t in ts]),
        "sha256_key_us": per_token(lambda ts: [hashlib.sha256(t.encode()).digest() for t in ts]),
    }


# -- import cost ----------------------------------------------------------------------------

_TIMED_IMPORT = "import time; t = time.process_time(); {stmt}; print(time.process_time() - t)"
_LIST_DEPS = (
    "import sys; before = set(sys.modules); import flask_ccguard; "
    "names = sorted(m for m in set(sys.modules) - before "
    "if m.split('.')[0] not in sys.stdlib_module_names and not m.startswith('flask_ccguard') "
    "and not m.startswith('_') and getattr(sys.modules[m], '__spec__', None) is not None); "
    "print(' '.join(names))"
)


def import_cost(runs: int) -> dict[str, Any]:
    """CPU time of ``import flask_ccguard`` over the time to import the same third-party modules."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent), PYTHONDONTWRITEBYTECODE="")
    deps = subprocess.run(
        [sys.executable, "-c", _LIST_DEPS], env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    statements = {
        "flask_ccguard": "import flask_ccguard",
        "dependencies": "import " + ", ".join(deps),
    }
    times: dict[str, list[float]] = {name: [] for name in statements}
    for _ in range(runs + 1):  # the first run warms the bytecode caches and is dropped
        for name, stmt in statements.items():
            out = subprocess.run(
                [sys.executable, "-c", _TIMED_IMPORT.format(stmt=stmt)], env=env, check=True, capture_output=True
            )
            times[name].append(float(out.stdout))
    ours, theirs = times["flask_ccguard"][1:], times["dependencies"][1:]
    ratios = [a / b for a, b in zip(ours, theirs)]
    top = sorted({d.split(".")[0] for d in deps})
    return {
        "ratio": statistics.median(ratios),
        "flask_ccguard_ms": 1e3 * statistics.median(ours),
        "dependencies_ms": 1e3 * statistics.median(theirs),
        "dependency_packages": top,
        "dependency_modules": len(deps),
    }


# -- report ---------------------------------------------------------------------------------


def _fmt_ratio(value: float) -> str:
    return f"{value:.0f}x" if value >= 10 else f"{value:.2f}"


def markdown(results: dict[str, Any]) -> str:
    validate = results["validate"]
    algs = list(validate)
    names: list[str] = []
    for alg in algs:
        names.extend(n for n in validate[alg] if n not in names)
    lines = (
        [
            "Throughput relative to the limit (higher is better; limit = 1.00):",
            "",
            "| | " + " | ".join(algs) + " |",
            "|---|" + "---:|" * len(algs),
            "| limit, µs per token | " + " | ".join(f"{validate[a]['limit']['us_per_op']:.1f}" for a in algs) + " |",
        ]
        if algs
        else []
    )
    for name in names:
        cells = [_fmt_ratio(validate[a][name]["ratio"]) if name in validate[a] else "n/a" for a in algs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    flask = results.get("flask")
    if flask:
        lines += [
            "",
            "Flask, ``app.wsgi_app`` called directly, relative to the unprotected view:",
            "",
            "| view | ratio | µs per request |",
            "|---|---:|---:|",
        ]
        for name, row in flask.items():
            lines.append(f"| {name} | {row['ratio']:.2f} | {row['us_per_op']:.1f} |")
    mem = results.get("cache_memory")
    if mem:
        lines += [
            "",
            f"Token cache: {mem['bytes_per_entry'] / 1024:.1f} KiB per entry for a {mem['token_chars']:.0f}-character "
            f"token ({mem['token_key_bytes'] / 1024:.1f} KiB of it the token itself, the key); a SHA-256 key would "
            f"make it {mem['sha256_key_bytes_per_entry'] / 1024:.1f} KiB but cost {mem['sha256_key_us']:.2f} µs "
            f"per lookup instead of {mem['str_hash_us']:.2f} µs.",
        ]
    dpop = results.get("dpop")
    if dpop:
        lines += [
            "",
            "DPoP (RFC 9449): RS256 tokens bound to ES256 keys, a fresh proof per request:",
            "",
            "| | ratio to limit | µs per request |",
            "|---|---:|---:|",
        ]
        for name, row in dpop.items():
            lines.append(f"| {name} | {row['ratio']:.2f} | {row['us_per_op']:.1f} |")
    imp = results.get("import")
    if imp:
        lines += [
            "",
            f"``import flask_ccguard``: {imp['flask_ccguard_ms']:.0f} ms, its dependencies "
            f"({', '.join(imp['dependency_packages'])}): {imp['dependencies_ms']:.0f} ms, "
            f"ratio {imp['ratio']:.2f}.",
        ]
    return "\n".join(lines)


def check_targets(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for alg, rows in results["validate"].items():
        first = rows["flask-ccguard first-seen"]["ratio"]
        peers = {n: r["ratio"] for n, r in rows.items() if n not in ("limit",) and not n.startswith("flask-ccguard")}
        out[f"first_seen_{alg}"] = {
            "value": first,
            "target": TARGETS["first_seen"][alg],
            "met": first >= TARGETS["first_seen"][alg] and all(first > p for p in peers.values()),
        }
        rep = rows["flask-ccguard repeated"]["ratio"]
        out[f"repeated_{alg}"] = {"value": rep, "target": TARGETS["repeated"], "met": rep >= TARGETS["repeated"]}
    flask = results.get("flask")
    if flask:
        rep = flask["@require_roles, repeated token"]["ratio"]
        first = flask["@require_roles, first-seen RS256"]["ratio"]
        out["flask_repeated"] = {"value": rep, "target": TARGETS["flask_repeated"], "met": rep >= 0.85}
        out["flask_first_seen_RS256"] = {"value": first, "target": 0.45, "met": first >= 0.45}
    dpop = results.get("dpop")
    if dpop:
        limit = dpop["token + one proof (limit)"]["ratio"]
        first = limit / dpop["flask-ccguard DPoP first-seen"]["ratio"]
        proofs = (
            dpop["one proof verification"]["ratio"] / dpop["flask-ccguard DPoP repeated token, fresh proofs"]["ratio"]
        )
        out["dpop_first_seen_cost"] = {
            "value": first,
            "target": TARGETS["dpop_first_seen_cost"],
            "met": first <= TARGETS["dpop_first_seen_cost"],
        }
        out["dpop_repeated_proofs"] = {
            "value": proofs,
            "target": TARGETS["dpop_repeated_proofs"],
            "met": proofs < TARGETS["dpop_repeated_proofs"],
        }
    imp = results.get("import")
    if imp:
        out["import"] = {"value": imp["ratio"], "target": TARGETS["import"], "met": imp["ratio"] <= TARGETS["import"]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds (default 30)")
    parser.add_argument("--seconds", type=float, default=0.02, help="seconds per batch (default 0.02)")
    parser.add_argument("--pool", type=int, default=2048, help="distinct tokens per algorithm (default 2048)")
    parser.add_argument("--import-runs", type=int, default=15, help="import timings (default 15)")
    parser.add_argument(
        "--clock", choices=("thread", "wall"), default="thread", help="time batches by thread CPU time (default)"
    )
    parser.add_argument("--skip-flask", action="store_true")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--only-dpop", action="store_true", help="run the DPoP group alone")
    args = parser.parse_args(argv)
    use_clock(args.clock)

    results: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "flask_ccguard": flask_ccguard.__version__,
        "rounds": args.rounds,
        "clock": args.clock,
        "seconds_per_batch": args.seconds,
        "pool": args.pool,
        "date": time.strftime("%Y-%m-%d"),
    }
    with TestIssuer(algorithms=ALGORITHMS, audience=AUDIENCE, token_lifetime=3600) as issuer:
        groups = [] if args.only_dpop else validate_groups(issuer, args.pool)
        flask = None if args.skip_flask or args.only_dpop else flask_group(issuer, args.pool)
        dpop = dpop_group(issuer, args.pool)
        everything = groups + ([flask] if flask else []) + [dpop]
        log(f"running {args.rounds} interleaved rounds")
        run_groups(everything, rounds=args.rounds, seconds=args.seconds, progress=log)
        if not args.only_dpop:
            log("measuring the token cache's memory")
            results["cache_memory"] = cache_memory(issuer, 1024)
    results["validate"] = {g.name: g.summary() for g in groups}
    results["dpop"] = dpop.summary()
    if flask:
        results["flask"] = flask.summary()
    if not args.skip_import and not args.only_dpop:
        log("timing imports")
        results["import"] = import_cost(args.import_runs)
    results["targets"] = check_targets(results)
    print(markdown(results))
    missed = [name for name, t in results["targets"].items() if not t["met"]]
    print("\nTargets: " + ("all met" if not missed else "missed: " + ", ".join(missed)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
