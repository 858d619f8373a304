"""Opaque tokens through RFC 7662 introspection: requests, caching, revocation, failures, routing."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs

import pytest

from flask_ccguard import ConfigurationError, ExpiredToken, InvalidToken, TokenValidator
from flask_ccguard.core.claims import ClaimRules, VerifiedToken
from flask_ccguard.core.errors import IntrospectionUnavailable, Unavailable
from flask_ccguard.core.opaque import check_introspected
from flask_ccguard.testing import profile_issuer
from flask_ccguard.testing.profiles import profile_class
from tests.conftest import introspection_spec


class Clock:
    """The validator's clock, moved by the tests."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _validator(*issuers: Any, clock: Clock | None = None, **introspection: Any) -> TokenValidator:
    return TokenValidator([introspection_spec(i, **introspection) for i in issuers], clock=clock)


# -- the request ---------------------------------------------------------------------

AUTH = [
    pytest.param("client_secret_basic", id="basic"),
    pytest.param("client_secret_post", id="form-post"),
]


@pytest.mark.parametrize("auth_method", AUTH)
def test_request_is_an_authenticated_form_post(ibm: Any, auth_method: str) -> None:
    token = ibm.mint(scope="assets.read assets.write")
    verified = _validator(ibm, auth_method=auth_method).validate(token)
    assert verified.client_id == ibm.client_id
    assert verified.scopes == frozenset({"assets.read", "assets.write"})
    assert verified.issuer == ibm.issuer
    assert dict(verified.header) == {}
    (request,) = [r for r in ibm.requests if r.path.endswith("/introspect")]
    form = parse_qs(request.body.decode())
    assert request.method == "POST"
    assert form["token"] == [token]
    assert form["token_type_hint"] == ["access_token"]
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    if auth_method == "client_secret_basic":
        assert request.headers["Authorization"].startswith("Basic ")
        assert "client_secret" not in form
    else:
        assert "Authorization" not in request.headers
        assert form["client_secret"] == [ibm.introspection_clients["resource-server"]]


# -- caching -------------------------------------------------------------------------


def test_repeated_requests_make_one_call(ibm: Any, clock: Clock) -> None:
    validator = _validator(ibm, clock=clock)
    token = ibm.mint()
    for _ in range(5):
        assert validator.validate(token).client_id == ibm.client_id
    assert ibm.hits["introspect"] == 1


def test_revocation_is_seen_after_the_ttl(ibm: Any, clock: Clock) -> None:
    validator = _validator(ibm, clock=clock, ttl=30)
    token = ibm.mint()
    validator.validate(token)
    ibm.revoke(token)
    clock.now += 29
    validator.validate(token)  # still cached: the TTL bounds how stale an answer may be
    clock.now += 2
    with pytest.raises(InvalidToken) as caught:
        validator.validate(token)
    assert caught.value.reason == "inactive"
    assert ibm.hits["introspect"] == 2


def test_answer_is_cached_no_longer_than_the_token_lives(ibm: Any, clock: Clock) -> None:
    validator = _validator(ibm, clock=clock, ttl=300)
    token = ibm.mint(expires_in=20)
    validator.validate(token)
    clock.now += 21 + 60  # past exp and the leeway
    with pytest.raises(ExpiredToken):
        validator.validate(token)
    assert ibm.hits["introspect"] == 2  # asked again once exp passed


def test_inactive_answer_is_refused_and_cached_briefly(ibm: Any, clock: Clock) -> None:
    validator = _validator(ibm, clock=clock, inactive_ttl=5)
    for _ in range(3):
        with pytest.raises(InvalidToken) as caught:
            validator.validate("A7y0nh0aaDpz8g0aTcVVBnr6veTocbYLpH7K8Jqn")
        assert caught.value.reason == "inactive"
        assert caught.value.status == 401
    assert ibm.hits["introspect"] == 1
    clock.now += 6
    with pytest.raises(InvalidToken):
        validator.validate("A7y0nh0aaDpz8g0aTcVVBnr6veTocbYLpH7K8Jqn")
    assert ibm.hits["introspect"] == 2


def test_cache_holds_at_most_max_entries(ibm: Any, clock: Clock) -> None:
    validator = _validator(ibm, clock=clock, max_entries=2)
    first, second, third = ibm.mint(), ibm.mint(), ibm.mint()
    for token in (first, second, third, third, first):
        validator.validate(token)
    assert ibm.hits["introspect"] == 4  # the oldest answer made room for the third


def test_ttl_zero_asks_every_time(ibm: Any) -> None:
    validator = _validator(ibm, ttl=0)
    token = ibm.mint()
    validator.validate(token)
    validator.validate(token)
    assert ibm.hits["introspect"] == 2


# -- failures ------------------------------------------------------------------------


def test_unreachable_endpoint_is_503_and_never_cached(clock: Clock) -> None:
    with profile_issuer("ibm_verify") as ibm:
        validator = _validator(ibm, clock=clock)
        token = ibm.mint()
    with pytest.raises(Unavailable) as caught:  # the issuer has stopped
        validator.validate(token)
    assert isinstance(caught.value, IntrospectionUnavailable)
    assert (caught.value.status, caught.value.reason) == (503, "introspection_unavailable")
    with pytest.raises(IntrospectionUnavailable):
        validator.validate(token)


@pytest.mark.parametrize("status", [500, 503, 429, 400])
def test_error_status_is_503_then_recovers(ibm: Any, clock: Clock, status: int) -> None:
    validator = _validator(ibm, clock=clock)
    token = ibm.mint()
    ibm.introspection_status = status
    with pytest.raises(IntrospectionUnavailable):
        validator.validate(token)
    ibm.introspection_status = 200
    assert validator.validate(token).client_id == ibm.client_id


def test_wrong_introspection_credentials_are_503_not_401(ibm: Any, caplog: pytest.LogCaptureFixture) -> None:
    spec = introspection_spec(ibm)
    spec["introspection"]["client_secret"] = "wrong"
    token = ibm.mint()
    with pytest.raises(IntrospectionUnavailable):
        TokenValidator([spec]).validate(token)
    assert "check the introspection client_id/client_secret" in caplog.text
    assert token not in caplog.text
    assert "wrong" not in caplog.text


# -- what an answer must say ---------------------------------------------------------

ANSWERS = [
    pytest.param({}, None, id="active"),
    pytest.param({"aud": "https://other.example"}, "audience", id="other-audience"),
    pytest.param({"aud": ["https://other.example", "https://api.example.com"]}, None, id="audience-in-list"),
    pytest.param({"iss": "https://other.example"}, "issuer", id="other-issuer"),
    pytest.param({"exp": None}, "missing_claim", id="no-exp"),
    pytest.param({"exp": "soon"}, "claim_type", id="exp-not-a-number"),
    pytest.param({"nbf": 2**40}, "not_yet_valid", id="not-yet-valid"),
    pytest.param({"active": "true"}, "inactive", id="active-as-string"),
    pytest.param({"active": False}, "inactive", id="inactive"),
    pytest.param({"token_type": "refresh_token"}, "token_type", id="refresh-token"),
]


@pytest.mark.parametrize(("changes", "reason"), ANSWERS)
def test_answer_is_checked_like_jwt_claims(changes: dict[str, Any], reason: str | None) -> None:
    now = time.time()
    answer: dict[str, Any] = {"active": True, "client_id": "c", "exp": now + 60, "iss": "https://idp.example"}
    answer.update(changes)
    answer = {k: v for k, v in answer.items() if v is not None}
    rules = ClaimRules(issuer="https://idp.example", audiences=["https://api.example.com"], require_iat=False)
    rules.require_aud = False
    if reason is None:
        check_introspected(answer, rules, now)
    else:
        with pytest.raises(InvalidToken) as caught:
            check_introspected(answer, rules, now)
        assert caught.value.reason == reason


@pytest.mark.parametrize("scope", ["a b", ["a", "b"]])
def test_scope_may_be_a_string_or_a_list(scope: Any) -> None:
    rules = ClaimRules(issuer="https://idp.example", audiences=["x"])
    token = VerifiedToken({"active": True, "scope": scope, "client_id": "c", "exp": 1}, {}, rules)
    assert token.scopes == frozenset({"a", "b"})


def test_wrong_audience_from_the_endpoint_is_refused(ibm: Any) -> None:
    with pytest.raises(InvalidToken) as caught:
        _validator(ibm).validate(ibm.mint(aud="https://other.example"))
    assert caught.value.reason == "audience"


MALFORMED = [
    pytest.param("has space", id="space"),
    pytest.param("x" * 20000, id="too-large"),
    pytest.param("tök", id="not-ascii"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("token", MALFORMED)
def test_malformed_opaque_token_is_refused_without_a_call(ibm: Any, token: str) -> None:
    with pytest.raises(InvalidToken):
        _validator(ibm).validate(token)
    assert ibm.hits["introspect"] == 0


# -- which issuer is asked -----------------------------------------------------------


def test_issuers_are_asked_in_order_until_one_says_active(ibm: Any, duende: Any) -> None:
    validator = _validator(ibm, duende)
    reference = duende.mint(opaque=True)
    token = validator.validate(reference)
    assert (token.issuer, token.client_id) == (duende.issuer, duende.client_id)
    assert token.scopes == frozenset({"assets.read", "assets.write"})
    assert (ibm.hits["introspect"], duende.hits["introspect"]) == (1, 1)
    validator.validate(ibm.mint())
    assert (ibm.hits["introspect"], duende.hits["introspect"]) == (2, 1)  # the first said active


def test_down_issuer_does_not_block_an_active_answer_elsewhere(ibm: Any, duende: Any) -> None:
    validator = _validator(ibm, duende)
    ibm.introspection_status = 503
    assert validator.validate(duende.mint(opaque=True)).issuer == duende.issuer
    with pytest.raises(IntrospectionUnavailable):  # inactive at Duende, unknown at IBM
        validator.validate("NotKnownAnywhere0123456789")


def test_jwts_never_go_to_introspection_by_default(duende: Any) -> None:
    validator = _validator(duende)
    assert validator.validate(duende.mint()).header["typ"] == "at+jwt"
    assert duende.hits["introspect"] == 0


def test_tokens_all_introspects_this_issuers_jwts(duende: Any, clock: Clock) -> None:
    validator = _validator(duende, clock=clock, tokens="all", ttl=10)
    jwt = duende.mint()
    assert validator.validate(jwt).client_id == duende.client_id
    duende.revoke(jwt)
    clock.now += 11
    with pytest.raises(InvalidToken) as caught:
        validator.validate(jwt)
    assert caught.value.reason == "inactive"


def test_endpoint_is_discovered_when_not_configured(ibm: Any) -> None:
    spec = introspection_spec(ibm, endpoint=None)
    assert TokenValidator([spec]).validate(ibm.mint()).client_id == ibm.client_id
    assert ibm.hits["openid_configuration"] == 1


def test_opaque_token_without_introspection_is_malformed(ibm: Any) -> None:
    with pytest.raises(InvalidToken) as caught:
        TokenValidator(ibm.issuer, audience="https://api.example.com").validate(ibm.mint())
    assert caught.value.reason == "malformed"
    assert ibm.hits["introspect"] == 0


BAD_OPTIONS = [
    pytest.param("nope", "must be a dict", id="not-a-dict"),
    pytest.param({"client_id": "a"}, "client_secret'] is required", id="no-secret"),
    pytest.param({"client_id": "a", "client_secret": "b", "auth_method": "jwt"}, "auth_method", id="auth-method"),
    pytest.param({"client_id": "a", "client_secret": "b", "tokens": "jwt"}, "'opaque'", id="tokens"),
    pytest.param({"client_id": "a", "client_secret": "b", "ttl": -1}, "ttl'] must be", id="ttl"),
    pytest.param({"client_id": "a", "client_secret": "b", "colour": 1}, "unknown key", id="unknown"),
    pytest.param(
        {"client_id": "a", "client_secret": "b", "endpoint": "http://idp.example/i"}, "not allowed", id="plain-http"
    ),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
def test_bad_introspection_settings_name_the_fix(options: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        TokenValidator([{"issuer": "https://idp.example", "introspection": options}], audience="api")
    assert message in str(caught.value)
    assert str(caught.value).startswith("issuer[0]['introspection']")


# -- i14-03: the endpoint from the metadata ---------------------------------------------


def _discovering(issuer: Any, clock: Clock | None = None) -> TokenValidator:
    return TokenValidator([introspection_spec(issuer, endpoint=None)], clock=clock, http_timeout=2)


class _OpenIDWithoutIntrospection(profile_class("ibm_verify")):  # type: ignore[misc]
    """OpenID document without ``introspection_endpoint``; the RFC 8414 one has it."""

    def _metadata(self, *, openid: bool) -> dict[str, Any]:
        doc: dict[str, Any] = super()._metadata(openid=openid)
        if openid:
            del doc["introspection_endpoint"]
        return doc


class _OpaqueOnlyServer(profile_class("ibm_verify")):  # type: ignore[misc]
    """RFC 8414 metadata only, without ``jwks_uri`` (Django OAuth Toolkit's default)."""

    def _metadata(self, *, openid: bool) -> dict[str, Any]:
        doc: dict[str, Any] = super()._metadata(openid=openid)
        del doc["jwks_uri"]
        return doc


@pytest.mark.parametrize(
    ("server_class", "openid", "hits"),
    [
        pytest.param(_OpenIDWithoutIntrospection, True, (1, 1), id="i14_03_openid_doc_lacks_it_rfc8414_has_it"),
        pytest.param(_OpaqueOnlyServer, False, (1, 1), id="i14_03_rfc8414_doc_without_jwks_uri"),
    ],
)
def test_i14_03_discovery_looks_for_the_introspection_endpoint(
    server_class: Any, openid: bool, hits: tuple[int, int]
) -> None:
    with server_class() as issuer:
        issuer.openid_configuration = openid
        issuer.oauth_metadata = True
        verified = _discovering(issuer).validate(issuer.mint())
        assert verified.client_id == issuer.client_id
        assert (issuer.hits["openid_configuration"], issuer.hits["oauth_metadata"]) == hits
        assert issuer.hits["introspect"] == 1


def test_i14_03_no_introspection_endpoint_is_a_dead_end_logged_once_with_the_fix(
    ibm: Any, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    ibm.discovery_overrides["introspection_endpoint"] = None  # the metadata names none
    validator = _discovering(ibm, clock)
    for _ in range(3):  # three cooldown windows: three discoveries, one error logged
        with pytest.raises(IntrospectionUnavailable) as caught:
            validator.validate(ibm.mint())
        assert (caught.value.status, caught.value.reason) == (503, "introspection_misconfigured")
        clock.now += 31
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "configure the issuer's introspection['endpoint']" in errors[0].getMessage()
    assert "a configuration matter rather than an outage" in errors[0].getMessage()
    assert ibm.hits["introspect"] == 0


def test_i14_03_an_unreachable_issuer_is_an_outage_not_a_dead_end(caplog: pytest.LogCaptureFixture) -> None:
    with profile_issuer("ibm_verify") as ibm:
        validator = _discovering(ibm)
        token = ibm.mint()
    with pytest.raises(IntrospectionUnavailable) as caught:  # the issuer has stopped
        validator.validate(token)
    assert caught.value.reason == "introspection_unavailable"
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert "cannot discover the introspection_endpoint" in caplog.text
