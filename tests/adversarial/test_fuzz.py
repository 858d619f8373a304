"""Property-based fuzzing (hypothesis) of the token parser and the validator: only CCGuardError ever escapes.

CI runs a fixed, derandomized budget. A longer run::

    CCGUARD_FUZZ_EXAMPLES=200000 pytest tests/adversarial/test_fuzz.py -p no:cacheprovider
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_ccguard import CCGuard, CCGuardError, TokenValidator, current_token, require_roles, require_scopes
from flask_ccguard.core.jws import parse_compact
from flask_ccguard.testing import TestIssuer
from tests.conftest import b64url

from .support import ALL_ALGS

EXAMPLES = int(os.environ.get("CCGUARD_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="CCGUARD_FUZZ_EXAMPLES" not in os.environ,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
b64_alphabet = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. ", max_size=200)
CLAIM_NAMES = ["iss", "aud", "exp", "nbf", "iat", "sub", "scope", "scp", "roles", "client_id", "azp", "appid"]
HEADER_NAMES = ["alg", "kid", "typ", "crit", "b64", "jku", "x5u", "jwk", "x5c", "nonce", "cty", "zip"]


def _validate(validator: TokenValidator, token: Any) -> Any:
    """Validate; only a CCGuardError that is not a swallowed internal error may come out."""
    reason: str | None = None
    try:
        verified = validator.validate(token)
    except CCGuardError as exc:
        reason = exc.reason
    if reason is not None:
        assert reason != "internal", "validate() swallowed an unexpected exception"
        return None
    # Everything an application reads must work on an accepted token.
    _ = (verified.subject, verified.scopes, verified.roles, verified.audiences, verified.client_id)
    _ = (verified.expires_at, verified.issued_at, dict(verified.claims), dict(verified.header))
    return verified


@FUZZ
@given(token=st.text(max_size=300) | st.binary(max_size=300) | st.builds(".".join, st.lists(b64_alphabet, max_size=6)))
def test_parse_compact_raises_only_invalid_token(token: Any) -> None:
    with contextlib.suppress(CCGuardError):
        parse_compact(token, 16384)


@FUZZ
@given(header=json_values, payload=json_values)
def test_parse_compact_on_any_json_raises_only_invalid_token(header: Any, payload: Any) -> None:
    token = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode()) + ".c2ln"
    try:
        parsed = parse_compact(token, 1 << 20)
    except CCGuardError:
        return
    assert isinstance(parsed.header, dict)
    assert isinstance(parsed.payload, dict)


@FUZZ
@given(token=st.text(max_size=400) | st.binary(max_size=400))
def test_validate_on_arbitrary_input_raises_only_ccguard_errors(validator: TokenValidator, token: Any) -> None:
    assert _validate(validator, token) is None


@FUZZ
@given(
    alg=st.sampled_from(ALL_ALGS),
    header=st.dictionaries(st.sampled_from(HEADER_NAMES), json_values, max_size=3),
    claims=st.dictionaries(st.sampled_from(CLAIM_NAMES) | st.text(max_size=6), json_values, max_size=5),
    keep_kid=st.booleans(),
)
def test_validate_on_validly_signed_fuzzed_tokens_raises_only_ccguard_errors(
    issuer: TestIssuer,
    validator: TokenValidator,
    alg: str,
    header: dict[str, Any],
    claims: dict[str, Any],
    keep_kid: bool,
) -> None:
    # Signed by the issuer's real key: the fuzzer reaches the claim checks.
    full_header = {**header, "alg": alg}
    if keep_kid:
        full_header["kid"] = issuer.public_jwk(alg)["kid"]
    base = {"iss": issuer.issuer, "aud": issuer.audience, "exp": 2_100_000_000, "iat": 1_700_000_000}
    token = issuer.sign(full_header, {**base, **claims}, alg=alg)
    _validate(validator, token)


@FUZZ
@given(
    alg=st.sampled_from(ALL_ALGS),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.sampled_from(["replace", "insert", "delete"]), st.characters()),
        min_size=1,
        max_size=4,
    ),
)
def test_a_changed_token_is_never_accepted(
    issuer: TestIssuer, validator: TokenValidator, alg: str, edits: list[tuple[int, str, str]]
) -> None:
    original = issuer.mint(alg=alg)
    chars = list(original)
    for pos, op, ch in edits:
        pos %= len(chars)
        if op == "replace":
            chars[pos] = ch
        elif op == "insert":
            chars.insert(pos, ch)
        elif len(chars) > 1:
            del chars[pos]
    token = "".join(chars)
    verified = _validate(validator, token)
    if token != original:
        assert verified is None, "a changed token was accepted"


@FUZZ
@given(
    alg=st.sampled_from(ALL_ALGS),
    segment=st.integers(min_value=0, max_value=2),
    raw=st.binary(max_size=64),
)
def test_a_token_with_a_replaced_segment_is_never_accepted(
    issuer: TestIssuer, validator: TokenValidator, alg: str, segment: int, raw: bytes
) -> None:
    parts = issuer.mint(alg=alg).split(".")
    replacement = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    if parts[segment] == replacement:
        return
    parts[segment] = replacement
    assert _validate(validator, ".".join(parts)) is None


@pytest.fixture(scope="module")
def fuzz_client(issuer: TestIssuer) -> Iterator[FlaskClient]:
    app = Flask(__name__)
    app.config.update(
        CCGUARD_ISSUER=issuer.issuer,
        CCGUARD_AUDIENCE=issuer.audience,
        CCGUARD_ALGORITHMS=list(ALL_ALGS),
        CCGUARD_ALLOW_QUERY_TOKEN=True,
        CCGUARD_ALLOW_FORM_TOKEN=True,
    )
    CCGuard(app)

    @app.route("/r", methods=["GET", "POST"])
    @require_roles("admin", "guest", match="any")
    @require_scopes("read")
    def resource() -> dict[str, Any]:
        return {"sub": current_token.subject, "exp": current_token.expires_at.isoformat()}

    with app.test_client() as client:
        yield client


@FUZZ
@given(
    authorization=st.none() | st.text(max_size=200) | st.builds("Bearer {}".format, st.text(max_size=200)),
    query=st.none() | st.text(max_size=60),
    form=st.none() | st.text(max_size=60),
    claims=st.none() | st.dictionaries(st.sampled_from(CLAIM_NAMES), json_values, max_size=4),
)
def test_flask_layer_never_answers_500(
    issuer: TestIssuer,
    fuzz_client: FlaskClient,
    authorization: str | None,
    query: str | None,
    form: str | None,
    claims: dict[str, Any] | None,
) -> None:
    if claims is not None:
        # A validly signed token with fuzzed claims, so roles/scopes checks run too.
        authorization = "Bearer " + issuer.mint(**{"scope": "read", "roles": ["guest"], **claims})
    environ = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = fuzz_client.open(
        "/r",
        method="GET" if form is None else "POST",
        query_string=None if query is None else {"access_token": query},
        data=None if form is None else {"access_token": form},
        environ_overrides=environ,
    )
    assert response.status_code in (200, 400, 401, 403), response.get_data(as_text=True)
    if response.status_code != 200:
        assert "\n" not in response.headers["WWW-Authenticate"]
