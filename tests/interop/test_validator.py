"""TokenValidator against panva's certified oidc-provider (RFC 9068 JWT access tokens).

Every token here was signed by somebody else's implementation and fetched over
real loopback HTTP; the validator discovers the provider's metadata (OpenID
Discovery or RFC 8414) and keys (RFC 7517) exactly as it would in production.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
import requests

from flask_ccguard import ExpiredToken, InvalidToken, TokenValidator
from tests.conftest import flip_signature, unverified_claims, unverified_header, with_claims, with_header

if TYPE_CHECKING:  # fixtures come from conftest.py; no runtime import of it
    from .conftest import OidcProvider

ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
CLIENT_IDS = ("admin", "basic-client", "reader")


def make_validator(provider: OidcProvider, alg: str | None = None, **options: Any) -> TokenValidator:
    """A validator for ``provider`` whose audience is the resource of ``alg``.

    ``alg=None`` accepts every resource; unless ``algorithms=`` is given, every
    algorithm the provider uses is allowed, so refusals are about the one
    thing each test changes.
    """
    options.setdefault("audience", list(provider.resources.values()) if alg is None else provider.resources[alg])
    options.setdefault("algorithms", ALGORITHMS)
    return TokenValidator(issuer=provider.issuer, **options)


@pytest.fixture(scope="module")
def token_for(oidc_provider: OidcProvider) -> Callable[..., str]:
    """``token_for(client_id, alg)``: a provider token, fetched once per module."""
    cache: dict[tuple[str, str], str] = {}

    def get(client_id: str, alg: str) -> str:
        if (client_id, alg) not in cache:
            cache[client_id, alg] = oidc_provider.token(client_id, resource=oidc_provider.resources[alg])
        return cache[client_id, alg]

    return get


# -- accepted tokens ---------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGORITHMS)
@pytest.mark.parametrize("client_id", CLIENT_IDS)
def test_each_clients_token_is_verified_for_each_algorithm(
    oidc_provider: OidcProvider, token_for: Callable[..., str], client_id: str, alg: str
) -> None:
    # Only this algorithm, only this audience, only RFC 9068's typ: strict settings.
    validator = make_validator(oidc_provider, alg, algorithms=[alg], token_types=["at+jwt"])

    tok = validator.validate(token_for(client_id, alg))

    assert tok.header["alg"] == alg
    assert tok.header["kid"] in oidc_provider.signing_kids()
    assert tok.issuer == oidc_provider.issuer
    assert tok.client_id == client_id
    assert tok.subject == client_id
    assert tok.audiences == (oidc_provider.resources[alg],)
    assert tok.scopes == frozenset(oidc_provider.client_scopes[client_id].split())
    assert tok.roles == frozenset(oidc_provider.client_roles[client_id])
    assert tok.issued_at is not None
    assert tok.expires_at - tok.issued_at == timedelta(seconds=300)
    assert tok["jti"] == unverified_claims(token_for(client_id, alg))["jti"]


@pytest.mark.parametrize(
    ("scope", "expected_scopes"),
    [
        ("assets:read", {"assets:read"}),
        ("assets:write", {"assets:write"}),
        ("assets:read assets:write", {"assets:read", "assets:write"}),
        ("", set()),  # no scope parameter: the token has no scope claim
    ],
)
def test_scopes_are_those_granted_roles_stay(
    oidc_provider: OidcProvider, scope: str, expected_scopes: set[str]
) -> None:
    token = oidc_provider.token("admin", resource=oidc_provider.resources["ES256"], scope=scope)

    tok = make_validator(oidc_provider, "ES256").validate(token)

    assert tok.scopes == expected_scopes
    assert tok.roles == {"archivist_administrator"}


@pytest.mark.parametrize("auth", ["post", "basic"])
def test_token_obtained_with_either_client_authentication_is_verified(oidc_provider: OidcProvider, auth: str) -> None:
    token = oidc_provider.token("basic-client", resource=oidc_provider.resources["PS256"], auth=auth)

    assert make_validator(oidc_provider, "PS256").validate(token).client_id == "basic-client"


def test_default_resource_token_is_for_rs256_audience(oidc_provider: OidcProvider) -> None:
    tok = make_validator(oidc_provider, "RS256", algorithms=["RS256"]).validate(oidc_provider.token("reader"))

    assert tok.audiences == ("urn:ccguard:rs256",)


# -- refused tokens ----------------------------------------------------------------

#: (label, forge(token) -> token, reason). Each changes one thing of a real token.
TAMPERED: list[tuple[str, Callable[[str], str], str]] = [
    ("roles elevated", lambda t: with_claims(t, roles=["archivist_administrator"]), "bad_signature"),
    ("scope widened", lambda t: with_claims(t, scope="assets:read assets:write"), "bad_signature"),
    ("client_id swapped", lambda t: with_claims(t, client_id="admin", sub="admin"), "bad_signature"),
    ("exp extended", lambda t: with_claims(t, exp=unverified_claims(t)["exp"] + 3600), "bad_signature"),
    ("signature bit flipped", flip_signature, "bad_signature"),
    ("signature dropped", lambda t: t.rsplit(".", 1)[0] + ".", "unsigned"),
    ("kid of no key", lambda t: with_header(t, kid="not-a-provider-kid"), "unknown_kid"),
    ("alg none", lambda t: with_header(t, alg="none"), "algorithm"),
    ("alg HS256 (key confusion)", lambda t: with_header(t, alg="HS256"), "algorithm"),
    ("iss of another server", lambda t: with_claims(t, iss="https://idp.example.com"), "issuer"),
    ("not a JWS", lambda t: t.replace(".", "", 1), "malformed"),
]


@pytest.mark.parametrize("alg", ALGORITHMS)
@pytest.mark.parametrize(("label", "forge", "reason"), TAMPERED, ids=[row[0] for row in TAMPERED])
def test_tampered_token_is_refused(
    oidc_provider: OidcProvider,
    token_for: Callable[..., str],
    alg: str,
    label: str,
    forge: Callable[[str], str],
    reason: str,
) -> None:
    validator = make_validator(oidc_provider, alg)
    token = token_for("reader", alg)
    validator.validate(token)  # the untouched token passes, so the change is what fails

    with pytest.raises(InvalidToken) as caught:
        validator.validate(forge(token))

    assert caught.value.reason == reason
    assert caught.value.status == 401
    assert caught.value.error == "invalid_token"


def test_rsa_signature_relabelled_from_rs256_to_ps256_is_refused(
    oidc_provider: OidcProvider, token_for: Callable[..., str]
) -> None:
    # The provider's RSA JWK has no "alg", so the same key serves both; the
    # header's alg must still be the one the signature was made with.
    token = token_for("reader", "RS256")
    validator = make_validator(oidc_provider, audience="urn:ccguard:rs256", algorithms=["RS256", "PS256"])

    with pytest.raises(InvalidToken) as caught:
        validator.validate(with_header(token, alg="PS256"))

    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize("token_alg", ALGORITHMS)
@pytest.mark.parametrize("api_alg", ALGORITHMS)
def test_token_for_another_resource_is_refused_for_its_audience(
    oidc_provider: OidcProvider, token_for: Callable[..., str], api_alg: str, token_alg: str
) -> None:
    validator = make_validator(oidc_provider, api_alg)  # every algorithm allowed
    token = token_for("admin", token_alg)

    if token_alg == api_alg:
        assert validator.validate(token).audiences == (oidc_provider.resources[api_alg],)
        return
    with pytest.raises(InvalidToken) as caught:
        validator.validate(token)
    assert (caught.value.reason, caught.value.claim) == ("audience", "aud")


def test_algorithm_outside_the_allowlist_is_refused(oidc_provider: OidcProvider, token_for: Callable[..., str]) -> None:
    validator = make_validator(oidc_provider, audience=list(oidc_provider.resources.values()), algorithms=["RS256"])

    with pytest.raises(InvalidToken) as caught:
        validator.validate(token_for("admin", "ES256"))

    assert caught.value.reason == "algorithm"


def test_strict_token_type_refuses_relabelled_typ(oidc_provider: OidcProvider, token_for: Callable[..., str]) -> None:
    token = token_for("admin", "EdDSA")
    validator = make_validator(oidc_provider, "EdDSA", token_types=["at+jwt"])

    with pytest.raises(InvalidToken) as caught:
        validator.validate(with_header(token, typ="JWT"))

    assert caught.value.reason == "token_type"


# (label, seconds after the token's claim, claim, validator options, outcome): outcome
# is None for accepted, else (exception class, reason). Leeway is 60 seconds.
TIMES: list[tuple[str, str, float, dict[str, Any], tuple[type[InvalidToken], str] | None]] = [
    ("just issued", "iat", 0, {}, None),
    ("just before exp", "exp", -1, {}, None),
    ("past exp within leeway", "exp", 59, {}, None),
    ("past exp beyond leeway", "exp", 61, {}, (ExpiredToken, "expired")),
    ("an hour after exp", "exp", 3600, {}, (ExpiredToken, "expired")),
    ("past exp, no leeway", "exp", 0, {"leeway": 0}, (ExpiredToken, "expired")),
    ("clock behind iat within leeway", "iat", -59, {}, None),
    ("clock behind iat beyond leeway", "iat", -61, {}, (InvalidToken, "issued_in_future")),
    ("older than max_token_age", "iat", 200, {"max_token_age": 100}, (InvalidToken, "too_old")),
]


@pytest.mark.parametrize(("label", "claim", "offset", "options", "outcome"), TIMES, ids=[row[0] for row in TIMES])
def test_time_claims_are_enforced_with_leeway(
    oidc_provider: OidcProvider,
    token_for: Callable[..., str],
    label: str,
    claim: str,
    offset: float,
    options: dict[str, Any],
    outcome: tuple[type[InvalidToken], str] | None,
) -> None:
    token = token_for("reader", "ES256")
    now = unverified_claims(token)[claim] + offset
    validator = make_validator(oidc_provider, "ES256", clock=lambda: now, **options)

    if outcome is None:
        assert validator.validate(token).client_id == "reader"
        return
    error_class, reason = outcome
    with pytest.raises(error_class) as caught:
        validator.validate(token)
    assert caught.value.reason == reason


def test_token_of_another_provider_is_refused(
    oidc_provider: OidcProvider, oidc_provider_no_discovery: OidcProvider, token_for: Callable[..., str]
) -> None:
    # Two independent providers: same resources and clients, different keys and iss.
    validator = make_validator(oidc_provider_no_discovery, "RS256")

    with pytest.raises(InvalidToken) as caught:
        validator.validate(token_for("admin", "RS256"))

    assert (caught.value.reason, caught.value.claim) == ("issuer", "iss")
    # Claiming the other provider's iss does not help: the signature is checked with its keys.
    forged = with_claims(token_for("admin", "RS256"), iss=oidc_provider_no_discovery.issuer)
    with pytest.raises(InvalidToken) as caught:
        validator.validate(forged)
    assert caught.value.reason in ("unknown_kid", "bad_signature")


def test_one_validator_serves_two_providers(
    oidc_provider: OidcProvider, oidc_provider_no_discovery: OidcProvider
) -> None:
    audience = list(oidc_provider.resources.values())
    validator = TokenValidator(
        issuer=[oidc_provider.issuer, oidc_provider_no_discovery.issuer], audience=audience, algorithms=ALGORITHMS
    )

    for provider in (oidc_provider, oidc_provider_no_discovery):
        for alg in ALGORITHMS:
            tok = validator.validate(provider.token("reader", resource=provider.resources[alg]))
            assert (tok.issuer, tok.header["alg"], tok.client_id) == (provider.issuer, alg, "reader")


# -- key rotation ------------------------------------------------------------------


def _all_tokens(provider: OidcProvider, client_id: str = "admin") -> dict[str, str]:
    return {alg: provider.token(client_id, resource=resource) for alg, resource in provider.resources.items()}


def test_key_rotation_is_picked_up_without_restart(oidc_provider_factory: Callable[..., OidcProvider]) -> None:
    provider = oidc_provider_factory()
    eager = make_validator(provider, jwks_refresh_cooldown=0)
    guarded = make_validator(provider, jwks_refresh_cooldown=3600)
    old_tokens = _all_tokens(provider)
    for token in old_tokens.values():
        eager.validate(token)
        guarded.validate(token)
    eager_keys, guarded_keys = eager.key_set(provider.issuer), guarded.key_set(provider.issuer)
    assert (eager_keys.fetches, guarded_keys.fetches) == (1, 1)

    new_kids = provider.rotate_keys()  # old public keys disappear from the JWKS at once
    new_tokens = _all_tokens(provider)

    for alg, token in new_tokens.items():
        assert unverified_header(token)["kid"] in new_kids
        assert eager.validate(token).header["alg"] == alg
    # One refetch for the first unknown kid brought in all three new keys.
    assert eager_keys.fetches == 2
    assert eager_keys.kids == set(new_kids)
    for token in old_tokens.values():
        with pytest.raises(InvalidToken) as caught:
            eager.validate(token)
        assert caught.value.reason == "unknown_kid"
    # Within its cooldown a validator does not refetch for an unknown kid.
    with pytest.raises(InvalidToken) as caught:
        guarded.validate(new_tokens["ES256"])
    assert caught.value.reason == "unknown_kid"
    assert (guarded_keys.fetches, guarded_keys.cooldown_refusals) == (1, 1)
    assert guarded.validate(old_tokens["ES256"]).client_id == "admin"  # cached keys still serve


def test_graceful_key_rotation_keeps_old_tokens_valid(oidc_provider_factory: Callable[..., OidcProvider]) -> None:
    provider = oidc_provider_factory()
    validator = make_validator(provider, jwks_refresh_cooldown=0)
    old_tokens = _all_tokens(provider, "reader")
    for token in old_tokens.values():
        validator.validate(token)
    old_kids = validator.key_set(provider.issuer).kids

    new_kids = provider.rotate_keys(keep_previous=True)

    for alg, token in _all_tokens(provider, "reader").items():
        assert validator.validate(token).header["kid"] in new_kids, alg
    assert validator.key_set(provider.issuer).kids == old_kids | set(new_kids)
    for token in old_tokens.values():
        assert validator.validate(token).client_id == "reader"


# -- metadata discovery ------------------------------------------------------------


def test_rfc8414_metadata_alone_is_enough(oidc_provider_no_discovery: OidcProvider) -> None:
    provider = oidc_provider_no_discovery
    assert requests.get(f"{provider.issuer}/.well-known/openid-configuration", timeout=10).status_code == 404
    validator = make_validator(provider)

    for alg in ALGORITHMS:
        tok = validator.validate(provider.token("admin", resource=provider.resources[alg]))
        assert (tok.issuer, tok.header["alg"]) == (provider.issuer, alg)


@pytest.mark.parametrize("locate", ["discovery", "discovery_url", "jwks_uri"])
def test_keys_are_found_however_the_issuer_is_configured(any_oidc_provider: OidcProvider, locate: str) -> None:
    provider = any_oidc_provider
    options = {
        "discovery": {},
        "discovery_url": {"discovery_url": provider.discovery_url},
        "jwks_uri": {"jwks_uri": provider.metadata()["jwks_uri"]},
    }[locate]
    validator = make_validator(provider, "EdDSA", **options)

    tok = validator.validate(provider.token("basic-client", resource=provider.resources["EdDSA"]))

    assert tok.client_id == "basic-client"
    assert validator.key_set(provider.issuer).kids == set(provider.signing_kids())
