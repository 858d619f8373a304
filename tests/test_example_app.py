"""The example asset API over real HTTP: issuer, registrations, assets (README "Example asset API")."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import requests

from example_app import create_app, settings
from flask_ccguard import ConfigurationError
from flask_ccguard.core.dpop import DEFAULT_DPOP_ALGORITHMS
from flask_ccguard.testing import TestIssuer
from tests.challenges import assert_challenge

from .conftest import bearer, with_claims
from .example_server import LiveExample, live_example

ASSET = {"behaviours": ["RecordEvidence"], "attributes": {"arc_display_name": "Container #1", "weight": "20000-lbs"}}


pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveExample]:
    with live_example(tmp_path_factory.mktemp("example")) as server:
        yield server


@pytest.fixture(scope="module")
def root_token(live: LiveExample) -> str:
    return live.token(live.root)


@pytest.fixture(scope="module")
def guest(live: LiveExample) -> dict[str, Any]:
    return live.register("test-guest", "--claim", "serial_number=TL1000000101")


@pytest.fixture(scope="module")
def guest_token(live: LiveExample, guest: dict[str, Any]) -> str:
    return live.token(guest)


def _payload(token: str, part: int = 1) -> dict[str, Any]:
    segment = token.split(".")[part]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return decoded


def _asset_count(live: LiveExample) -> int:
    with sqlite3.connect(live.app.config["EXAMPLE_DATABASE"]) as conn:
        count: int = conn.execute("SELECT COUNT(*) FROM assets").fetchone()[0]
    return count


# -- first start ---------------------------------------------------------------------


def test_first_start_creates_key_0600_and_announces_root_once(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    instance = tmp_path / "instance"
    app = create_app({"EXAMPLE_INSTANCE_PATH": str(instance)})
    first = capfd.readouterr().err
    assert "export CLIENT_ID=" in first
    assert "export SECRET=" in first
    assert stat.S_IMODE(os.stat(instance / "signing_key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(instance).st_mode) == 0o700

    again = create_app({"EXAMPLE_INSTANCE_PATH": str(instance)})
    assert "SECRET" not in capfd.readouterr().err
    assert again.config["EXAMPLE_TENANT"] == app.config["EXAMPLE_TENANT"]


def test_default_issuer_is_the_readme_address(tmp_path: Path) -> None:
    app = create_app({"EXAMPLE_INSTANCE_PATH": str(tmp_path)})
    assert app.config["EXAMPLE_ISSUER"] == "http://127.0.0.1:5000/archivist/iam/v1/appidp"
    assert app.config["EXAMPLE_AUDIENCE"] == "http://127.0.0.1:5000/archivist"
    assert app.config["CCGUARD_ISSUER"] == app.config["EXAMPLE_ISSUER"]


@pytest.mark.parametrize(
    ("params", "base"),
    [
        ({"host": "127.0.0.1", "port": 5001}, "http://127.0.0.1:5001"),
        ({"host": "0.0.0.0", "port": 8080}, "http://127.0.0.1:8080"),
        ({"host": "::1", "port": 5000}, "http://[::1]:5000"),
        ({"host": "127.0.0.1", "port": 5443, "cert": "adhoc"}, "https://127.0.0.1:5443"),
    ],
)
def test_issuer_follows_the_address_flask_run_serves(params: dict[str, Any], base: str) -> None:
    with click.Context(click.Command("run"), info_name="run") as ctx:
        ctx.params = params
        resolved = settings.resolve({})
    assert resolved["EXAMPLE_ISSUER"] == base + "/archivist/iam/v1/appidp"


# -- issuer ----------------------------------------------------------------------------


def test_discovery_and_jwks_describe_the_issuer(live: LiveExample, root_token: str) -> None:
    metadata = requests.get(live.issuer + "/.well-known/openid-configuration", timeout=10).json()
    assert metadata["issuer"] == live.issuer
    assert metadata["token_endpoint"] == live.token_url
    assert metadata["token_endpoint_auth_methods_supported"] == ["client_secret_post", "client_secret_basic"]
    keys = requests.get(metadata["jwks_uri"], timeout=10).json()["keys"]
    assert _payload(root_token, 0)["kid"] in {key["kid"] for key in keys}
    assert all("d" not in key for key in keys)


def test_token_is_an_at_jwt_with_the_rkvst_claims(live: LiveExample, guest: dict[str, Any], guest_token: str) -> None:
    header, claims = _payload(guest_token, 0), _payload(guest_token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "RS256"
    assert claims["iss"] == live.issuer
    assert claims["aud"] == live.base + "/archivist"
    assert claims["sub"] == claims["client_id"] == guest["client_id"]
    assert claims["nbf"] == claims["iat"] <= time.time() < claims["exp"]
    assert claims["jti"]
    assert claims["roles"] == ["guest"]
    assert claims["serial_number"] == "TL1000000101"
    assert claims["jit_tenant_id"] == guest["tenant_id"]


def test_root_token_carries_archivist_administrator(root_token: str) -> None:
    assert _payload(root_token)["roles"] == ["archivist_administrator"]


def test_client_secret_basic_gets_a_token(live: LiveExample, guest: dict[str, Any]) -> None:
    response = requests.post(
        live.token_url,
        data={"grant_type": "client_credentials"},
        auth=(guest["client_id"], guest["credentials"][0]["secret"]),
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("data", "use_basic", "status", "error"),
    [
        ({}, False, 400, "invalid_request"),
        ({"grant_type": "password"}, False, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "client_secret": "wrong"}, False, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"},
         False, 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, False, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_secret": "also"}, True, 400, "invalid_request"),
        ({"grant_type": ["client_credentials", "client_credentials"]}, True, 400, "invalid_request"),
    ],
)  # fmt: skip
def test_token_endpoint_errors_follow_rfc6749(
    live: LiveExample, guest: dict[str, Any], data: dict[str, Any], use_basic: bool, status: int, error: str
) -> None:
    data = dict(data)
    if data.get("client_secret") == "wrong":
        data["client_id"] = guest["client_id"]
    auth = (guest["client_id"], guest["credentials"][0]["secret"]) if use_basic else None
    response = requests.post(live.token_url, data=data, auth=auth, timeout=10)
    assert response.status_code == status
    assert response.json()["error"] == error
    if status == 401:
        assert response.headers["WWW-Authenticate"] == f'Basic realm="{live.issuer}"'


def test_token_endpoint_wants_a_form_body(live: LiveExample, guest: dict[str, Any]) -> None:
    body = {"grant_type": "client_credentials", "client_id": guest["client_id"], "client_secret": "x"}
    response = requests.post(live.token_url, json=body, timeout=10)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


# -- assets ----------------------------------------------------------------------------


def test_root_creates_and_guest_pages_through_assets(live: LiveExample, root_token: str, guest_token: str) -> None:
    created = []
    for number in range(5):
        body = {**ASSET, "attributes": {"arc_display_name": f"Container #{number}"}}
        response = requests.post(live.assets_url, json=body, headers=bearer(root_token), timeout=10)
        assert response.status_code == 200, response.text
        created.append(response.json())
    asset = created[0]
    assert asset["identity"].startswith("assets/")
    assert asset["confirmation_status"] == "CONFIRMED"
    assert asset["tenant_identity"].startswith("tenant/")

    seen: list[str] = []
    params: dict[str, Any] = {"page_size": 2}
    pages = 0
    while True:
        response = requests.get(live.assets_url, params=params, headers=bearer(guest_token), timeout=10)
        assert response.status_code == 200
        page = response.json()
        assert len(page["assets"]) <= 2
        seen += [a["identity"] for a in page["assets"]]
        pages += 1
        if not page["next_page_token"]:
            break
        # As the RKVST SDK does: later pages send only the token.
        params = {"page_token": page["next_page_token"]}
    assert [a["identity"] for a in created] == seen[-5:]
    assert pages == (len(seen) + 1) // 2

    one = requests.get(live.assets_url + "/" + asset["identity"].split("/")[1], headers=bearer(guest_token), timeout=10)
    assert one.json() == asset


def test_guest_cannot_create_an_asset(live: LiveExample, guest_token: str) -> None:
    response = requests.post(live.assets_url, json=ASSET, headers=bearer(guest_token), timeout=10)
    # The description names the missing role(s); the header must carry the body's.
    description = response.json()["error_description"]
    assert_challenge(response, 403, "insufficient_scope", description, realm="example_app", params=_metadata(live))


def _expired(live: LiveExample, token: str) -> str:
    claims = _payload(token)
    claims.update(iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    # Signed with the issuer's real key: only the expiry is wrong.
    signed: str = live.app.extensions["example_keys"].current().sign(claims)
    return signed


@pytest.mark.parametrize("kind", ["tampered", "expired", "foreign_issuer", "garbage"])
def test_bad_tokens_get_401_invalid_token(live: LiveExample, guest_token: str, kind: str) -> None:
    if kind == "tampered":
        token = with_claims(guest_token, roles=["archivist_administrator"])
    elif kind == "expired":
        token = _expired(live, guest_token)
    elif kind == "foreign_issuer":
        with TestIssuer(audience=live.base + "/archivist") as other:
            token = other.mint(roles=["guest"])
    else:
        token = "not.a.jwt"
    response = requests.get(live.assets_url, headers=bearer(token), timeout=10)
    assert_challenge(
        response,
        401,
        "invalid_token",
        response.json()["error_description"],
        realm="example_app",
        params=_metadata(live),
    )


def test_no_token_gets_401_without_error_code(live: LiveExample) -> None:
    response = requests.get(live.assets_url, timeout=10)
    assert_challenge(response, 401, realm="example_app", params=_metadata(live))


def _metadata(live: LiveExample) -> dict[str, str]:
    # i17-07: the example names its resource; every challenge points at its metadata (RFC 9728 §5.1).
    return {"resource_metadata": live.base + "/.well-known/oauth-protected-resource/archivist"}


def test_i17_07_the_example_serves_its_metadata(live: LiveExample) -> None:
    url = _metadata(live)["resource_metadata"]
    response = requests.get(url, timeout=10)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.json() == {
        "resource": live.base + "/archivist",
        "authorization_servers": [live.issuer],
        "bearer_methods_supported": ["header"],
        "resource_name": "Example asset API",
        # DPoP is allowed by default (RFC 9728 §2, RFC 9449 §5.1)
        "dpop_signing_alg_values_supported": sorted(DEFAULT_DPOP_ALGORITHMS),
        "dpop_bound_access_tokens_required": False,
    }


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"[]", "application/json", 400, "JSON object"),
        (b'{"behaviours": ["A"], "attributes": {"a": "b"}, "x": 1}', "application/json", 400, "unknown field 'x'"),
        (b'{"behaviours": ["A"], "attributes": {"a": "b"}, "attributes": {}}', "application/json", 400, "duplicate"),
        (b'{"behaviours": ["A"], "attributes": {"a": NaN}}', "application/json", 400, "not valid JSON"),
        (b'{"behaviours": ["A"]}', "application/json", 400, "'attributes' is required"),
        (b'{"behaviours": [], "attributes": {"a": "b"}}', "application/json", 400, "behaviours"),
        (b'{"behaviours": ["A"], "attributes": {"a": 1}}', "application/json", 400, "attribute 'a'"),
        (b'{"behaviours": ["A"], "attributes": {"a": "b"}, "public": "yes"}', "application/json", 400, "public"),
        (b'{"behaviours": ["A"], "attributes": {"a": "b"}}', "text/plain", 415, "application/json"),
        (b"\xff\xfe", "application/json", 400, "not valid JSON"),
        (b"[" * 100000, "application/json", 413, "too large"),
    ],
)  # fmt: skip
def test_bad_asset_bodies_get_json_errors_and_write_nothing(
    live: LiveExample, root_token: str, body: bytes, content_type: str, status: int, message: str
) -> None:
    before = _asset_count(live)
    headers = {**bearer(root_token), "Content-Type": content_type}
    response = requests.post(live.assets_url, data=body, headers=headers, timeout=10)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert message in response.json()["message"]
    assert _asset_count(live) == before


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("page_size=0", "page_size"),
        ("page_size=101", "page_size"),
        ("page_size=%C2%B2", "page_size"),
        ("page_token=bm90LWEtdG9rZW4", "page_token"),
        ("page_token=!!!", "page_token"),
        ("colour=red", "unknown query parameter 'colour'"),
        ("page_size=1&page_size=2", "more than once"),
    ],
)
def test_bad_list_parameters_get_400(live: LiveExample, guest_token: str, query: str, message: str) -> None:
    response = requests.get(f"{live.assets_url}?{query}", headers=bearer(guest_token), timeout=10)
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_unknown_asset_and_path_get_json_404(live: LiveExample, guest_token: str) -> None:
    missing = requests.get(
        live.assets_url + "/00000000-0000-4000-8000-000000000000", headers=bearer(guest_token), timeout=10
    )
    assert (missing.status_code, missing.json()["code"]) == (404, 5)
    not_uuid = requests.get(live.assets_url + "/not-a-uuid", headers=bearer(guest_token), timeout=10)
    assert not_uuid.status_code == 404
    assert not_uuid.json()["message"] == "not found"


def test_wrong_method_gets_json_405_with_allow(live: LiveExample) -> None:
    response = requests.delete(live.assets_url, timeout=10)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert response.json()["code"] == 12


# -- app registrations -----------------------------------------------------------------


@pytest.mark.parametrize(
    "claim", ["jit_tenant_id", "JIT_x", "arc_display_name", "sub", "iss", "aud", "exp", "client_id", "roles", "Scope"]
)
def test_registration_with_forbidden_custom_claim_is_refused(live: LiveExample, root_token: str, claim: str) -> None:
    body = {"display_name": "TrafficLight101", "custom_claims": {claim: "x"}}
    response = requests.post(live.apps_url, json=body, headers=bearer(root_token), timeout=10)
    assert response.status_code == 400
    assert f"custom claim {claim!r}" in response.json()["message"]


def test_registration_lifecycle_over_the_api(live: LiveExample, root_token: str) -> None:
    body = {
        "display_name": "TrafficLight101",
        "custom_claims": {"serial_number": "TL1000000101", "has_cyclist_light": "true"},
    }
    created = requests.post(live.apps_url, json=body, headers=bearer(root_token), timeout=10)
    assert created.status_code == 200
    record = created.json()
    app_id = record["client_id"]
    assert record["identity"] == f"applications/{app_id}"
    assert record["custom_claims"] == body["custom_claims"]
    assert record["roles"] == ["guest"]
    assert record["tenant_id"].startswith("tenant/")
    (credential,) = record["credentials"]
    assert len(credential["secret"]) == 64
    assert set(credential) == {"secret", "valid_from", "valid_until"}

    # The secret is shown once: reading the registration never shows it.
    fetched = requests.get(f"{live.apps_url}/{app_id}", headers=bearer(root_token), timeout=10).json()
    assert "secret" not in fetched["credentials"][0]
    listed = requests.get(
        live.apps_url, params={"display_name": "TrafficLight101"}, headers=bearer(root_token), timeout=10
    )
    assert app_id in [a["client_id"] for a in listed.json()["applications"]]
    assert "secret" not in json.dumps(listed.json())
    assert _payload(live.token(record))["has_cyclist_light"] == "true"

    renewed = requests.post(
        f"{live.apps_url}/{app_id}:regenerate-secret", headers=bearer(root_token), timeout=10
    ).json()
    new_secret = renewed["credentials"][0]["secret"]
    assert new_secret != credential["secret"]
    old = requests.post(
        live.token_url, data={"grant_type": "client_credentials"}, auth=(app_id, credential["secret"]), timeout=10
    )
    assert old.status_code == 401
    assert live.token(renewed)

    assert requests.delete(f"{live.apps_url}/{app_id}", headers=bearer(root_token), timeout=10).json() == {}
    assert requests.get(f"{live.apps_url}/{app_id}", headers=bearer(root_token), timeout=10).status_code == 404
    gone = requests.post(
        live.token_url, data={"grant_type": "client_credentials"}, auth=(app_id, new_secret), timeout=10
    )
    assert gone.status_code == 401


def test_guest_cannot_manage_registrations(live: LiveExample, guest_token: str) -> None:
    response = requests.get(live.apps_url, headers=bearer(guest_token), timeout=10)
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


def test_expired_credentials_cannot_get_tokens(live: LiveExample) -> None:
    record = live.register("short-lived")
    with sqlite3.connect(live.app.config["EXAMPLE_DATABASE"]) as conn:
        conn.execute(
            "UPDATE credentials SET valid_until = ? WHERE application_id = ?", (time.time() - 1, record["client_id"])
        )
    secret = record["credentials"][0]["secret"]
    response = requests.post(
        live.token_url, data={"grant_type": "client_credentials"}, auth=(record["client_id"], secret), timeout=10
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_secrets_are_stored_only_as_hashes(live: LiveExample) -> None:
    record = live.register("hash-check")
    secret = record["credentials"][0]["secret"]
    with sqlite3.connect(live.app.config["EXAMPLE_DATABASE"]) as conn:
        (stored,) = conn.execute(
            "SELECT secret_hash FROM credentials WHERE application_id = ?", (record["client_id"],)
        ).fetchone()
    assert stored.startswith("sha256$")
    assert secret not in stored
    assert secret not in Path(live.app.config["EXAMPLE_DATABASE"]).read_bytes().decode("latin-1")


# -- command line ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--claim", "jit_x=1"], "custom claim 'jit_x'"),
        (["--claim", "iat=1"], "custom claim 'iat'"),
        (["--claim", "novalue"], "KEY=VALUE"),
        (["--role", "bad role"], "'roles' entries"),
    ],
)
def test_register_command_refuses_bad_input(live: LiveExample, args: list[str], message: str) -> None:
    result = live.app.test_cli_runner().invoke(args=["register", "x", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_register_command_roles_reach_the_token(live: LiveExample) -> None:
    record = live.register("auditor", "--role", "guest", "--role", "auditor", "--claim", "site=Leeds")
    claims = _payload(live.token(record))
    assert (claims["roles"], claims["site"]) == (["guest", "auditor"], "Leeds")


def test_rotate_key_keeps_old_tokens_valid_and_new_ones_verify(tmp_path: Path) -> None:
    # No refetch cooldown: the new kid is fetched at once rather than 30 s on.
    with live_example(tmp_path, CCGUARD_JWKS_REFRESH_COOLDOWN=0) as live:
        _rotate_and_check(live, live.register("rotating-guest"))


def _rotate_and_check(live: LiveExample, guest: dict[str, Any]) -> None:
    old_token = live.token(guest)
    assert requests.get(live.assets_url, headers=bearer(old_token), timeout=10).status_code == 200
    result = live.app.test_cli_runner().invoke(args=["rotate-key"])
    assert result.exit_code == 0
    new_kid = json.loads(result.output)["kid"]
    new_token = live.token(guest)
    assert _payload(new_token, 0)["kid"] == new_kid != _payload(old_token, 0)["kid"]
    for token in (old_token, new_token):
        assert requests.get(live.assets_url, headers=bearer(token), timeout=10).status_code == 200


# -- another issuer --------------------------------------------------------------------


def test_ccguard_environment_points_the_api_at_an_external_issuer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ccguard_issuer: TestIssuer
) -> None:
    monkeypatch.setenv("CCGUARD_ISSUER", ccguard_issuer.issuer)
    monkeypatch.setenv("CCGUARD_AUDIENCE", "api://assets")
    monkeypatch.setenv("CCGUARD_ALGORITHMS", '["RS256", "ES256"]')
    app = create_app({"EXAMPLE_INSTANCE_PATH": str(tmp_path)})
    client = app.test_client()
    token = ccguard_issuer.mint(aud="api://assets", roles=["guest"], alg="ES256")
    assert client.get("/archivist/v2/assets", headers=bearer(token)).status_code == 200
    wrong_aud = ccguard_issuer.mint(roles=["guest"])
    assert client.get("/archivist/v2/assets", headers=bearer(wrong_aud)).status_code == 401


def test_i14_09_an_external_issuer_is_warmed_up_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An external issuer that is down shows in the start-up log, not first as a 503."""
    with TestIssuer() as down:
        issuer = down.issuer
    monkeypatch.setenv("CCGUARD_ISSUER", issuer)
    monkeypatch.setenv("CCGUARD_AUDIENCE", "api://assets")
    monkeypatch.setenv("CCGUARD_HTTP_TIMEOUT", "1")
    with caplog.at_level("INFO", logger="flask_ccguard"):
        app = create_app({"EXAMPLE_INSTANCE_PATH": str(tmp_path)})
    assert app.config["CCGUARD_WARM_UP"] is True
    assert any("is not ready" in r.getMessage() and issuer in r.getMessage() for r in caplog.records)


def test_i14_09_the_examples_own_issuer_is_not_warmed_up(tmp_path: Path) -> None:
    """Its issuer is the server being started, which does not listen yet."""
    app = create_app({"EXAMPLE_INSTANCE_PATH": str(tmp_path)})
    assert "CCGUARD_WARM_UP" not in app.config or app.config["CCGUARD_WARM_UP"] is False


def test_other_tools_ccguard_variables_are_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCGUARD_CLIENT_ID", "someone")
    monkeypatch.setenv("CCGUARD_SKIP_INTEROP", "1")
    monkeypatch.setenv("CCGUARD_LEEWAY", "5")
    app = create_app({"EXAMPLE_INSTANCE_PATH": str(tmp_path)})
    assert "CCGUARD_SKIP_INTEROP" not in app.config
    assert app.config["CCGUARD_LEEWAY"] == 5


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("CCGUARD_AUDIANCE", "CCGUARD_AUDIENCE"),
        ("CCGUARD_ISSUR", "CCGUARD_ISSUER"),
        ("CCGUARD_JWKS_URL", "CCGUARD_JWKS_URI"),
        ("CCGUARD_ALGORITHM", "CCGUARD_ALGORITHMS"),
    ],
)
def test_i14_09_a_misspelt_ccguard_variable_fails_at_start_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, meant: str
) -> None:
    monkeypatch.setenv(variable, "api://assets")
    with pytest.raises(ConfigurationError) as caught:
        create_app({"EXAMPLE_INSTANCE_PATH": str(tmp_path)})
    message = str(caught.value)
    assert variable in message
    assert f"did you mean {meant}?" in message


def test_i14_example_docstring_points_at_the_readme_not_a_file_users_lack() -> None:
    import example_app

    summary = (example_app.__doc__ or "").splitlines()[0]
    assert "DESIGN" not in summary
    section = summary.split('"')[1]
    readme = (Path(__file__).resolve().parent.parent / "README.rst").read_text(encoding="utf-8")
    assert f"\n{section}\n{'-' * len(section)}\n" in readme


def test_openapi_document_names_the_token_url(live: LiveExample) -> None:
    document = requests.get(live.base + "/openapi.json", timeout=10).json()
    assert document["openapi"] == "3.1.0"
    flow = document["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == live.token_url
    assert document["servers"] == [{"url": live.base}]
