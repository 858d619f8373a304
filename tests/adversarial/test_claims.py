"""Claims (RFC 7519 §4.1, RFC 9068 §4): wrong types, time boundaries, audiences and issuer look-alikes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flask_ccguard import ExpiredToken, InvalidToken, TokenValidator
from flask_ccguard.testing import TestIssuer

from .support import FIXED_NOW, claims_for, make_validator, rejection

LEEWAY = 60
NOW = FIXED_NOW


@pytest.fixture(scope="module")
def validator(issuer: TestIssuer) -> TokenValidator:
    v = make_validator(issuer, leeway=LEEWAY, clock=lambda: NOW)
    v.validate(_mint(issuer))
    return v


def _mint(issuer: TestIssuer, **claims: Any) -> str:
    """A token signed by the issuer's RS256 key with exactly these claims (None drops one)."""
    header = {"alg": "RS256", "typ": "at+jwt", "kid": issuer.public_jwk("RS256")["kid"]}
    return issuer.sign(header, claims_for(issuer, NOW, **claims))


WRONG_TYPES: list[tuple[str, dict[str, Any], str, str]] = [
    ("RFC7519-2-exp-string", {"exp": str(NOW + 300)}, "exp", "claim_type"),
    ("RFC7519-2-exp-bool-true", {"exp": True}, "exp", "claim_type"),
    ("RFC7519-2-exp-list", {"exp": [NOW + 300]}, "exp", "claim_type"),
    ("RFC7519-2-exp-object", {"exp": {"$numberLong": str(NOW + 300)}}, "exp", "claim_type"),
    ("RFC7519-4.1.4-exp-null", {"exp": "__null__"}, "exp", "missing_claim"),
    ("RFC7519-4.1.4-exp-missing", {"exp": None}, "exp", "missing_claim"),
    # "exp": 1e400 (a double overflowing to infinity) is malformed JSON now: test_r2_review_input.py, F4.
    ("CWE-190-exp-huge-integer", {"exp": 10**400}, "exp", "claim_type"),
    ("CWE-190-exp-beyond-year-9999", {"exp": 10**300 * 1.0}, "exp", "claim_type"),
    ("CWE-190-iat-huge-negative", {"iat": -(10**300) * 1.0}, "iat", "claim_type"),
    ("RFC7519-2-nbf-string", {"nbf": "0"}, "nbf", "claim_type"),
    ("RFC7519-2-nbf-bool-false", {"nbf": False}, "nbf", "claim_type"),
    ("RFC7519-2-iat-string", {"iat": "now"}, "iat", "claim_type"),
    ("RFC9068-2.2-iat-missing", {"iat": None}, "iat", "missing_claim"),
    ("RFC7519-4.1.6-iat-null", {"iat": "__null__"}, "iat", "missing_claim"),
    ("RFC7519-4.1.3-aud-number", {"aud": 1}, "aud", "claim_type"),
    ("RFC7519-4.1.3-aud-object", {"aud": {"https://api.example.com": True}}, "aud", "claim_type"),
    ("RFC7519-4.1.3-aud-empty-list", {"aud": []}, "aud", "claim_type"),
    ("RFC7519-4.1.3-aud-list-with-number", {"aud": ["https://api.example.com", 1]}, "aud", "claim_type"),
    ("RFC7519-4.1.3-aud-missing", {"aud": None}, "aud", "missing_claim"),
    ("RFC7519-4.1.3-aud-nested-list", {"aud": [["https://api.example.com"]]}, "aud", "claim_type"),
]


# Values no Python object encodes to: JSON null kept in the payload, and a
# literal that Python's JSON decoder turns into float('inf').
MARKERS = {"__null__": "null", "__1e400__": "1e400"}


@pytest.mark.parametrize(("claims", "claim", "reason"), [c[1:] for c in WRONG_TYPES], ids=[c[0] for c in WRONG_TYPES])
def test_claim_of_the_wrong_type_is_refused(
    issuer: TestIssuer, validator: TokenValidator, claims: dict[str, Any], claim: str, reason: str
) -> None:
    payload = claims_for(issuer, NOW, **claims)
    name, value = next(iter(claims.items()))
    if isinstance(value, str) and value in MARKERS:
        payload[name] = 0  # placeholder, replaced in the raw JSON below
        raw = issuer.sign(
            {"alg": "RS256", "kid": issuer.public_jwk("RS256")["kid"]},
            _raw_payload(payload, name, MARKERS[value]),
        )
    else:
        raw = issuer.sign({"alg": "RS256", "kid": issuer.public_jwk("RS256")["kid"]}, payload)
    exc = rejection(validator, raw)
    assert (exc.claim, exc.reason) == (claim, reason)


def _raw_payload(payload: dict[str, Any], name: str, literal: str) -> bytes:
    text = json.dumps(payload, separators=(",", ":"))
    return text.replace(f'"{name}":0', f'"{name}":{literal}').encode()


TIMES: list[tuple[str, dict[str, Any], type[Exception] | None, str | None]] = [
    # RFC 7519 §4.1.4: the current time MUST be before exp (leeway 60 s).
    ("RFC7519-4.1.4-exp-equals-now-minus-leeway", {"exp": NOW - LEEWAY}, ExpiredToken, "exp"),
    ("RFC7519-4.1.4-exp-one-second-inside-leeway", {"exp": NOW - LEEWAY + 1}, None, None),
    ("RFC7519-4.1.4-exp-long-past", {"exp": 0, "iat": 0, "nbf": 0}, ExpiredToken, "exp"),
    ("RFC7519-4.1.4-exp-negative", {"exp": -1, "iat": -100, "nbf": None}, InvalidToken, "exp"),
    ("RFC7519-4.1.4-exp-fraction-inside-leeway", {"exp": NOW - LEEWAY + 0.5}, None, None),
    ("RFC7519-4.1.5-nbf-beyond-leeway", {"nbf": NOW + LEEWAY + 1}, InvalidToken, "nbf"),
    ("RFC7519-4.1.5-nbf-at-leeway-edge", {"nbf": NOW + LEEWAY}, None, None),
    ("RFC7519-4.1.5-nbf-far-future", {"nbf": NOW + 10**8}, InvalidToken, "nbf"),
    ("RFC7519-4.1.6-iat-future-beyond-leeway", {"iat": NOW + LEEWAY + 1}, InvalidToken, "iat"),
    ("RFC7519-4.1.6-iat-at-leeway-edge", {"iat": NOW + LEEWAY}, None, None),
    ("CWE-190-nbf-huge-integer", {"nbf": 10**400}, InvalidToken, "nbf"),
    ("CWE-190-iat-huge-integer", {"iat": 10**400}, InvalidToken, "iat"),
    ("RFC7519-4.1.6-iat-far-future-with-far-exp", {"iat": NOW + 10**6, "exp": NOW + 10**7}, InvalidToken, "iat"),
]


@pytest.mark.parametrize(("claims", "error", "claim"), [t[1:] for t in TIMES], ids=[t[0] for t in TIMES])
def test_time_claims_are_enforced_at_their_boundaries(
    issuer: TestIssuer,
    validator: TokenValidator,
    claims: dict[str, Any],
    error: type[Exception] | None,
    claim: str | None,
) -> None:
    token = _mint(issuer, **claims)
    if error is None:
        assert validator.validate(token).subject == "test-client"
    else:
        exc = rejection(validator, token)
        assert isinstance(exc, error)
        assert exc.claim == claim


def test_exp_equal_to_now_is_expired_without_leeway(issuer: TestIssuer) -> None:
    # RFC 7519 §4.1.4: "on or after" exp the token MUST NOT be accepted.
    strict = make_validator(issuer, leeway=0, clock=lambda: NOW)
    assert isinstance(rejection(strict, _mint(issuer, exp=NOW)), ExpiredToken)
    assert strict.validate(_mint(issuer, exp=NOW + 1)).subject == "test-client"


def test_max_token_age_refuses_old_tokens(issuer: TestIssuer) -> None:
    v = make_validator(issuer, leeway=0, clock=lambda: NOW, max_token_age=3600)
    assert rejection(v, _mint(issuer, iat=NOW - 3601, nbf=None)).reason == "too_old"
    assert v.validate(_mint(issuer, iat=NOW - 3600, nbf=None)).subject == "test-client"


AUDIENCES: list[tuple[str, Any, bool]] = [
    ("RFC7519-4.1.3-aud-list-containing-ours", ["https://other.example.com", "https://api.example.com"], True),
    ("RFC7519-4.1.3-aud-list-without-ours", ["https://other.example.com"], False),
    ("RFC7519-4.1.3-aud-trailing-slash", "https://api.example.com/", False),
    ("RFC7519-4.1.3-aud-uppercase-host", "https://API.example.com", False),
    ("RFC7519-4.1.3-aud-prefix", "https://api.example.com.evil.test", False),
    ("RFC7519-4.1.3-aud-substring", "https://api.example.co", False),
    ("RFC7519-4.1.3-aud-wildcard", "*", False),
    ("RFC7519-4.1.3-aud-empty-string", "", False),
    ("UTS39-aud-cyrillic-a-confusable", "https://\u0430pi.example.com", False),
    ("UTS39-aud-zero-width-space", "https://api.example.com\u200b", False),
    ("RFC7519-4.1.3-aud-space-separated", "https://other.example.com https://api.example.com", False),
]


@pytest.mark.parametrize(("aud", "ok"), [a[1:] for a in AUDIENCES], ids=[a[0] for a in AUDIENCES])
def test_audience_must_be_named_exactly(issuer: TestIssuer, validator: TokenValidator, aud: Any, ok: bool) -> None:
    token = _mint(issuer, aud=aud)
    if ok:
        assert validator.validate(token).audiences == tuple(aud)
    else:
        exc = rejection(validator, token)
        assert (exc.claim, exc.reason) == ("aud", "audience")


def _lookalikes(issuer: str) -> list[tuple[str, Any]]:
    host = issuer.split("//", 1)[1]
    return [
        ("RFC7519-4.1.1-iss-trailing-slash", issuer + "/"),
        ("RFC7519-4.1.1-iss-uppercase-scheme", "HTTP://" + host),
        ("RFC7519-4.1.1-iss-https-instead-of-http", "https://" + host),
        ("RFC7519-4.1.1-iss-path-dot", issuer + "/."),
        ("RFC7519-4.1.1-iss-percent-encoded-dot", issuer.replace(".", "%2E", 1)),
        ("RFC7519-4.1.1-iss-userinfo", "http://evil@" + host),
        ("UTS39-iss-fullwidth-digit-confusable", issuer.replace("1", "\uff11", 1)),
        ("UTS39-iss-zero-width-joiner", issuer + "\u200d"),
        ("UTS39-iss-nfkc-equivalent-colon", issuer.replace(":", "\ufe13", 1)),
        ("RFC7519-4.1.1-iss-trailing-nul", issuer + "\x00"),
        ("RFC7519-4.1.1-iss-list", [issuer]),
        ("RFC7519-4.1.1-iss-object", {"iss": issuer}),
        ("RFC7519-4.1.1-iss-missing", None),
    ]


LOOKALIKE_IDS = [name for name, _ in _lookalikes("http://127.0.0.1:1")]


@pytest.mark.parametrize("index", range(len(LOOKALIKE_IDS)), ids=LOOKALIKE_IDS)
def test_issuer_look_alike_is_refused(issuer: TestIssuer, validator: TokenValidator, index: int) -> None:
    _, iss = _lookalikes(issuer.issuer)[index]
    exc = rejection(validator, _mint(issuer, iss=iss))
    assert (exc.claim, exc.reason) == ("iss", "issuer")


def test_every_property_of_an_accepted_token_is_readable(issuer: TestIssuer, validator: TokenValidator) -> None:
    tok = validator.validate(_mint(issuer, scope="a b", roles=["r", 1, None], exp=NOW + 3600.5))
    assert (tok.scopes, tok.roles) == (frozenset({"a", "b"}), frozenset({"r"}))
    assert tok.expires_at.year == 2030
    assert tok.issued_at is not None
