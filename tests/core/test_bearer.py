"""RFC 6750 §2 token extraction: one bearer token, by one method, in b64token form."""

from __future__ import annotations

import pytest

from flask_ccguard.core.bearer import extract_token, is_b64token
from flask_ccguard.core.errors import CCGuardError, InvalidRequest, MissingToken

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_~+/=="


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([f"Bearer {TOKEN}"], TOKEN),
        ([f"bearer {TOKEN}"], TOKEN),
        ([f"BEARER {TOKEN}"], TOKEN),
        ([f"BeArEr {TOKEN}"], TOKEN),
        ([f"Bearer   {TOKEN}"], TOKEN),
        ([f"  Bearer {TOKEN}  "], TOKEN),
        (["Bearer a"], "a"),
        (["Bearer abc=="], "abc=="),
    ],
)
def test_bearer_header_yields_the_token(headers: list[str], expected: str) -> None:
    assert extract_token(headers) == expected


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [""],
        ["Basic dXNlcjpwYXNz"],
        [f"DPoP {TOKEN}"],
        ['Digest username="a", realm="b", nonce="c"'],
        [f"Bearertoken{TOKEN}"],
        [f"Token {TOKEN}"],
    ],
)
def test_no_bearer_credentials_is_missing_token(headers: list[str]) -> None:
    with pytest.raises(MissingToken) as info:
        extract_token(headers)
    assert info.value.status == 401
    assert info.value.error is None


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (["Bearer"], "malformed_header"),
        (["Bearer "], "malformed_header"),
        ([f"Bearer\t{TOKEN}"], "malformed_header"),
        ([f"Bearer {TOKEN} extra"], "malformed_header"),
        (["Bearer a=b"], "malformed_header"),
        (['Bearer "abc"'], "malformed_header"),
        (["Bearer abc\r\nX-Injected: 1"], "malformed_header"),
        (["Bearer tökén"], "malformed_header"),
        (["Bearer ==abc"], "malformed_header"),
        ([f"Bearer {TOKEN}", f"Bearer {TOKEN}"], "multiple_tokens"),
        (["Basic dXNlcjpwYXNz", f"Bearer {TOKEN}"], "multiple_tokens"),
        ([f"Bearer {TOKEN}, Bearer {TOKEN}"], "multiple_tokens"),
        ([f"Bearer {TOKEN},Basic dXNlcjpwYXNz"], "multiple_tokens"),
        ([f"Basic dXNlcjpwYXNz, bearer {TOKEN}"], "multiple_tokens"),
    ],
)
def test_malformed_or_repeated_header_is_invalid_request(headers: list[str], reason: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        extract_token(headers)
    assert (info.value.status, info.value.error, info.value.reason) == (400, "invalid_request", reason)


@pytest.mark.parametrize(
    ("headers", "query", "form", "expected"),
    [
        ([], [TOKEN], None, TOKEN),
        ([], None, [TOKEN], TOKEN),
        (["Basic dXNlcjpwYXNz"], [TOKEN], None, TOKEN),
        ([], [], [], None),
    ],
)
def test_enabled_parameters_yield_the_token(
    headers: list[str], query: list[str] | None, form: list[str] | None, expected: str | None
) -> None:
    if expected is None:
        with pytest.raises(MissingToken):
            extract_token(headers, query=query, form=form)
    else:
        assert extract_token(headers, query=query, form=form) == expected


@pytest.mark.parametrize(
    ("headers", "query", "form", "reason"),
    [
        ([f"Bearer {TOKEN}"], [TOKEN], None, "multiple_methods"),
        ([f"Bearer {TOKEN}"], None, [TOKEN], "multiple_methods"),
        ([], [TOKEN], [TOKEN], "multiple_methods"),
        ([], [TOKEN, TOKEN], None, "multiple_tokens"),
        ([], None, [TOKEN, "other"], "multiple_tokens"),
        ([], [""], None, "malformed_parameter"),
        ([], None, ["a b"], "malformed_parameter"),
    ],
)
def test_two_methods_or_bad_parameters_are_invalid_request(
    headers: list[str], query: list[str] | None, form: list[str] | None, reason: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        extract_token(headers, query=query, form=form)
    assert info.value.reason == reason


def test_descriptions_never_echo_the_request() -> None:
    secret = "c2VjcmV0LXRva2Vu"
    for headers in ([f"Bearer {secret} x"], [f"Bearer {secret}", f"Bearer {secret}"]):
        with pytest.raises(CCGuardError) as info:
            extract_token(headers)
        assert secret not in info.value.description
        assert secret not in info.value.challenge("api")


@pytest.mark.parametrize(
    ("value", "ok"),
    [("abc", True), ("a-._~+/", True), ("abc==", True), ("", False), ("=", False), ("a=b", False), ("a b", False)],
)
def test_b64token_grammar(value: str, ok: bool) -> None:
    assert is_b64token(value) is ok
