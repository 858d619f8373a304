"""CCGuard's lifecycle: settings checked at start-up, per-app state, keyword overrides."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from flask import Blueprint, Flask

from flask_ccguard import CCGuard, ConfigurationError, TokenValidator, require_token
from flask_ccguard.config import DEFAULTS, EXTENSION_KEYS, build_validator
from flask_ccguard.testing import TestIssuer
from tests.challenges import assert_challenge

ISSUER = "https://idp.example.com/tenant-1"
AUDIENCE = "https://api.example.com"


def app_with(**config: Any) -> Flask:
    app = Flask("assets")
    app.config.update(config)
    return app


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"CCGUARD_AUDIENCE": AUDIENCE},
            "CCGUARD_ISSUER is required: the identifier of the issuer whose tokens are accepted "
            "(e.g. 'https://login.microsoftonline.com/<tenant>/v2.0'), or a list of them.",
        ),
        (
            {"CCGUARD_ISSUER": ISSUER},
            "CCGUARD_AUDIENCE is required to check the 'aud' claim: set it to your API's identifier "
            "(e.g. 'https://api.example.com' or its client id), or a list of them.",
        ),
        (
            {"CCGUARD_ISSUER": "http://idp.example.com", "CCGUARD_AUDIENCE": AUDIENCE},
            "CCGUARD_ISSUER 'http://idp.example.com' cannot be discovered: use an https:// issuer "
            "(http only for loopback), or set CCGUARD_JWKS_URI.",
        ),
        (
            {"CCGUARD_ISSUER": ISSUER, "CCGUARD_AUDIENCE": AUDIENCE, "CCGUARD_ALGORITHMS": ["HS256"]},
            "CCGUARD_ALGORITHMS contains 'HS256': unsigned and HMAC tokens are refused because a resource "
            "server must not hold the issuer's signing secret; use e.g. 'RS256'.",
        ),
        (
            {"CCGUARD_ISSUER": ISSUER, "CCGUARD_AUDIENCE": AUDIENCE, "CCGUARD_LEEWAY": "60"},
            "CCGUARD_LEEWAY must be a number of seconds, 0 or more (got '60').",
        ),
        (
            {"CCGUARD_ISSUER": ISSUER, "CCGUARD_AUDIENCE": AUDIENCE, "CCGUARD_HTTP_TIMEOUT": 0},
            "CCGUARD_HTTP_TIMEOUT must be more than 0 seconds.",
        ),
        (
            {"CCGUARD_ISSUER": ISSUER, "CCGUARD_AUDIENCE": AUDIENCE, "CCGUARD_REQUIRE_IAT": "yes"},
            "CCGUARD_REQUIRE_IAT must be True or False (got 'yes').",
        ),
        (
            {"CCGUARD_ISSUER": ISSUER, "CCGUARD_AUDIENCE": AUDIENCE, "CCGUARD_MAX_TOKEN_BYTES": 0},
            "CCGUARD_MAX_TOKEN_BYTES must be a whole number above 0 (got 0).",
        ),
        (
            {"CCGUARD_ISSUER": ISSUER, "CCGUARD_AUDIENCE": AUDIENCE, "CCGUARD_JWKS_URI": "ftp://idp.example.com/keys"},
            "CCGUARD_JWKS_URI 'ftp://idp.example.com/keys' is not allowed: use an https:// URL "
            "(plain http is accepted only for loopback hosts such as 127.0.0.1).",
        ),
        (
            {"CCGUARD_ISSUER": ISSUER, "CCGUARD_AUDIENCES": AUDIENCE},
            "CCGUARD_AUDIENCES is not a flask-ccguard setting; did you mean CCGUARD_AUDIENCE?",
        ),
        (
            {"CCGUARD_ISSUER": ISSUER, "CCGUARD_AUDIENCE": AUDIENCE, "CCGUARD_ALLOW_QUERY_TOKEN": "false"},
            "CCGUARD_ALLOW_QUERY_TOKEN must be True or False (got 'false').",
        ),
        (
            {"CCGUARD_ISSUER": ISSUER, "CCGUARD_AUDIENCE": AUDIENCE, "CCGUARD_ALLOW_FORM_TOKEN": 1},
            "CCGUARD_ALLOW_FORM_TOKEN must be True or False (got 1).",
        ),
        (
            {"CCGUARD_ISSUER": ISSUER, "CCGUARD_AUDIENCE": AUDIENCE, "CCGUARD_REALM": 'my "api"'},
            "CCGUARD_REALM must be printable ASCII text without quotes or backslashes, "
            "or None for the app's import name.",
        ),
    ],
)
def test_bad_settings_fail_at_start_up_naming_the_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CCGuard(app_with(**config))
    assert str(info.value) == message


def test_the_ccguard_commands_client_settings_are_not_typos() -> None:
    """CCGUARD_CLIENT_ID and friends configure ``ccguard token``, not the API."""
    app = app_with(CCGUARD_ISSUER=ISSUER, CCGUARD_AUDIENCE=AUDIENCE, CCGUARD_CLIENT_ID="svc", CCGUARD_TOKEN_URL="x")
    CCGuard(app)
    assert "CCGUARD_CLIENT_ID" not in app.extensions["ccguard"].settings


def test_bad_settings_fail_in_init_app_and_leave_the_app_untouched() -> None:
    app = app_with(CCGUARD_ISSUER=ISSUER)
    guard = CCGuard()
    with pytest.raises(ConfigurationError, match=r"^CCGUARD_AUDIENCE is required"):
        guard.init_app(app)
    assert "ccguard" not in app.extensions
    app.config["CCGUARD_AUDIENCE"] = AUDIENCE
    guard.init_app(app)
    assert app.extensions["ccguard"].validator.issuers == (ISSUER,)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"audiance": AUDIENCE}, "CCGuard() got an unknown option 'audiance'; did you mean 'audience'?"),
        ({"AUDIENCE": AUDIENCE}, "CCGuard() got an unknown option 'AUDIENCE'; did you mean 'audience'?"),
        (
            {"frobnicate": 1},
            "CCGuard() got an unknown option 'frobnicate'; options are the CCGUARD_* settings in lower case.",
        ),
    ],
)
def test_unknown_keyword_options_fail_where_they_are_written(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CCGuard(**options)
    assert str(info.value) == message


def test_keyword_options_override_config_and_report_under_the_key_name() -> None:
    app = app_with(CCGUARD_ISSUER="https://elsewhere.example.com", CCGUARD_AUDIENCE="ignored", CCGUARD_LEEWAY=5)
    CCGuard(app, issuer=ISSUER, audience=[AUDIENCE, "api://assets"], realm="assets-api")
    state = app.extensions["ccguard"]
    assert state.validator.issuers == (ISSUER,)
    assert state.realm == "assets-api"
    assert state.settings["CCGUARD_AUDIENCE"] == [AUDIENCE, "api://assets"]
    assert state.settings["CCGUARD_LEEWAY"] == 5
    with pytest.raises(ConfigurationError) as info:
        CCGuard(app_with(CCGUARD_ISSUER=ISSUER, CCGUARD_AUDIENCE=AUDIENCE), leeway=-1)
    assert str(info.value) == "CCGUARD_LEEWAY must be a number of seconds, 0 or more (got -1)."


def test_state_exposes_validator_realm_and_flags_with_documented_defaults() -> None:
    app = app_with(CCGUARD_ISSUER=ISSUER, CCGUARD_AUDIENCE=AUDIENCE)
    guard = CCGuard(app)
    state = app.extensions["ccguard"]
    assert isinstance(state.validator, TokenValidator)
    assert state.guard is guard
    assert (state.realm, state.allow_query_token, state.allow_form_token) == ("assets", False, False)
    assert state.settings == {
        **DEFAULTS,
        "CCGUARD_ISSUER": ISSUER,
        "CCGUARD_AUDIENCE": AUDIENCE,
        "CCGUARD_REALM": "assets",
    }
    with pytest.raises(TypeError):
        state.settings["CCGUARD_LEEWAY"] = 0


def test_every_validator_setting_reaches_the_validator_keyword_of_the_same_name() -> None:
    # Adding a key to DEFAULTS is all it takes: CCGUARD_X -> TokenValidator(x=...).
    settings = {**DEFAULTS, "CCGUARD_ISSUER": ISSUER, "CCGUARD_AUDIENCE": AUDIENCE, "CCGUARD_MAX_TOKEN_BYTES": 99}
    assert build_validator(settings).max_token_bytes == 99
    with pytest.raises(TypeError, match="unexpected keyword argument 'not_an_option'"):
        build_validator({**settings, "CCGUARD_NOT_AN_OPTION": 1})
    assert set(DEFAULTS) >= EXTENSION_KEYS


def test_init_app_twice_on_one_app_is_refused() -> None:
    app = app_with(CCGUARD_ISSUER=ISSUER, CCGUARD_AUDIENCE=AUDIENCE)
    guard = CCGuard(app)
    with pytest.raises(RuntimeError, match="already initialised"):
        guard.init_app(app)


def test_a_view_on_an_app_without_ccguard_says_how_to_set_it_up() -> None:
    app = Flask("bare")
    app.testing = True
    app.add_url_rule("/v", "v", require_token(lambda: "x"))
    with pytest.raises(RuntimeError, match=r"call CCGuard\(app\) or guard.init_app\(app\) first"):
        app.test_client().get("/v", headers={"Authorization": "Bearer abc"})


def test_two_apps_share_nothing(ccguard_issuer: TestIssuer) -> None:
    with TestIssuer(audience="https://other.example.com") as other:
        guard = CCGuard()  # one extension object, two apps
        first = app_with(CCGUARD_ISSUER=ccguard_issuer.issuer, CCGUARD_AUDIENCE=ccguard_issuer.audience)
        second = Flask("second")
        second.config.update(CCGUARD_ISSUER=other.issuer, CCGUARD_AUDIENCE=other.audience)
        for app in (first, second):
            guard.init_app(app)
            app.add_url_rule("/v", "v", require_token(lambda: "ok"))
        assert vars(guard) == {"_options": {}}
        one, two = first.extensions["ccguard"], second.extensions["ccguard"]
        assert one.validator is not two.validator
        assert (one.realm, two.realm) == ("assets", "second")

        ours, theirs = ccguard_issuer.mint(), other.mint()
        assert first.test_client().get("/v", headers={"Authorization": f"Bearer {ours}"}).text == "ok"
        assert second.test_client().get("/v", headers={"Authorization": f"Bearer {theirs}"}).text == "ok"
        refused = first.test_client().get("/v", headers={"Authorization": f"Bearer {theirs}"})
        assert_challenge(
            refused, 401, "invalid_token", "The access token is from an unexpected issuer.", realm="assets"
        )
        refused = second.test_client().get("/v", headers={"Authorization": f"Bearer {ours}"})
        assert_challenge(
            refused, 401, "invalid_token", "The access token is from an unexpected issuer.", realm="second"
        )
        # Each app fetched its own issuer's keys, and only those.
        assert ccguard_issuer.hits["jwks"] == 1
        assert other.hits["jwks"] == 1


#: A blueprint made at import time, as Flask's app-factory pattern documents.
factory_bp = Blueprint("factory_bp", __name__)
factory_bp.add_url_rule("/assets", "assets", lambda: "assets")
module_bp = Blueprint("module_bp", __name__)
module_bp.add_url_rule("/assets", "assets", lambda: "assets")
CCGuard().protect(module_bp, roles=["reader"])  # once, where the blueprint is made


def create_app(issuer: TestIssuer, bp: Blueprint, *, protect: bool) -> Flask:
    app = app_with(CCGUARD_ISSUER=issuer.issuer, CCGUARD_AUDIENCE=issuer.audience)
    guard = CCGuard(app)
    if protect:
        guard.protect(bp, roles=["reader"])
    app.register_blueprint(bp)
    return app


@pytest.mark.parametrize(
    ("bp", "protect"), [(factory_bp, True), (module_bp, False), (module_bp, True)], ids=["in_factory", "module", "both"]
)
def test_i14_06_a_blueprint_protected_in_an_app_factory_is_protected_on_every_app(
    ccguard_issuer: TestIssuer, bp: Blueprint, protect: bool
) -> None:
    apps = [create_app(ccguard_issuer, bp, protect=protect) for _ in range(3)]
    reader, guest = ccguard_issuer.mint(roles=["reader"]), ccguard_issuer.mint(roles=["guest"])
    for app in apps:
        client = app.test_client()
        assert_challenge(client.get("/assets"), 401, realm="assets")
        assert client.get("/assets", headers={"Authorization": f"Bearer {guest}"}).status_code == 403
        assert client.get("/assets", headers={"Authorization": f"Bearer {reader}"}).text == "assets"


def test_i14_06_protecting_a_registered_blueprint_says_to_protect_it_before_registering(
    ccguard_issuer: TestIssuer,
) -> None:
    bp = Blueprint("late", __name__)
    bp.add_url_rule("/late", "late", lambda: "open")
    app = create_app(ccguard_issuer, bp, protect=False)
    with pytest.raises(RuntimeError) as info:
        CCGuard().protect(bp)
    assert str(info.value) == (
        "guard.protect() was called on the blueprint 'late' after it was registered on an app, which would "
        "stay unprotected. Call guard.protect(blueprint) before app.register_blueprint(blueprint), e.g. right "
        "where the blueprint is created."
    )
    # A new requirement on a protected, registered blueprint is refused the same way.
    with pytest.raises(RuntimeError, match="after it was registered"):
        CCGuard().protect(module_bp, roles=["writer"])
    assert app.test_client().get("/late").text == "open"


def closed_port_issuer() -> str:
    """An issuer URL on loopback where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_i14_09_warm_up_fetches_the_keys_in_init_app(
    ccguard_issuer: TestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_with(CCGUARD_ISSUER=ccguard_issuer.issuer, CCGUARD_AUDIENCE=ccguard_issuer.audience, CCGUARD_WARM_UP=True)
    with caplog.at_level("INFO", logger="flask_ccguard"):
        CCGuard(app)
    assert ccguard_issuer.hits["jwks"] == 1  # before any request
    assert f"warm-up: issuer {ccguard_issuer.issuer!r} ready (1 key ids)" in caplog.text
    app.add_url_rule("/v", "v", require_token(lambda: "ok"))
    assert app.test_client().get("/v", headers={"Authorization": f"Bearer {ccguard_issuer.mint()}"}).text == "ok"
    assert ccguard_issuer.hits["jwks"] == 1


def test_i14_09_warm_up_true_logs_an_unreachable_issuer_and_starts(
    ccguard_issuer: TestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    down = closed_port_issuer()
    issuers = [ccguard_issuer.issuer, down]
    app = app_with(CCGUARD_ISSUER=issuers, CCGUARD_AUDIENCE=ccguard_issuer.audience, CCGUARD_WARM_UP=True)
    guard = CCGuard(app)
    assert f"warm-up: issuer {down!r} is not ready: no metadata for issuer {down!r}" in caplog.text
    outcome = guard.warm_up(app)
    assert outcome[ccguard_issuer.issuer] is None
    assert str(outcome[down]).startswith(f"no metadata for issuer {down!r}")


def test_i14_09_warm_up_require_fails_start_up_naming_the_issuer_and_cause() -> None:
    down = closed_port_issuer()
    app = app_with(CCGUARD_ISSUER=down, CCGUARD_AUDIENCE=AUDIENCE, CCGUARD_WARM_UP="require")
    with pytest.raises(ConfigurationError) as info:
        CCGuard(app)
    message = str(info.value)
    assert message.startswith(
        f"CCGUARD_WARM_UP is 'require' but the keys of issuer {down!r} could not be fetched at start-up: "
        f"no metadata for issuer {down!r}: "
    )
    assert message.endswith(
        "Check CCGUARD_ISSUER (and CCGUARD_JWKS_URI / CCGUARD_DISCOVERY_URL) and that the issuer is reachable, "
        "or set CCGUARD_WARM_UP = True to start anyway."
    )
    assert "ccguard" not in app.extensions


def test_i14_09_warm_up_is_off_by_default_and_checked(ccguard_issuer: TestIssuer) -> None:
    CCGuard(app_with(CCGUARD_ISSUER=ccguard_issuer.issuer, CCGUARD_AUDIENCE=ccguard_issuer.audience))
    assert ccguard_issuer.hits["jwks"] == 0
    with pytest.raises(ConfigurationError) as info:
        CCGuard(app_with(CCGUARD_ISSUER=ISSUER, CCGUARD_AUDIENCE=AUDIENCE, CCGUARD_WARM_UP="yes"))
    assert str(info.value) == "CCGUARD_WARM_UP must be False, True or 'require' (got 'yes')."
