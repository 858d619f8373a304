"""Outside review, round 2: numbers, token strings and lists that come from others (regression tests).

F4 non-finite numbers in a token, F5 access tokens that are no b64token, F6
integers too large for a float, F9 list-valued ``CCGUARD_*`` variables, F10
TestIssuer and deeply nested JSON. Every server here is real and listens on
127.0.0.1; nothing patches ``requests``.
"""

from __future__ import annotations

import base64

import pytest
from click.testing import CliRunner

from flask_ccguard import TokenValidator
from flask_ccguard.cli import main
from flask_ccguard.testing import TestIssuer

from .support import rejection, resign_raw


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _with_member(issuer: TestIssuer, part: str, member: bytes) -> str:
    """A token of ``issuer``, re-signed with ``member`` (raw JSON text) added to its header or payload."""
    header, payload, _ = issuer.mint().split(".")
    segments = {"header": header, "payload": payload}
    segments[part] = _b64(_unb64(segments[part])[:-1] + b"," + member + b"}")
    return resign_raw(issuer, segments["header"], segments["payload"])


# -- F4: non-finite numbers ------------------------------------------------------------

NON_FINITE = [
    pytest.param(b'"x": 1e999', id="overflowing-exponent"),
    pytest.param(b'"x": -1e400', id="negative-overflow"),
    pytest.param(b'"x": 1' + b"0" * 400 + b".5", id="overflowing-fraction"),
    pytest.param(b'"x": NaN', id="nan"),
    pytest.param(b'"x": -Infinity', id="infinity"),
]


@pytest.mark.parametrize("member", NON_FINITE)
@pytest.mark.parametrize("part", ["header", "payload"])
def test_review_f4_non_finite_numbers_are_malformed(
    issuer: TestIssuer, validator: TokenValidator, part: str, member: bytes
) -> None:
    # RFC 8259 §6: such numbers have no JSON value; echoed claims would print Infinity.
    error = rejection(validator, _with_member(issuer, part, member))
    assert (error.status, error.reason) == (401, "malformed")


def test_review_f4_an_exp_overflowing_to_infinity_is_malformed(issuer: TestIssuer, validator: TokenValidator) -> None:
    header, payload, _ = issuer.mint().split(".")
    claims = json.loads(_unb64(payload))
    raw = json.dumps({**claims, "exp": "@"}).replace('"@"', "1e400").encode()
    error = rejection(validator, resign_raw(issuer, header, _b64(raw)))
    assert (error.status, error.reason) == (401, "malformed")


def test_review_f4_large_finite_numbers_still_pass(issuer: TestIssuer, validator: TokenValidator) -> None:
    token = _with_member(issuer, "payload", b'"x": 1.5e300, "y": -2E-300')
    assert validator.validate(token).claims["x"] == 1.5e300


@pytest.mark.parametrize("member", NON_FINITE)
def test_review_f4_decode_refuses_non_finite_numbers(issuer: TestIssuer, member: bytes) -> None:
    result = CliRunner().invoke(main, ["decode", "--json", _with_member(issuer, "payload", member)])
    assert result.exit_code == 1
    assert "malformed" in result.output
    assert "Infinity" not in result.output and "NaN" not in result.output
