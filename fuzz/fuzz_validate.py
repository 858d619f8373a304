"""Coverage-guided fuzzing of TokenValidator.validate with atheris (outside CI).

Usage (atheris builds on CPython 3.8-3.11 with clang/libFuzzer)::

    pip install atheris
    PYTHONPATH=. python fuzz/fuzz_validate.py -max_total_time=600 fuzz/corpus

Each input is turned into one of five shapes: raw bytes, a raw string, a
token with fuzzed header members and claim values *signed by the issuer's
real key* (so the fuzzer reaches the header, key and claim checks and
VerifiedToken), a signed token with fuzzed payload bytes, or a valid token
with a few characters changed. The
property: only CCGuardError comes out (and never one reporting a swallowed
internal error), and no changed token is ever accepted.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import atheris

with atheris.instrument_imports():
    from flask_ccguard import CCGuardError, TokenValidator
    from flask_ccguard.core.jws import parse_compact
    from flask_ccguard.testing import TestIssuer

ALGS = ("RS256", "PS256", "ES256", "EdDSA")
CLAIMS = ("iss", "aud", "exp", "nbf", "iat", "sub", "scope", "scp", "roles", "client_id", "azp")
HEADERS = ("alg", "kid", "typ", "crit", "b64", "jku", "x5u", "jwk", "x5c", "nonce", "cty")

ISSUER = TestIssuer(algorithms=ALGS)
VALIDATOR = TokenValidator(ISSUER.issuer, audience=ISSUER.audience, algorithms=ALGS, http_timeout=2)
VALIDATOR.validate(ISSUER.mint())  # load the keys once
SEED_TOKENS = [ISSUER.mint(alg=alg, expires_in=10**7, scope="a b", roles=["r"]) for alg in ALGS]
KIDS = [ISSUER.public_jwk(alg)["kid"] for alg in ALGS]


def _value(fdp: Any, depth: int = 0) -> Any:
    """A JSON value of the fuzzer's choosing."""
    kind = fdp.ConsumeIntInRange(0, 8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeInt(8)
    if kind == 3:
        return fdp.ConsumeRegularFloat()
    if kind == 4:
        return fdp.ConsumeUnicodeNoSurrogates(24)
    if kind == 5:
        return [ISSUER.issuer, ISSUER.audience, "a", "r", 1][fdp.ConsumeIntInRange(0, 4)]
    if kind == 6:
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    if kind == 7:
        return {fdp.ConsumeUnicodeNoSurrogates(6): _value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))}
    return fdp.ConsumeIntInRange(1_600_000_000, 2_200_000_000)


def _token(fdp: Any) -> tuple[Any, str | None]:
    """A candidate token, and the valid original it was derived from (mutations only)."""
    mode = fdp.ConsumeIntInRange(0, 4)
    if mode == 0:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4096)), None
    if mode == 1:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 4096)), None
    index = fdp.ConsumeIntInRange(0, len(ALGS) - 1)
    alg = ALGS[index]
    if mode == 2:
        # Fuzzed header members and claims around a valid core, signed by the
        # issuer: reaches the header checks, key lookup and claim checks.
        header: dict[str, Any] = {"alg": alg, "kid": KIDS[index]}
        for _ in range(fdp.ConsumeIntInRange(0, 3)):
            header[HEADERS[fdp.ConsumeIntInRange(0, len(HEADERS) - 1)]] = _value(fdp)
        claims: dict[str, Any] = {"iss": ISSUER.issuer, "aud": ISSUER.audience, "exp": 2_100_000_000, "iat": 1}
        for _ in range(fdp.ConsumeIntInRange(0, 4)):
            claims[CLAIMS[fdp.ConsumeIntInRange(0, len(CLAIMS) - 1)]] = _value(fdp)
        return ISSUER.sign(header, json.dumps(claims).encode(), alg=alg), None
    if mode == 3:
        payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 2048))
        return ISSUER.sign({"alg": alg, "kid": KIDS[index]}, payload, alg=alg), None
    original = SEED_TOKENS[index]
    chars = list(original)
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        pos = fdp.ConsumeIntInRange(0, len(chars) - 1)
        op = fdp.ConsumeIntInRange(0, 2)
        ch = chr(fdp.ConsumeIntInRange(0, 127))
        if op == 0:
            chars[pos] = ch
        elif op == 1:
            chars.insert(pos, ch)
        elif len(chars) > 1:
            del chars[pos]
    return "".join(chars), original


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    token, original = _token(fdp)
    with contextlib.suppress(CCGuardError):
        parse_compact(token, 16384)
    try:
        verified = VALIDATOR.validate(token)
    except CCGuardError as exc:
        if exc.reason == "internal":
            raise AssertionError("validate() swallowed an unexpected exception") from exc
        return
    if original is not None and token != original:
        raise AssertionError(f"a changed token was accepted: {token!r}")
    # Everything an application reads must work on an accepted token.
    _ = (verified.subject, verified.scopes, verified.roles, verified.audiences, verified.client_id)
    _ = (verified.expires_at, verified.issued_at, dict(verified.claims), dict(verified.header))


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    try:
        atheris.Fuzz()
    finally:
        ISSUER.stop()


if __name__ == "__main__":
    main()
