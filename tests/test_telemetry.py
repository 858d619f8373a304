"""OpenTelemetry spans and metrics (issue 19 item 1), read back with the SDK's in-memory exporters."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import weakref
from collections.abc import Iterator

import pytest

from flask_ccguard import ExpiredToken, InvalidToken, KeysUnavailable, TokenValidator
from flask_ccguard.core.telemetry import DURATION_BUCKETS, INSTRUMENTS, NO_TELEMETRY, SCOPE, Telemetry
from flask_ccguard.testing import TestIssuer, profile_issuer
from tests.conftest import bearer, make_app, unverified_claims
from tests.dpop_proofs import DPoPKey

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.metrics.export import HistogramDataPoint
from opentelemetry.trace import SpanKind, StatusCode

from tests.otel_support import Recorded, installed_sdk, request_span

DPOP_KEY = DPoPKey()


@pytest.fixture
def otel() -> Iterator[Recorded]:
    """An SDK configured before the app and validator are built (the documented rule)."""
    with installed_sdk() as recorded:
        yield recorded


def test_i19_01_a_validation_outside_any_trace_starts_none_but_is_measured(
    otel: Recorded, ccguard_issuer: TestIssuer
) -> None:
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience)
    validator.validate(ccguard_issuer.mint())
    assert otel.spans("ccguard.validate") == []
    assert [count for _attrs, count in otel.points("ccguard.validation.duration")] == [1]


def test_i19_01_one_protected_request_gives_the_flask_span_our_span_under_it_and_metrics(
    otel: Recorded, ccguard_issuer: TestIssuer
) -> None:
    app = make_app(ccguard_issuer)
    FlaskInstrumentor().instrument_app(app)  # type: ignore[no-untyped-call]
    try:
        resp = app.test_client().get("/v", headers=bearer(ccguard_issuer.mint()))
    finally:
        FlaskInstrumentor().uninstrument_app(app)  # type: ignore[no-untyped-call]
    assert resp.status_code == 200
    (server,) = [s for s in otel.spans() if s.kind is SpanKind.SERVER]
    (validate,) = otel.spans("ccguard.validate")
    assert validate.parent is not None and validate.parent.span_id == server.context.span_id
    assert validate.context.trace_id == server.context.trace_id
    assert validate.instrumentation_scope is not None and validate.instrumentation_scope.name == SCOPE
    assert dict(validate.attributes or {}) == {
        "ccguard.outcome": "accepted",
        "ccguard.algorithm": "RS256",
        "ccguard.issuer": ccguard_issuer.issuer,
    }
    # The fetches made while validating are client spans under the validation span.
    fetches = [s for s in otel.spans() if s.name.startswith("ccguard.fetch.")]
    assert {s.name for s in fetches} == {"ccguard.fetch.metadata", "ccguard.fetch.key_set"}
    for span in fetches:
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None and span.parent.span_id == validate.context.span_id
    (jwks,) = otel.spans("ccguard.fetch.key_set")
    assert dict(jwks.attributes or {}) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "server.address": "127.0.0.1",
        "server.port": int(ccguard_issuer.base_url.rsplit(":", 1)[1]),
        "url.path": ccguard_issuer.jwks_uri.split(ccguard_issuer.base_url, 1)[1],
        "http.response.status_code": 200,
        "ccguard.cache_hit": False,
    }
    ((attrs, count),) = otel.points("ccguard.validation.duration")
    assert attrs == {"ccguard.outcome": "accepted", "ccguard.algorithm": "RS256"} and count == 1
    assert otel.points("ccguard.key_set.fetches") == [({"ccguard.outcome": "success"}, 1)]
    assert otel.metric_units()["ccguard.validation.duration"] == "s"


def test_i19_01_refusals_are_counted_by_reason_with_the_rfc6750_code(
    otel: Recorded, ccguard_issuer: TestIssuer
) -> None:
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience)
    with pytest.raises(ExpiredToken), request_span():
        validator.validate(ccguard_issuer.mint(expires_in=-600))
    (span,) = otel.spans("ccguard.validate")
    assert dict(span.attributes or {}) == {
        "ccguard.outcome": "rejected",
        "ccguard.reason": "expired",
        "ccguard.error_code": "invalid_token",
    }
    assert span.status.status_code is StatusCode.UNSET  # a refusal is not a fault of ours
    assert span.events == ()  # no exception event: its text is not for telemetry
    assert otel.points("ccguard.validation.refusals") == [(dict(span.attributes or {}), 1)]
    assert otel.points("ccguard.validation.duration") == [({"ccguard.outcome": "rejected"}, 1)]
    # guard.stats()/validator.stats() stay the dependency-free view of the same counts.
    assert validator.stats()["reasons"] == {"expired": 1}


def test_i19_01_unreachable_keys_are_an_error_span_and_failed_fetches(otel: Recorded) -> None:
    issuer = TestIssuer()
    token = issuer.mint()
    validator = TokenValidator(issuer.issuer, issuer.audience, jwks_uri=issuer.jwks_uri)
    issuer.stop()
    with pytest.raises(KeysUnavailable), request_span():
        validator.validate(token)
    (span,) = otel.spans("ccguard.validate")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["ccguard.outcome"] == "unavailable"
    (fetch,) = otel.spans("ccguard.fetch.key_set")
    assert fetch.status.status_code is StatusCode.ERROR and fetch.attributes is not None
    assert fetch.attributes["error.type"] == "FetchError"
    assert otel.points("ccguard.key_set.fetch_failures") == [({}, 1)]
    assert otel.points("ccguard.key_set.fetches") == [({"ccguard.outcome": "failure"}, 1)]


def test_i19_01_cooldown_refusals_are_counted(otel: Recorded, ccguard_issuer: TestIssuer) -> None:
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience)
    validator.validate(ccguard_issuer.mint())
    unknown = ccguard_issuer.mint(kid="not-published")
    for _ in range(2):  # the keys were just fetched: within the cooldown, no refetch
        with pytest.raises(InvalidToken, match="key id"):
            validator.validate(unknown)
    assert otel.points("ccguard.key_set.cooldown_refusals") == [({}, 2)]
    assert validator.stats()["cooldown_refusals"] == 2


def test_i19_01_rfc9449_11_1_a_replayed_proof_is_counted_and_traced(otel: Recorded, ccguard_issuer: TestIssuer) -> None:
    # A token is cached when seen again, so the third proof is accepted and the
    # replay refused on the cache-hit path: the replay still gets its span, its
    # refusal and its duration point; the accepted cache hit gets none.
    app = make_app(ccguard_issuer)
    FlaskInstrumentor().instrument_app(app)  # type: ignore[no-untyped-call]
    client = app.test_client()
    token = ccguard_issuer.mint(cnf={"jkt": DPOP_KEY.jkt})
    proofs = [DPOP_KEY.proof("GET", "http://localhost/v", token) for _ in range(3)]
    try:
        for proof, status in ((proofs[0], 200), (proofs[1], 200), (proofs[2], 200), (proofs[2], 401)):
            headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
            assert client.get("/v", headers=headers).status_code == status
    finally:
        FlaskInstrumentor().uninstrument_app(app)  # type: ignore[no-untyped-call]
    assert otel.points("ccguard.dpop.replays_refused") == [({}, 1)]
    refusal = {"ccguard.outcome": "rejected", "ccguard.reason": "replayed", "ccguard.error_code": "invalid_dpop_proof"}
    assert otel.points("ccguard.validation.refusals") == [(refusal, 1)]
    *verified, replay_span = otel.spans("ccguard.validate")
    assert [dict(s.attributes or {})["ccguard.outcome"] for s in verified] == ["accepted", "accepted"]
    assert dict(replay_span.attributes or {}) == refusal
    servers = [s for s in otel.spans() if s.kind is SpanKind.SERVER]
    assert replay_span.parent is not None and replay_span.parent.span_id == servers[-1].context.span_id
    server_start, replay_start = servers[-1].start_time, replay_span.start_time
    assert server_start is not None and replay_start is not None and replay_start >= server_start
    assert sorted(count for _attrs, count in otel.points("ccguard.validation.duration")) == [1, 2]
    assert otel.points("ccguard.validation.cache_hits") == [({}, 1)]


def test_i19_01_a_token_from_the_token_cache_makes_no_span_and_is_counted(
    otel: Recorded, ccguard_issuer: TestIssuer
) -> None:
    # One span costs more than ten cached validations: a cache hit is counted, not traced.
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience)
    token = ccguard_issuer.mint()
    with request_span():
        for _ in range(5):  # verified twice (a token is cached when seen again), then three hits
            validator.validate(token)
    assert len(otel.spans("ccguard.validate")) == 2
    assert otel.points("ccguard.validation.duration") == [
        ({"ccguard.outcome": "accepted", "ccguard.algorithm": "RS256"}, 2)
    ]
    assert otel.points("ccguard.validation.cache_hits") == [({}, 3)]
    assert validator.stats()["token_cache_hits"] == 3
    assert validator.stats()["validations"]["accepted"] == 5


def test_i19_01_cache_hits_of_several_validators_add_up_and_never_go_down(
    otel: Recorded, ccguard_issuer: TestIssuer
) -> None:
    # An SDK keeps one callback per instrument name: every validator's hits are summed,
    # and a validator that is collected leaves its count behind (a counter never drops).
    token = ccguard_issuer.mint()
    validators = [TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience) for _ in range(2)]
    for index, uses in enumerate((3, 4)):
        for _ in range(uses):
            validators[index].validate(token)
    assert otel.points("ccguard.validation.cache_hits") == [({}, 1 + 2)]
    gone = weakref.ref(validators.pop())
    gc.collect()
    assert gone() is None
    assert otel.points("ccguard.validation.cache_hits") == [({}, 3)]
    validators[0].validate(token)
    assert otel.points("ccguard.validation.cache_hits") == [({}, 4)]


def test_i19_01_nothing_sensitive_in_any_attribute(otel: Recorded, ccguard_issuer: TestIssuer) -> None:
    app = make_app(ccguard_issuer)
    FlaskInstrumentor().instrument_app(app)  # type: ignore[no-untyped-call]
    client = app.test_client()
    good = ccguard_issuer.mint(client_id="client-secretive-42", scope="assets:read-confidential")
    bad = ccguard_issuer.mint(sub="subject-hidden-77", kid="kid-never-shown-9")
    try:
        assert client.get("/v", headers=bearer(good)).status_code == 200
        assert client.get("/v", headers=bearer(bad)).status_code == 401
        assert client.get("/v", headers=bearer(good + "x")).status_code == 401
    finally:
        FlaskInstrumentor().uninstrument_app(app)  # type: ignore[no-untyped-call]
    text = otel.all_attribute_text()
    assert "ccguard.validate" in text and "ccguard.reason=" in text  # something was recorded
    secrets = {good, bad, *good.split("."), *bad.split(".")}
    for token in (good, bad):
        for name, value in unverified_claims(token).items():
            if name not in ("iss", "aud"):  # the issuer and audience are configuration
                secrets.add(str(value))
    secrets.add("kid-never-shown-9")
    for jwk in ccguard_issuer.jwks()["keys"]:
        secrets.update(str(v) for k, v in jwk.items() if k in ("n", "x", "y", "kid"))
    leaked = sorted(s for s in secrets if len(s) >= 6 and s in text)
    assert leaked == []


def test_i19_01_the_duration_histogram_has_buckets_for_microseconds_to_seconds(
    otel: Recorded, ccguard_issuer: TestIssuer
) -> None:
    # The SDK's default boundaries (0, 5, 10 … 10000) would put every validation in one bucket.
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience)
    validator.validate(ccguard_issuer.mint())
    data = otel.reader.get_metrics_data()
    assert data is not None
    (point,) = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "ccguard.validation.duration"
        for p in m.data.data_points
        if isinstance(p, HistogramDataPoint)
    ]
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS
    assert DURATION_BUCKETS[0] <= 0.0001 and DURATION_BUCKETS[-1] >= 10
    assert sum(point.bucket_counts[1:-1]) == 1  # neither below 50 µs nor above 10 s


def test_i19_01_instruments_follow_the_naming_rules() -> None:
    for name, (kind, unit, _description) in INSTRUMENTS.items():
        assert name.startswith("ccguard.") and name == name.lower()
        # UCUM units: seconds for durations, {annotations} for counts.
        assert (kind, unit) == ("histogram", "s") or (kind.endswith("counter") and unit.startswith("{"))


_NO_SDK = """
import json, sys
from flask_ccguard import ExpiredToken, InvalidToken, KeysUnavailable, TokenValidator
from flask_ccguard.core.telemetry import Telemetry
from flask_ccguard.testing import TestIssuer, profile_issuer
if sys.argv[1] == "api":
    import opentelemetry.trace, opentelemetry.metrics  # the API alone: its no-op providers
issuer = TestIssuer()
validator = TokenValidator(issuer.issuer, issuer.audience)
validator.validate(issuer.mint())
print(json.dumps({
    "wrapped": "validate" in vars(validator),
    "active": validator.http.telemetry.active,
    "otel": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
}))
issuer.stop()
"""


@pytest.mark.parametrize("setup", ["none", "api"])
def test_i19_01_without_an_sdk_nothing_is_wrapped_or_imported(setup: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _NO_SDK, setup], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["wrapped"] is False and report["active"] is False
    if setup == "none":
        assert report["otel"] == []  # not even the API
    else:
        assert not [m for m in report["otel"] if m.startswith("opentelemetry.sdk")]


def test_i19_01_no_telemetry_records_nothing() -> None:
    assert NO_TELEMETRY.active is False
    NO_TELEMETRY.count("ccguard.key_set.fetches")
    NO_TELEMETRY.count_cache_hits(NO_TELEMETRY, lambda: 1)
    with NO_TELEMETRY.fetch("key_set", "GET", "https://idp.example/jwks") as found:
        found["http.response.status_code"] = 200
    assert Telemetry.detect().active is False  # the API's no-op providers here (no fixture)


def test_i19_01_introspection_calls_cache_hits_and_client_span(otel: Recorded) -> None:
    with profile_issuer("ibm_verify") as idp:
        name, secret = next(iter(idp.introspection_clients.items()))
        validator = TokenValidator(
            [
                {
                    "issuer": idp.issuer,
                    "audience": idp.audience,
                    "introspection": {
                        "endpoint": idp.introspection_endpoint,
                        "client_id": name,
                        "client_secret": secret,
                    },
                }
            ]
        )
        token = idp.mint()
        with request_span():
            for _ in range(3):
                validator.validate(token)
    assert otel.points("ccguard.introspection.calls") == [({}, 1)]
    assert otel.points("ccguard.introspection.cache_hits") == [({}, 2)]
    (fetch,) = otel.spans("ccguard.fetch.introspection")
    assert fetch.kind is SpanKind.CLIENT and fetch.attributes is not None
    assert fetch.attributes["http.request.method"] == "POST"
    assert fetch.attributes["http.response.status_code"] == 200
    assert "?" not in str(fetch.attributes["url.path"])
    text = otel.all_attribute_text()
    assert token not in text and secret not in text
