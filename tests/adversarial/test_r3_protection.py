"""Review 3, RFC 9728 and exemption findings F5 to F7: what an endpoint belongs to, audience and resource URIs."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
from flask import Blueprint, Flask

from flask_ccguard import CCGuard, require_token
from flask_ccguard.cli import flask_group
from flask_ccguard.core.claims import canonical_uri
from flask_ccguard.core.errors import ConfigurationError
from flask_ccguard.protection import requirements
from flask_ccguard.testing import TestIssuer
from tests.challenges import assert_challenge
from tests.conftest import guarded_app


def _spoofing_app(issuer: TestIssuer, *, protect: bool) -> Flask:
    app, guard = guarded_app(issuer, "r3")
    if protect:
        guard.protect(app)
    pub = Blueprint("pub", __name__)
    outer, inner = Blueprint("outer", __name__), Blueprint("inner", __name__)

    @pub.get("/pub/hello")
    def hello() -> str:
        return "hi"

    @inner.get("/in/ok")
    def ok() -> str:
        return "ok"

    guard.exempt(pub)
    guard.exempt(outer)
    outer.register_blueprint(inner)
    app.register_blueprint(pub)
    app.register_blueprint(outer)
    # App-level endpoints whose dotted names start with the public blueprints' names.
    app.add_url_rule("/admin/secret", endpoint="pub.secret", view_func=lambda: "SECRET")
    app.add_url_rule("/admin/nested", endpoint="outer.inner.secret", view_func=lambda: "SECRET")
    return app


def test_review3_f5_app_endpoint_named_like_a_public_blueprint_needs_a_token(ccguard_issuer: TestIssuer) -> None:
    app = _spoofing_app(ccguard_issuer, protect=True)
    client = app.test_client()
    # The blueprints' own views stay open, nested ones included.
    assert client.get("/pub/hello").status_code == 200
    assert client.get("/in/ok").status_code == 200
    for path in ("/admin/secret", "/admin/nested"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert b"SECRET" not in response.data
        token = ccguard_issuer.mint()
        assert client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    found = requirements(app)
    assert found["pub.hello"].public and found["outer.inner.ok"].public
    assert not found["pub.secret"].public and found["pub.secret"].token
    assert not found["outer.inner.secret"].public and found["outer.inner.secret"].token


def test_review3_f5_routes_lists_a_spoofed_endpoint_as_open(ccguard_issuer: TestIssuer) -> None:
    app = _spoofing_app(ccguard_issuer, protect=False)
    runner = app.test_cli_runner()
    result = runner.invoke(flask_group, ["routes", "--fail-on-open"])
    assert result.exit_code == 1, result.output
    listed = result.output.split("declared public:\n", 1)[1]
    for endpoint in ("pub.secret", "outer.inner.secret"):
        assert f"  {endpoint}  GET  /admin/" in listed
    rows = {r["endpoint"]: r for r in json.loads(runner.invoke(flask_group, ["routes", "--json"]).output)}
    assert rows["pub.hello"]["public"] and rows["outer.inner.ok"]["public"]
    assert not rows["pub.secret"]["public"] and not rows["outer.inner.secret"]["public"]


def test_review3_f5_resource_comes_from_registration_not_the_name(ccguard_issuer: TestIssuer) -> None:
    app, guard = guarded_app(ccguard_issuer, "r3", CCGUARD_RESOURCE="https://api.example.com", CCGUARD_AUDIENCE=None)
    app.config.pop("CCGUARD_AUDIENCE")
    reports = Blueprint("reports", __name__)
    guard.protect(reports, resource="https://api.example.com/reports")

    @reports.get("/reports/r")
    def r() -> str:
        return "r"

    app.register_blueprint(reports)

    @app.get("/admin")
    @require_token
    def admin() -> str:
        return "admin"

    app.add_url_rule("/admin2", endpoint="reports.admin", view_func=admin)
    found = requirements(app)
    assert found["reports.r"].resource == "https://api.example.com/reports"
    assert found["reports.admin"].resource == "https://api.example.com"
    client = app.test_client()
    # A token for the reports resource is no token for the app's own views, whatever their endpoint's name.
    token = ccguard_issuer.mint(aud="https://api.example.com/reports")
    assert client.get("/reports/r", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/admin2", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    metadata = "https://api.example.com/.well-known/oauth-protected-resource"
    assert_challenge(client.get("/admin2"), 401, realm="r3", params={"resource_metadata": metadata})


def test_review3_f5_exempting_a_registered_blueprint_is_refused(ccguard_issuer: TestIssuer) -> None:
    app, guard = guarded_app(ccguard_issuer, "r3")
    late = Blueprint("late", __name__)
    app.register_blueprint(late)
    with pytest.raises(RuntimeError, match=r"guard.exempt\(\) was called on the blueprint 'late' after"):
        guard.exempt(late)


_KIOSK = "https://api.kiosk.example"


@pytest.mark.parametrize(
    "aud",
    [
        pytest.param("https://api.\u212aiosk.example", id="kelvin_sign_k"),
        pytest.param("HTTPS://API.\u212aIOSK.EXAMPLE", id="kelvin_sign_upper_case"),
        pytest.param("https://ap\u0131.kiosk.example", id="dotless_i"),
        pytest.param("https://ap\u0130.kiosk.example", id="dotted_capital_i"),
        pytest.param("https://api.kio\u017fk.example", id="long_s"),
        pytest.param("https://api.\uff4b\uff49\uff4f\uff53\uff4b.example", id="fullwidth_letters"),
        pytest.param("https://api.\uff2b\uff29\uff2f\uff33\uff2b.example", id="fullwidth_capitals"),
        pytest.param("https://api.kiosk.example:\u0664\u0664\u0663", id="arabic_indic_port"),
    ],
)
def test_review3_f6_look_alike_audience_is_refused(ccguard_issuer: TestIssuer, aud: str) -> None:
    assert canonical_uri(aud) == aud
    app, _ = guarded_app(ccguard_issuer, "r3", CCGUARD_RESOURCE=_KIOSK, CCGUARD_AUDIENCE=None)

    @app.get("/v")
    @require_token
    def v() -> str:
        return "ok"

    client = app.test_client()
    assert client.get("/v", headers={"Authorization": f"Bearer {ccguard_issuer.mint(aud=aud)}"}).status_code == 401
    # The ASCII spellings of the same identifier still match (RFC 3986 §6.2.2).
    for same in (_KIOSK, "HTTPS://API.KIOSK.EXAMPLE", f"{_KIOSK}:443", f"{_KIOSK}/"):
        token = ccguard_issuer.mint(aud=same)
        assert client.get("/v", headers={"Authorization": f"Bearer {token}"}).status_code == 200, same


_WHY_CHARACTER = "has a character a URI cannot hold"
_WHY_SEGMENT = "must have no empty, '.' or '..' path segment"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        pytest.param('https://api.example.com/a"b, error="x', _WHY_CHARACTER, id="quote"),
        pytest.param("https://api.example.com/a\r\nX-Evil: 1", _WHY_CHARACTER, id="crlf"),
        pytest.param("https://api.example.com/a\tb", _WHY_CHARACTER, id="tab"),
        pytest.param("https://api.example.com/a\x00", _WHY_CHARACTER, id="nul"),
        pytest.param("https://api.example.com/a b", _WHY_CHARACTER, id="space"),
        pytest.param("https://api.example.com/a\\", _WHY_CHARACTER, id="backslash"),
        pytest.param("https://api.example.com/\u00e9", _WHY_CHARACTER, id="non_ascii_path"),
        pytest.param("https://api.\u212aiosk.example", _WHY_CHARACTER, id="non_ascii_host"),
        pytest.param("https://api.example.com/<x>", _WHY_CHARACTER, id="angle_brackets"),
        pytest.param("https://api.example.com/a%2", "'%' not followed by two hex digits", id="short_percent"),
        pytest.param("https://api.example.com/a%zz", "'%' not followed by two hex digits", id="bad_percent"),
        pytest.param("https://api.example.com/a%FF", "is not a valid URI", id="percent_not_utf8"),
        pytest.param("https://api.example.com//", _WHY_SEGMENT, id="empty_segment"),
        pytest.param("https://api.example.com/a//b", _WHY_SEGMENT, id="inner_empty_segment"),
        pytest.param("https://api.example.com/x/../y", _WHY_SEGMENT, id="dot_dot"),
        pytest.param("https://api.example.com/./y", _WHY_SEGMENT, id="dot"),
        pytest.param("https://api.example.com/x/%2E%2E/y", _WHY_SEGMENT, id="encoded_dot_dot"),
    ],
)
def test_review3_f7_resource_must_be_an_ascii_uri(ccguard_issuer: TestIssuer, value: str, why: str) -> None:
    app = Flask("r3")
    app.config.update(ccguard_issuer.app_config(CCGUARD_RESOURCE=value))
    app.config.pop("CCGUARD_AUDIENCE")
    with pytest.raises(ConfigurationError, match=re.escape(why)) as raised:
        CCGuard(app)
    assert str(raised.value).startswith(f"CCGUARD_RESOURCE {value!r} ")
    # A blueprint's resource is held to the same rule, naming its own key.
    app, guard = guarded_app(ccguard_issuer, "r3")
    with pytest.raises(ConfigurationError, match=re.escape(why)) as raised:
        guard.protect(Blueprint("bp", __name__), resource=value)
    assert str(raised.value).startswith(f"guard.protect(resource=...) {value!r} ")


@pytest.mark.parametrize(
    ("resource", "served_at"),
    [
        pytest.param("https://api.example.com/a%20b", "/a%20b", id="space"),
        pytest.param("https://api.example.com/caf%C3%A9", "/caf%C3%A9", id="utf8"),
        pytest.param("https://api.example.com/a%2Fb", "/a%2Fb", id="encoded_slash"),
        pytest.param("https://api.example.com/v1/", "/v1/", id="trailing_slash"),
    ],
)
def test_review3_f7_percent_encoded_resource_is_served_at_its_url(
    ccguard_issuer: TestIssuer, resource: str, served_at: str
) -> None:
    app, _ = guarded_app(ccguard_issuer, "r3", CCGUARD_RESOURCE=resource, CCGUARD_AUDIENCE=None)

    @app.get("/v")
    @require_token
    def v() -> str:
        return "ok"

    client = app.test_client()
    url = f"https://api.example.com/.well-known/oauth-protected-resource{served_at}"
    assert_challenge(client.get("/v"), 401, realm="r3", params={"resource_metadata": url})
    response = client.get(urlsplit(url).path)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["resource"] == resource


def test_review3_f7_resources_sharing_a_decoded_metadata_path_are_refused(ccguard_issuer: TestIssuer) -> None:
    app, guard = guarded_app(
        ccguard_issuer, "r3", CCGUARD_RESOURCE="https://api.example.com/a/b", CCGUARD_AUDIENCE=None
    )
    reports = Blueprint("reports", __name__)
    guard.protect(reports, resource="https://api.example.com/a%2Fb")
    with pytest.raises(
        ConfigurationError,
        match=re.escape("would share the metadata URL path '/.well-known/oauth-protected-resource/a/b'"),
    ):
        app.register_blueprint(reports)
