"""Error output (RFC 6750 §3, CWE-113/117): nothing from a token or issuer reaches the challenge, body or logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_ccguard import CCGuard, CCGuardError, InvalidToken, TokenValidator, require_token
from flask_ccguard.testing import TestIssuer
from tests.conftest import b64json

from .support import claims_for, forge, make_validator, rejection

MARK = 'PWN"\r\nSet-Cookie: x=1\\'  # quote, CR/LF, a header, a backslash
SECRET_MARK = "PWN"

Build = Callable[[TestIssuer], Any]


def _header(**extra: Any) -> Build:
    def build(iss: TestIssuer) -> str:
        header = {"alg": "RS256", "kid": iss.public_jwk("RS256")["kid"], **extra}
        return iss.sign(header, claims_for(iss))

    return build


def _claims(**extra: Any) -> Build:
    return lambda iss: iss.sign({"alg": "RS256", "kid": iss.public_jwk("RS256")["kid"]}, claims_for(iss, **extra))


REFLECTIONS: list[tuple[str, Build]] = [
    ("CWE-113-crlf-in-kid", _header(kid=MARK)),
    ("CWE-113-crlf-in-alg", _header(alg=MARK)),
    ("CWE-113-crlf-in-typ", _header(typ=MARK)),
    ("CWE-113-crlf-in-crit", _header(crit=[MARK])),
    ("CWE-113-crlf-in-jku-of-refused-token", _header(jku=MARK, typ="JWE")),
    ("CWE-113-crlf-in-iss", _claims(iss=MARK)),
    ("CWE-113-crlf-in-aud", _claims(aud=MARK)),
    ("CWE-113-crlf-in-aud-list", _claims(aud=[MARK])),
    ("CWE-113-crlf-in-exp", _claims(exp=MARK)),
    ("CWE-113-crlf-in-nbf", _claims(nbf=MARK)),
    ("CWE-113-crlf-in-iat", _claims(iat=MARK)),
    ("CWE-113-crlf-in-claim-name", _claims(**{MARK: 1, "exp": 1})),
    ("CWE-117-crlf-in-raw-token", lambda iss: MARK),
    ("CWE-117-crlf-in-segment", lambda iss: b64json({"alg": "RS256"}) + "." + MARK + ".sig"),
    ("CWE-117-unsigned-token-with-mark", lambda iss: forge({"alg": "none", "kid": MARK}, {"iss": MARK}, b"")),
    ("CWE-117-non-ascii-bytes", lambda iss: (MARK + "\u2028\x85").encode("utf-8")),
    ("CWE-117-oversized-with-mark", lambda iss: MARK * 2000),
]


def _assert_clean(text: str, where: str) -> None:
    assert SECRET_MARK not in text, f"token content reflected in {where}: {text!r}"
    assert "\r" not in text, f"line break in {where}: {text!r}"
    assert "\n" not in text, f"line break in {where}: {text!r}"


def _assert_logs_clean(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        _assert_clean(record.getMessage(), "the log")
    assert SECRET_MARK not in caplog.text


@pytest.mark.parametrize("build", [r[1] for r in REFLECTIONS], ids=[r[0] for r in REFLECTIONS])
def test_token_content_never_reaches_the_error_or_the_log(
    issuer: TestIssuer, validator: TokenValidator, caplog: pytest.LogCaptureFixture, build: Build
) -> None:
    token = build(issuer)
    with caplog.at_level(logging.DEBUG, logger="flask_ccguard"):
        exc = rejection(validator, token)
    for text, where in [
        (exc.description, "description"),
        (exc.challenge(realm="api"), "WWW-Authenticate"),
        (json.dumps(exc.to_dict()), "JSON body"),
        (str(exc), "str()"),
        (repr(exc), "repr()"),
    ]:
        _assert_clean(text, where)
    _assert_logs_clean(caplog)


CHALLENGE_INPUTS = [
    ('a"b', "RFC7235-2.1-quote-in-realm"),
    ("a\r\nb", "CWE-113-crlf-in-realm"),
    ("a\\", "RFC7230-3.2.6-trailing-backslash-in-realm"),
    ("caf\u00e9\u2028", "RFC6750-3-non-ascii-in-realm"),
]


@pytest.mark.parametrize("value", [c[0] for c in CHALLENGE_INPUTS], ids=[c[1] for c in CHALLENGE_INPUTS])
def test_challenge_parameters_cannot_break_the_header(value: str) -> None:
    challenge = InvalidToken(value).challenge(realm=value)
    assert challenge.startswith('Bearer realm="')
    _assert_clean(challenge, "WWW-Authenticate")
    assert challenge.isascii()
    # Every quoted-string is closed exactly where we close it.
    assert challenge.count('"') == 6


def _jwks_with(jwk: dict[str, Any]) -> Callable[[TestIssuer], None]:
    def apply(iss: TestIssuer) -> None:
        iss.extra_jwks = [jwk]

    return apply


ISSUER_SIDE: list[tuple[str, Callable[[TestIssuer], None]]] = [
    ("CWE-117-crlf-in-jwks-kid", _jwks_with({"kty": "RSA", "kid": MARK, "use": "enc"})),
    ("CWE-117-crlf-in-jwks-use", _jwks_with({"kty": "RSA", "kid": "k", "use": MARK})),
    ("CWE-117-crlf-in-jwks-kty", _jwks_with({"kty": MARK, "kid": "k"})),
    ("CWE-117-crlf-in-jwks-alg", _jwks_with({"kty": "RSA", "kid": "k", "alg": MARK, "n": "AQAB", "e": "AQAB"})),
    ("CWE-117-crlf-in-metadata-issuer", lambda iss: iss.discovery_overrides.update(issuer=MARK)),
]


@pytest.mark.parametrize("hostile", [i[1] for i in ISSUER_SIDE], ids=[i[0] for i in ISSUER_SIDE])
def test_issuer_documents_cannot_inject_log_lines(
    ccguard_issuer: TestIssuer, caplog: pytest.LogCaptureFixture, hostile: Callable[[TestIssuer], None]
) -> None:
    hostile(ccguard_issuer)
    v = make_validator(ccguard_issuer)
    with caplog.at_level(logging.DEBUG, logger="flask_ccguard"):
        try:
            v.validate(ccguard_issuer.mint())
        except CCGuardError as exc:
            _assert_clean(exc.challenge(), "WWW-Authenticate")
    assert caplog.records, "the hostile document was expected to be logged"
    for record in caplog.records:
        assert "\r" not in record.getMessage()
        assert "\n" not in record.getMessage()


@pytest.fixture(scope="module")
def flask_client(issuer: TestIssuer) -> Iterator[FlaskClient]:
    app = Flask(__name__)
    app.config.update(CCGUARD_ISSUER=issuer.issuer, CCGUARD_AUDIENCE=issuer.audience, CCGUARD_REALM="api")
    CCGuard(app)

    @app.route("/r", methods=["GET", "POST", "PUT"])
    @require_token
    def resource() -> str:
        return "ok"

    with app.test_client() as client:
        yield client


@pytest.mark.parametrize("build", [r[1] for r in REFLECTIONS], ids=[f"flask-{r[0]}" for r in REFLECTIONS])
def test_flask_responses_and_logs_never_reflect_the_token(
    issuer: TestIssuer, flask_client: FlaskClient, caplog: pytest.LogCaptureFixture, build: Build
) -> None:
    token = build(issuer)
    if isinstance(token, bytes):
        token = token.decode("latin-1")
    with caplog.at_level(logging.DEBUG, logger="flask_ccguard"):
        response = flask_client.get("/r", environ_overrides={"HTTP_AUTHORIZATION": "Bearer " + token})
    assert response.status_code in (400, 401)
    _assert_clean(response.headers["WWW-Authenticate"], "WWW-Authenticate")
    body = response.get_json()
    assert set(body) == {"error", "error_description"}
    _assert_clean(json.dumps(body), "body")
    _assert_logs_clean(caplog)


@pytest.mark.parametrize(
    "method",
    ["GET\r\nINFO flask_ccguard: accepted", "G\u00c9T\x1b[2J", 'GET"'],
    ids=[
        "CWE-117-crlf-in-request-method",
        "CWE-117-escape-sequence-in-request-method",
        "CWE-117-quote-in-request-method",
    ],
)
def test_the_request_method_cannot_forge_log_lines(
    issuer: TestIssuer, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    # guard.protect() runs before routing, so even an unknown method is logged.
    app = Flask(__name__)
    app.config.update(CCGUARD_ISSUER=issuer.issuer, CCGUARD_AUDIENCE=issuer.audience)
    CCGuard(app).protect(app)
    app.add_url_rule("/r", "r", lambda: "ok")
    with caplog.at_level(logging.DEBUG, logger="flask_ccguard"):
        response = app.test_client().get("/r", environ_overrides={"REQUEST_METHOD": method})
    assert response.status_code == 401
    assert caplog.records, "the refusal was expected to be logged"
    for record in caplog.records:
        message = record.getMessage()
        assert "\r" not in message
        assert "\n" not in message
        assert "\x1b" not in message
