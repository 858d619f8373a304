"""The token client (RFC 6749 §4.4) and ``ccguard`` commands against panva's oidc-provider.

``ClientCredentials`` authenticates to somebody else's certified token
endpoint with ``client_secret_post`` and ``client_secret_basic`` (RFC 6749
§2.3.1) and asks for RFC 8707 resources; ``ccguard check-token`` checks the
tokens that endpoint issues, fetching keys only from the issuer it is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from flask_ccguard import TokenValidator
from flask_ccguard.cli import main
from flask_ccguard.client import ClientCredentials, TokenRequestError
from tests.conftest import flip_signature, with_claims

if TYPE_CHECKING:  # fixtures come from conftest.py; no runtime import of it
    from .conftest import OidcProvider

ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
AUTH_METHODS = ("client_secret_post", "client_secret_basic")
#: Every line of a check-token report, in order.
CHECKS = ("format", "algorithm", "key", "signature", "iss", "aud", "exp", "iat", "nbf", "roles", "scopes", "validate")
LINE = re.compile(r"^(PASS|FAIL|SKIP)  (\S+) +(.*)$")


pytestmark = pytest.mark.usefixtures("clean_env")


def client_for(provider: OidcProvider, client_id: str, auth_method: str, **options: Any) -> ClientCredentials:
    return ClientCredentials(
        provider.token_endpoint, client_id, provider.clients[client_id], auth_method=auth_method, **options
    )


def validator_for(provider: OidcProvider, alg: str) -> TokenValidator:
    return TokenValidator(issuer=provider.issuer, audience=provider.resources[alg], algorithms=[alg])


# -- ClientCredentials ---------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGORITHMS)
@pytest.mark.parametrize("auth_method", AUTH_METHODS)
@pytest.mark.parametrize("client_id", ["admin", "basic-client"])
def test_client_gets_a_token_the_validator_accepts(
    oidc_provider: OidcProvider, client_id: str, auth_method: str, alg: str
) -> None:
    client = client_for(
        oidc_provider,
        client_id,
        auth_method,
        scope=oidc_provider.client_scopes[client_id].split(),
        resource=oidc_provider.resources[alg],
    )

    tok = validator_for(oidc_provider, alg).validate(client.token())

    assert (tok.client_id, tok.header["alg"]) == (client_id, alg)
    assert tok.audiences == (oidc_provider.resources[alg],)
    assert tok.scopes == frozenset(oidc_provider.client_scopes[client_id].split())
    assert tok.roles == frozenset(oidc_provider.client_roles[client_id])
    client.close()


@pytest.mark.parametrize("auth_method", AUTH_METHODS)
def test_client_caches_its_token_until_shortly_before_expiry(oidc_provider: OidcProvider, auth_method: str) -> None:
    now = [1_000_000.0]
    # The clock only times the cache; the provider stamps iat/exp with its own time.
    client = client_for(
        oidc_provider, "reader", auth_method, resource=oidc_provider.resources["ES256"], margin=30, clock=lambda: now[0]
    )

    first = client.token()
    assert client.token_response()["expires_in"] == 300
    now[0] += 269  # 300 s lifetime, 30 s margin: still fresh
    assert client.token() == first
    assert client.requests_sent == 1

    now[0] += 1  # the margin begins: a new token is fetched
    second = client.token()

    assert second != first
    assert client.requests_sent == 2
    assert validator_for(oidc_provider, "ES256").validate(second).client_id == "reader"
    client.close()


def test_client_finds_the_token_endpoint_by_discovery(any_oidc_provider: OidcProvider) -> None:
    provider = any_oidc_provider
    client = ClientCredentials.from_issuer(
        provider.issuer,
        "basic-client",
        provider.clients["basic-client"],
        auth_method="client_secret_basic",
        resource=provider.resources["PS256"],
    )

    assert client.token_url == provider.metadata()["token_endpoint"]
    assert validator_for(provider, "PS256").validate(client.token()).client_id == "basic-client"
    client.close()


#: (label, client_id, secret (None = the right one), options, error, status)
REFUSALS: list[tuple[str, str, str | None, dict[str, Any], str, int]] = [
    ("wrong secret, post", "admin", "wrong-secret", {"auth_method": "client_secret_post"}, "invalid_client", 401),
    (
        "wrong secret, basic",
        "basic-client",
        "wrong-secret",
        {"auth_method": "client_secret_basic"},
        "invalid_client",
        401,
    ),
    ("scope beyond registration", "reader", None, {"scope": "assets:write"}, "invalid_scope", 400),
    ("unknown resource", "admin", None, {"resource": "urn:ccguard:nope"}, "invalid_target", 400),
]


@pytest.mark.parametrize(
    ("label", "client_id", "secret", "options", "error", "status"), REFUSALS, ids=[row[0] for row in REFUSALS]
)
def test_token_endpoint_refusal_raises_its_error(
    oidc_provider: OidcProvider,
    label: str,
    client_id: str,
    secret: str | None,
    options: dict[str, Any],
    error: str,
    status: int,
) -> None:
    client = ClientCredentials(
        oidc_provider.token_endpoint, client_id, secret or oidc_provider.clients[client_id], **options
    )

    with pytest.raises(TokenRequestError) as caught:
        client.token()

    assert (caught.value.error, caught.value.status) == (error, status)
    assert oidc_provider.clients[client_id] not in str(caught.value)
    client.close()


# -- ccguard check-token -------------------------------------------------------------


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def report(result: Result) -> dict[str, tuple[str, str]]:
    """check name -> (status, detail) from a check-token report."""
    found: dict[str, tuple[str, str]] = {}
    for line in result.output.splitlines():
        match = LINE.match(line)
        if match:
            found[match[2]] = (match[1], match[3])
    return found


def check_token(provider: OidcProvider, alg: str, *args: str) -> Result:
    return run(
        "check-token",
        "--issuer",
        provider.issuer,
        "--audience",
        provider.resources[alg],
        "--algorithm",
        alg,
        *args,
    )


@pytest.fixture(scope="module")
def token_for(oidc_provider: OidcProvider) -> Callable[[str], str]:
    cache: dict[str, str] = {}

    def get(alg: str) -> str:
        if alg not in cache:
            cache[alg] = oidc_provider.token("admin", resource=oidc_provider.resources[alg])
        return cache[alg]

    return get


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_check_token_passes_a_provider_token(
    oidc_provider: OidcProvider, token_for: Callable[[str], str], alg: str
) -> None:
    token = token_for(alg)

    result = check_token(
        oidc_provider, alg, "-T", token, "--role", "archivist_administrator", "--scope", "assets:write"
    )

    assert result.exit_code == 0, result.output
    lines = report(result)
    assert list(lines) == list(CHECKS)
    assert {name: status for name, (status, _) in lines.items()} == dict.fromkeys(CHECKS, "PASS")
    assert lines["signature"][1] == f"verified with the issuer's {alg} key"
    assert lines["iss"][1] == repr(oidc_provider.issuer)
    assert lines["nbf"][1] == "absent (optional)"  # oidc-provider sends no nbf
    assert result.output.rstrip().endswith("result: VALID")
    assert token not in result.output  # the decoded claims are shown, never the credential


@pytest.mark.parametrize("auth_method", AUTH_METHODS)
def test_check_token_requests_and_passes_a_token(oidc_provider: OidcProvider, auth_method: str) -> None:
    secret = oidc_provider.clients["basic-client"]

    result = check_token(
        oidc_provider,
        "EdDSA",
        "--token-url",
        oidc_provider.token_endpoint,
        "-c",
        "basic-client",
        "-s",
        secret,
        "--auth-method",
        auth_method,
        "--resource",
        oidc_provider.resources["EdDSA"],
        "--request-scope",
        "assets:read",
        "--role",
        "guest",
        "--scope",
        "assets:read",
    )

    assert result.exit_code == 0, result.output
    assert {status for status, _ in report(result).values()} == {"PASS"}
    assert secret not in result.output


#: (label, forge(token) -> token, check that fails, its detail)
FORGED: list[tuple[str, Callable[[str], str], str, str]] = [
    ("signature bit flipped", flip_signature, "signature", "the signature does not verify with the issuer's key"),
    (
        "roles elevated",
        lambda t: with_claims(t, roles=["archivist_administrator", "root"]),
        "signature",
        "the signature does not verify with the issuer's key",
    ),
]


@pytest.mark.parametrize("alg", ALGORITHMS)
@pytest.mark.parametrize(("label", "forge", "failing", "detail"), FORGED, ids=[row[0] for row in FORGED])
def test_check_token_fails_a_tampered_token(
    oidc_provider: OidcProvider,
    token_for: Callable[[str], str],
    alg: str,
    label: str,
    forge: Callable[[str], str],
    failing: str,
    detail: str,
) -> None:
    result = check_token(oidc_provider, alg, "-T", forge(token_for(alg)))

    assert result.exit_code == 1, result.output
    lines = report(result)
    assert lines[failing] == ("FAIL", detail)
    assert lines["validate"] == ("FAIL", "TokenValidator refuses the token: The token's signature is invalid.")
    assert lines["key"][0] == "PASS"  # the key was found; only the signature is wrong
    assert "result: INVALID (2 check(s) failed)" in result.output


def test_check_token_fails_a_token_for_another_resource(
    oidc_provider: OidcProvider, token_for: Callable[[str], str]
) -> None:
    result = run(
        "check-token",
        "-T",
        token_for("ES256"),
        "--issuer",
        oidc_provider.issuer,
        "--audience",
        oidc_provider.resources["RS256"],
        "--algorithm",
        "ES256",
    )

    assert result.exit_code == 1, result.output
    lines = report(result)
    assert lines["signature"][0] == "PASS"
    assert lines["aud"][0] == "FAIL"
    assert lines["aud"][1].endswith("expected one of ['urn:ccguard:rs256']")


def test_ccguard_token_prints_a_provider_token(oidc_provider: OidcProvider) -> None:
    result = run(
        "token",
        "--token-url",
        oidc_provider.token_endpoint,
        "-c",
        "admin",
        "-s",
        oidc_provider.clients["admin"],
        "--auth-method",
        "client_secret_basic",
        "--resource",
        oidc_provider.resources["PS256"],
        "--scope",
        "assets:read",
    )

    assert result.exit_code == 0, result.output
    tok = validator_for(oidc_provider, "PS256").validate(result.output.strip())
    assert (tok.client_id, tok.scopes) == ("admin", frozenset({"assets:read"}))
