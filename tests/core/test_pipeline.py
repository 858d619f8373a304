"""Issue 15: one validation pipeline, with the request in it (named steps, binding hook, HTTPRequest)."""

from __future__ import annotations

import pytest

from flask_ccguard import InvalidToken, TokenValidator, VerifiedToken
from flask_ccguard.core.pipeline import STEPS
from flask_ccguard.core.request import Headers, HTTPRequest
from flask_ccguard.testing import TestIssuer


def test_i15_01_steps_are_named_and_ordered_once() -> None:
    assert [name for name, _ in STEPS] == [
        "parse",
        "issuer",
        "header",
        "key",
        "signature",
        "claims",
        "binding",
        "authorization",
    ]


def test_i15_01_http_request_headers_are_case_insensitive_and_read_only() -> None:
    req = HTTPRequest("GET", "https://api.example.com/x?access_token=secret", Headers([("DPoP", "a"), ("dpop", "b")]))
    assert req.headers["dpop"] == "a, b"
    assert req.headers.get("DPOP") == "a, b"
    assert isinstance(req.headers, Headers)
    assert req.headers.get_all("Dpop") == ("a", "b")
    assert "secret" not in repr(req)  # a query token never reaches a log line
    with pytest.raises(TypeError):
        req.headers["x"] = "y"  # type: ignore[index]
    with pytest.raises(AttributeError):
        req.method = "POST"  # type: ignore[misc]


def test_i15_01_binding_step_sees_the_request_on_first_use_and_on_cache_hits(ccguard_issuer: TestIssuer) -> None:
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience)
    seen: list[tuple[HTTPRequest | None, str | None]] = []

    def binding(request: HTTPRequest | None, token: VerifiedToken) -> None:
        seen.append((request, token.subject))
        if request is None or request.headers.get("X-Proof") != "ok":
            raise InvalidToken("The token is bound to a proof this request lacks.", reason="binding")

    validator.pipeline.add_binding(binding)
    token = ccguard_issuer.mint(sub="svc")
    good = HTTPRequest("GET", "https://api.example.com/", Headers({"x-proof": "ok"}))
    assert validator.validate(token, request=good).subject == "svc"
    assert validator.validate(token, request=good).subject == "svc"  # cache hit: binding runs again
    with pytest.raises(InvalidToken) as caught:
        validator.validate(token)  # cache hit without the request: refused
    assert caught.value.reason == "binding"
    assert [s for _, s in seen] == ["svc", "svc", "svc"]
    assert seen[0][0] is good


def test_i15_01_without_a_request_validation_is_as_before(ccguard_issuer: TestIssuer) -> None:
    validator = TokenValidator(ccguard_issuer.issuer, ccguard_issuer.audience)
    token = ccguard_issuer.mint(sub="svc")
    assert validator.validate(token).subject == validator.validate(token, request=None).subject == "svc"


def test_i15_01_flask_fills_the_request_once_per_request(ccguard_issuer: TestIssuer) -> None:
    from flask import Flask

    from flask_ccguard import CCGuard, require_roles, require_token
    from flask_ccguard.state import get_state

    app = Flask(__name__)
    app.config.update(CCGUARD_ISSUER=ccguard_issuer.issuer, CCGUARD_AUDIENCE=ccguard_issuer.audience)
    CCGuard(app)
    seen: list[HTTPRequest | None] = []
    get_state(app).validator.pipeline.add_binding(lambda request, token: seen.append(request))

    @app.post("/things")
    @require_token
    @require_roles("guest")
    def things() -> dict[str, str]:
        return {"ok": "yes"}

    token = ccguard_issuer.mint(roles=["guest"])
    answer = app.test_client().post("/things?x=1", headers={"Authorization": f"Bearer {token}", "DPoP": "proof"})
    assert answer.status_code == 200
    assert len(seen) == 1  # stacked decorators: validated and described once
    request = seen[0]
    assert request is not None
    assert (request.method, request.url, request.headers["dpop"]) == ("POST", "http://localhost/things?x=1", "proof")
