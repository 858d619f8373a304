"""Review round 4 of the OpenTelemetry support (issue 19): an operator's unusual SDK
set-ups, an attacker's requests, and the docs' tables, checked with a real SDK."""

from __future__ import annotations

import gc
import re
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flask_ccguard import KeysUnavailable, TokenValidator
from flask_ccguard.core.errors import IntrospectionUnavailable
from flask_ccguard.core.telemetry import INSTRUMENTS
from flask_ccguard.testing import TestIssuer, profile_issuer
from tests.challenges import assert_challenge
from tests.conftest import bearer, make_app

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.context import Context
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.metrics._internal.exemplar import ExemplarFilter
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import Attributes

from tests.otel_support import Recorded, installed_sdk, request_span


@pytest.fixture
def otel() -> Iterator[Recorded]:
    with installed_sdk() as recorded:
        yield recorded


class _RaisingProcessor(SpanProcessor):
    """An application's span processor with a bug that shows on our spans only."""

    def __init__(self, when: str) -> None:
        self.when = when

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.when == "start" and span.name.startswith("ccguard."):
            raise RuntimeError("processor bug")

    def on_end(self, span: ReadableSpan) -> None:
        if self.when == "end" and span.name.startswith("ccguard."):
            raise RuntimeError("processor bug")


class _RaisingExemplarFilter(ExemplarFilter):
    """An application's exemplar filter that raises on our measurements (every one goes through it)."""

    def should_sample(self, value: float, time_unix_nano: int, attributes: Attributes, context: Context) -> bool:
        if not attributes or any(name.startswith("ccguard.") for name in attributes):
            raise RuntimeError("filter bug")
        return False


@pytest.fixture
def raising_sdk(request: pytest.FixtureRequest) -> Iterator[None]:
    with installed_sdk(processor=_RaisingProcessor(request.param), exemplar_filter=_RaisingExemplarFilter()):
        yield


@pytest.mark.parametrize("raising_sdk", ["start", "end"], indirect=True)
@pytest.mark.parametrize("instrumented", [True, False], ids=["flask_span", "no_flask_span"])
def test_review4_01_a_raising_span_processor_or_exemplar_filter_never_changes_an_answer(
    raising_sdk: None, instrumented: bool, ccguard_issuer: TestIssuer
) -> None:
    # SDK span processors, samplers and exemplar filters are called in the caller's
    # thread and their exceptions reach it: ours must stop at the telemetry.
    app = make_app(ccguard_issuer)
    if instrumented:
        FlaskInstrumentor().instrument_app(app)  # type: ignore[no-untyped-call]
    client = app.test_client()
    try:
        good = ccguard_issuer.mint()
        for _ in range(3):  # first seen (keys fetched), verified again, then a token-cache hit
            assert client.get("/v", headers=bearer(good)).status_code == 200
        expired = client.get("/v", headers=bearer(ccguard_issuer.mint(expires_in=-600)))
        assert_challenge(expired, 401, "invalid_token", "The access token has expired.", realm="assets")
        unknown = client.get("/v", headers=bearer(ccguard_issuer.mint(kid="not-published")))
        unknown_kid = "The token's key id is not one of the issuer's keys."
        assert_challenge(unknown, 401, "invalid_token", unknown_kid, realm="assets")
    finally:
        if instrumented:
            FlaskInstrumentor().uninstrument_app(app)  # type: ignore[no-untyped-call]


def test_review4_02_an_unavailable_validation_carries_no_rfc6750_error_code(otel: Recorded) -> None:
    # A 503 has no challenge and no RFC 6750 error: counting it as invalid_token
    # would put "keys unreachable" in the same series as forged tokens.
    issuer = TestIssuer()
    token = issuer.mint()
    validator = TokenValidator(issuer.issuer, issuer.audience, jwks_uri=issuer.jwks_uri)
    issuer.stop()
    with pytest.raises(KeysUnavailable), request_span():
        validator.validate(token)
    unavailable = {"ccguard.outcome": "unavailable", "ccguard.reason": "keys_unavailable"}
    (span,) = otel.spans("ccguard.validate")
    assert dict(span.attributes or {}) == unavailable
    assert otel.points("ccguard.validation.refusals") == [(unavailable, 1)]


class _Owner:
    """Something a count belongs to (weakly referenced)."""


def test_review4_03_a_validator_collected_while_cache_hits_are_read_does_not_deadlock(
    otel: Recorded, ccguard_issuer: TestIssuer
) -> None:
    # A validator with telemetry sits in a reference cycle (its validate wraps its
    # own bound method), so the cyclic collector frees it, and runs its finalizer,
    # in whichever thread allocates at that moment: the metric reader's own, while
    # it sums the counts under their lock, included. Here the read that starts the
    # collection stands for any allocation made under that lock.
    token = ccguard_issuer.mint()
    dropped = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience)
    for _ in range(3):  # verified twice, then one token-cache hit
        dropped.validate(token)
    telemetry = dropped.http.telemetry
    gone = weakref.ref(dropped)
    owner = _Owner()
    gc.collect()
    gc.disable()
    try:
        del dropped  # unreachable, in a cycle: freed by the next collection
        telemetry.count_cache_hits(owner, lambda: gc.collect() * 0)
        read: list[Any] = []
        reader = threading.Thread(target=lambda: read.append(otel.points("ccguard.validation.cache_hits")), daemon=True)
        reader.start()
        reader.join(10)
        assert not reader.is_alive(), "the metric reader deadlocked"
    finally:
        gc.enable()
    assert gone() is None
    assert read == [[({}, 1)]]
    assert otel.points("ccguard.validation.cache_hits") == [({}, 1)]  # its count stays in the sum


def test_review4_04_an_introspected_token_is_not_labelled_with_the_algorithm_none(otel: Recorded) -> None:
    # An opaque token has no JWS header; "none" is the unsecured JWS algorithm
    # (RFC 7518 §3.6), the one an alert on accepted "alg=none" looks for.
    with profile_issuer("ibm_verify") as idp:
        name, secret = next(iter(idp.introspection_clients.items()))
        introspection = {"endpoint": idp.introspection_endpoint, "client_id": name, "client_secret": secret}
        validator = TokenValidator([{"issuer": idp.issuer, "audience": idp.audience, "introspection": introspection}])
        with request_span():
            validator.validate(idp.mint())
    (span,) = otel.spans("ccguard.validate")
    assert dict(span.attributes or {}) == {"ccguard.outcome": "accepted", "ccguard.issuer": idp.issuer}
    assert otel.points("ccguard.validation.duration") == [({"ccguard.outcome": "accepted"}, 1)]


@pytest.mark.parametrize(
    ("status", "body", "error_type"),
    [(500, None, "500"), (404, None, "404"), (200, b"<html>not JSON</html>", "FetchError")],
    ids=["http_500", "http_404", "not_json_200"],
)
def test_review4_05_a_failed_key_set_fetch_span_names_the_status_and_a_true_error_type(
    otel: Recorded, status: int, body: bytes | None, error_type: str
) -> None:
    # HTTP client semantic conventions: http.response.status_code whenever an
    # answer came; error.type the status code only for an error status (a 200
    # that is not JSON was "200"), else the exception's type.
    with TestIssuer() as issuer:
        issuer.jwks_status = status
        issuer.jwks_body = body
        validator = TokenValidator(issuer.issuer, issuer.audience, jwks_uri=issuer.jwks_uri)
        with pytest.raises(KeysUnavailable), request_span():
            validator.validate(issuer.mint())
    (fetch, *_) = otel.spans("ccguard.fetch.key_set")
    attributes = dict(fetch.attributes or {})
    assert fetch.status.status_code is StatusCode.ERROR
    assert (attributes.get("http.response.status_code"), attributes.get("error.type")) == (status, error_type)


def test_review4_05_an_introspection_endpoint_refusing_the_client_is_an_error_span(otel: Recorded) -> None:
    # post_form takes any status as an answer: a 401 from the introspection
    # endpoint (a wrong client secret) was a span without error.
    with profile_issuer("ibm_verify") as idp:
        name = next(iter(idp.introspection_clients))
        introspection = {"endpoint": idp.introspection_endpoint, "client_id": name, "client_secret": "not-the-secret"}
        validator = TokenValidator([{"issuer": idp.issuer, "audience": idp.audience, "introspection": introspection}])
        with pytest.raises(IntrospectionUnavailable), request_span():
            validator.validate(idp.mint())
    (fetch,) = otel.spans("ccguard.fetch.introspection")
    attributes = dict(fetch.attributes or {})
    assert fetch.status.status_code is StatusCode.ERROR
    assert (attributes.get("http.response.status_code"), attributes.get("error.type")) == (401, "401")


def test_review4_06_a_token_of_a_tenant_is_labelled_with_the_configured_template(
    otel: Recorded, ccguard_issuer: TestIssuer
) -> None:
    # Under a {tenantid} template (any tenant: a multi-tenant app), the token's
    # iss names the tenant its sender chose: a claim value, not configuration.
    template = ccguard_issuer.base_url + "/{tenantid}/v2.0"
    validator = TokenValidator([{"issuer": template, "jwks_uri": ccguard_issuer.jwks_uri}], ccguard_issuer.audience)
    tenant = "0badc0de-0000-4000-8000-00000000f00d"
    token = ccguard_issuer.mint(iss=template.replace("{tenantid}", tenant), tid=tenant)
    with request_span():
        assert validator.validate(token).issuer.endswith(f"/{tenant}/v2.0")
    (span,) = otel.spans("ccguard.validate")
    assert dict(span.attributes or {})["ccguard.issuer"] == template
    assert tenant not in otel.all_attribute_text()


def _docs_table(title: str) -> list[list[str]]:
    """The rows (cells as text) of the list-table under ``title`` in docs/observability.rst."""
    text = (Path(__file__).parent.parent / "docs" / "observability.rst").read_text(encoding="utf-8")
    section = text.split(f"\n{title}\n", 1)[1].split(".. list-table::", 1)[1]
    rows: list[list[str]] = []
    for line in section.splitlines()[1:]:
        if line and not line.startswith(" "):
            break  # the text after the table
        stripped = line.strip()
        if stripped.startswith("* - "):
            rows.append([stripped[4:]])
        elif (stripped == "-" or stripped.startswith("- ")) and rows:
            rows[-1].append(stripped[2:])  # an empty cell is a bare "-"
        elif stripped and rows and not stripped.startswith(":"):
            rows[-1][-1] += " " + stripped
    return rows[1:]  # without the header row


def test_review4_docs_the_metric_table_is_the_instrument_list() -> None:
    kinds = {"histogram": "histogram", "counter": "counter", "observable counter": "observable_counter"}
    documented = {
        name.strip("`"): (kinds[kind], unit.strip("`")) for name, kind, unit, *_attributes in _docs_table("Metrics")
    }
    assert documented == {name: (kind, unit) for name, (kind, unit, _description) in INSTRUMENTS.items()}


def test_review4_docs_the_span_table_is_what_fetches_are_named(ccguard_issuer: TestIssuer) -> None:
    documented = {row[0].strip("`") for row in _docs_table("Spans")}
    assert documented == {
        "ccguard.validate",
        "ccguard.fetch.metadata",
        "ccguard.fetch.key_set",
        "ccguard.fetch.introspection",
    }
    root = Path(__file__).parent.parent / "flask_ccguard"
    purposes = {m for f in root.rglob("*.py") for m in re.findall(r'purpose="(\w+)"', f.read_text(encoding="utf-8"))}
    assert {f"ccguard.fetch.{p}" for p in purposes} == documented - {"ccguard.validate"}


def test_review4_docs_stale_keys_served_is_emitted(otel: Recorded, ccguard_issuer: TestIssuer) -> None:
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience, jwks_max_age=0)
    token = ccguard_issuer.mint()
    validator.validate(token)
    ccguard_issuer.jwks_status = 503  # refreshes fail; the cached keys keep serving
    for _ in range(3):
        validator.validate(token)
    ((attributes, count),) = otel.points("ccguard.key_set.stale_served")
    assert attributes == {} and count == validator.stats()["stale_keys_served"] >= 1
