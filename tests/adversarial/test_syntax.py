"""Token syntax (RFC 7515 §7.1, RFC 7519 §7.2): malformed compact tokens are refused before key work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flask_ccguard import InvalidToken, TokenValidator
from flask_ccguard.core.jws import parse_compact
from flask_ccguard.testing import TestIssuer
from tests.conftest import b64json, b64url

from .support import claims_for, resign_raw, segments

Build = Callable[[TestIssuer], Any]


def _resigned_header(raw: bytes) -> Build:
    """A token whose header segment is ``raw`` (bytes as sent), validly signed."""
    return lambda iss: resign_raw(iss, b64url(raw), b64json(claims_for(iss)))


def _resigned_payload(raw: bytes) -> Build:
    return lambda iss: resign_raw(iss, b64json({"alg": "RS256", "kid": iss.public_jwk("RS256")["kid"]}), b64url(raw))


def _edit(fn: Callable[[list[str]], list[str]]) -> Build:
    """Apply ``fn`` to the segments of a valid token."""
    return lambda iss: ".".join(fn(segments(iss.mint())))


def _replace_text(old: str, new: str, segment: int) -> Build:
    def build(iss: TestIssuer) -> str:
        parts = segments(iss.mint())
        parts[segment] = parts[segment].replace(old, new, 1)
        return ".".join(parts)

    return build


def _padded(iss: TestIssuer) -> str:
    # Find a valid token whose header needs padding, then add the '=' back.
    for _ in range(50):
        parts = segments(iss.mint())
        if len(parts[0]) % 4:
            parts[0] += "=" * (-len(parts[0]) % 4)
            return ".".join(parts)
    raise AssertionError("no token needing padding found")


def _stray_bits(iss: TestIssuer) -> str:
    # A final character with non-zero unused bits decodes to the same bytes
    # in lenient decoders: a second spelling of the same signed token.
    for _ in range(50):
        parts = segments(iss.mint())
        sig = parts[2]
        if len(sig) % 4 in (2, 3):
            alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            index = alphabet.index(sig[-1])
            parts[2] = sig[:-1] + alphabet[index | 1 if len(sig) % 4 == 3 else index | 3]
            if parts[2] != sig:
                return ".".join(parts)
    raise AssertionError("no token with spare bits found")


def _nested(depth: int) -> bytes:
    return b'{"alg":"RS256","x":' + b"[" * depth + b"]" * depth + b"}"


CASES: list[tuple[str, Build, str]] = [
    # -- segment counts (RFC 7515 §7.1) --
    ("RFC7515-7.1-one-segment", lambda iss: segments(iss.mint())[0], "malformed"),
    ("RFC7515-7.1-two-segments", lambda iss: ".".join(segments(iss.mint())[:2]), "malformed"),
    ("RFC7515-7.1-four-segments", _edit(lambda p: [*p, p[2]]), "malformed"),
    (
        "RFC7516-9-jwe-five-segments",
        lambda iss: b64json({"alg": "RSA-OAEP", "enc": "A256GCM"}) + ".a.b.c.d",
        "malformed",
    ),
    ("RFC7515-7.1-six-segments", _edit(lambda p: [*p, "", "", ""]), "malformed"),
    ("RFC7515-7.1-empty-token", lambda iss: "", "malformed"),
    ("RFC7515-7.1-only-dots", lambda iss: "..", "unsigned"),
    ("jwt_tool-unsigned-empty-signature", _edit(lambda p: [p[0], p[1], ""]), "unsigned"),
    ("RFC7515-7.1-empty-header", _edit(lambda p: ["", p[1], p[2]]), "malformed"),
    ("RFC7515-7.1-empty-payload", _edit(lambda p: [p[0], "", p[2]]), "malformed"),
    # -- base64url (RFC 7515 §2, RFC 4648 §5) --
    ("RFC7515-2-padded-base64url", _padded, "malformed"),
    ("RFC7515-2-standard-alphabet-plus", _replace_text("-", "+", 2), "malformed"),
    ("RFC7515-2-standard-alphabet-slash", _replace_text("_", "/", 2), "malformed"),
    ("RFC7515-2-whitespace-in-segment", _edit(lambda p: [p[0][:5] + " " + p[0][5:], p[1], p[2]]), "malformed"),
    ("RFC7515-2-newline-in-segment", _edit(lambda p: [p[0], p[1][:5] + "\n" + p[1][5:], p[2]]), "malformed"),
    ("RFC4648-3.5-non-canonical-stray-bits", _stray_bits, "malformed"),
    ("RFC4648-3.3-non-alphabet-char", _edit(lambda p: [p[0], p[1], p[2][:-1] + "*"]), "malformed"),
    (
        "RFC4648-impossible-length",
        _edit(lambda p: [p[0] + "A" * (1 + (3 - len(p[0]) % 4) % 4), p[1], p[2]]),
        "malformed",
    ),
    ("RFC7515-7.1-leading-whitespace", lambda iss: " " + iss.mint(), "malformed"),
    ("RFC7515-7.1-trailing-newline", lambda iss: iss.mint() + "\n", "malformed"),
    ("RFC7515-7.1-nul-byte", lambda iss: iss.mint() + "\x00", "malformed"),
    ("RFC7515-7.1-non-ascii-unicode", lambda iss: iss.mint()[:-1] + "\u00e9", "malformed"),
    ("RFC7515-7.1-fullwidth-dot", lambda iss: iss.mint().replace(".", "\uff0e", 1), "malformed"),
    ("RFC7515-7.1-bytes-not-ascii", lambda iss: iss.mint().encode() + b"\xff", "malformed"),
    # -- JSON that is not an object (RFC 7519 §7.2 step 4/10) --
    ("RFC7519-7.2-header-json-array", _resigned_header(b'["RS256"]'), "malformed"),
    ("RFC7519-7.2-header-json-string", _resigned_header(b'"RS256"'), "malformed"),
    ("RFC7519-7.2-header-json-null", _resigned_header(b"null"), "malformed"),
    ("RFC7519-7.2-header-json-number", _resigned_header(b"1"), "malformed"),
    ("RFC7519-7.2-payload-json-array", _resigned_payload(b"[]"), "malformed"),
    ("RFC7519-7.2-payload-json-true", _resigned_payload(b"true"), "malformed"),
    ("RFC7519-7.2-payload-not-json", _resigned_payload(b"not json"), "malformed"),
    ("RFC7519-7.2-payload-trailing-garbage", _resigned_payload(b'{"iss":"x"} {}'), "malformed"),
    ("RFC8259-8.1-header-not-utf8", _resigned_header(b'{"alg":"RS256","x":"\xff"}'), "malformed"),
    ("RFC8259-8.1-header-utf8-bom", _resigned_header(b'\xef\xbb\xbf{"alg":"RS256"}'), "malformed"),
    ("RFC8259-8.1-utf16-payload", _resigned_payload('{"iss":"x"}'.encode("utf-16")), "malformed"),
    # -- duplicate members: two parsers must not disagree (RFC 7515 §5.2) --
    ("RFC7515-5.2-duplicate-alg-none-then-rs256", _resigned_header(b'{"alg":"none","alg":"RS256"}'), "malformed"),
    ("RFC7515-5.2-duplicate-alg-rs256-then-none", _resigned_header(b'{"alg":"RS256","alg":"none"}'), "malformed"),
    ("RFC7515-5.2-duplicate-kid", _resigned_header(b'{"alg":"RS256","kid":"a","kid":"b"}'), "malformed"),
    (
        "RFC7519-4-duplicate-iss-claim",
        lambda iss: resign_raw(iss, b64json({"alg": "RS256"}), b64url(b'{"iss":"x","iss":"y","exp":1}')),
        "malformed",
    ),
    (
        "RFC7519-4-duplicate-aud-nested",
        lambda iss: resign_raw(iss, b64json({"alg": "RS256"}), b64url(b'{"aud":"a","x":{"k":1,"k":2}}')),
        "malformed",
    ),
    # -- resource exhaustion --
    ("CWE-674-deep-nesting-header", _resigned_header(_nested(4_000)), "malformed"),
    ("CWE-674-deep-nesting-payload", _resigned_payload(b'{"a":' + b"[" * 4_000 + b"]" * 4_000 + b"}"), "malformed"),
    ("CVE-2020-10735-huge-integer-digits", _resigned_payload(b'{"exp":' + b"9" * 5000 + b"}"), "malformed"),
    ("RFC8259-6-nan-literal", _resigned_payload(b'{"exp":NaN}'), "malformed"),
    ("RFC8259-6-infinity-literal", _resigned_payload(b'{"exp":Infinity}'), "malformed"),
    ("RFC8259-6-negative-infinity-literal", _resigned_payload(b'{"exp":-Infinity}'), "malformed"),
    ("CWE-400-oversized-token", lambda iss: iss.mint(pad="A" * 20_000), "too_large"),
    ("CWE-400-oversized-garbage", lambda iss: "A" * 1_000_000, "too_large"),
    ("CWE-400-many-dots", lambda iss: "." * 10_000, "malformed"),
]


@pytest.mark.parametrize(("build", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_token_is_refused(issuer: TestIssuer, validator: TokenValidator, build: Build, reason: str) -> None:
    token = build(issuer)
    with pytest.raises(InvalidToken) as info:
        validator.validate(token)
    assert info.value.reason == reason
    # The parser alone refuses it too: nothing reached a key.
    with pytest.raises(InvalidToken):
        parse_compact(token, 16384)


def test_a_token_just_within_the_size_limit_is_accepted(issuer: TestIssuer) -> None:
    from .support import make_validator

    token = issuer.mint()
    v = make_validator(issuer, max_token_bytes=len(token))
    assert v.validate(token).subject == "test-client"
    with pytest.raises(InvalidToken) as info:
        make_validator(issuer, max_token_bytes=len(token) - 1).validate(token)
    assert info.value.reason == "too_large"
