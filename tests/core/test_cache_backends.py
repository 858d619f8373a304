"""CCGUARD_CACHE: where metadata and key sets are cached, and what the workers share."""

from __future__ import annotations

from pathlib import Path

import pytest
from cachecontrol.cache import DictCache
from urllib3 import HTTPResponse

from flask_ccguard import ConfigurationError, KeysUnavailable, TokenValidator
from flask_ccguard.core.fetch.http_cache import DefaultFreshness, make_cache
from flask_ccguard.testing import TestIssuer


def validators(issuer: TestIssuer, cache: object, n: int = 3, **options: object) -> list[TokenValidator]:
    """``n`` validators sharing ``cache``, as ``n`` gunicorn workers would."""
    return [TokenValidator(issuer.issuer, issuer.audience, cache=cache, **options) for _ in range(n)]  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", [None, "", "memory://"])
def test_default_cache_is_in_process(spec):
    assert isinstance(make_cache(spec), DictCache)


def test_cache_object_is_used_as_given():
    cache = DictCache()
    assert make_cache(cache) is cache


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "memcached://:hunter2@cache:11211",
            "CCGUARD_CACHE 'memcached://:***@cache:11211' is not supported: use None (this process), "
            "'file:///path/to/dir' (the workers of one host) or 'redis://host:port/db' (many hosts).",
        ),
        ("file://relative/dir", "CCGUARD_CACHE 'file://relative/dir' must name an absolute directory"),
        (42, "CCGUARD_CACHE must be a cache URL such as 'redis://127.0.0.1:6379/0', or None."),
    ],
)
def test_bad_cache_setting_names_the_key_and_hides_passwords(spec, message):
    with pytest.raises(ConfigurationError) as info:
        make_cache(spec, "CCGUARD_CACHE")
    assert str(info.value).startswith(message)
    assert "hunter2" not in str(info.value)


def test_file_cache_shares_discovery_and_keys_between_workers(ccguard_issuer: TestIssuer, tmp_path: Path):
    # The TestIssuer sends no caching headers: heuristic freshness makes them shareable.
    workers = validators(ccguard_issuer, f"file://{tmp_path / 'cache'}")
    token = ccguard_issuer.mint()
    for validator in workers:
        validator.validate(token)
    assert ccguard_issuer.hits["jwks"] == 1
    assert ccguard_issuer.hits["openid_configuration"] == 1
    assert [v.stats()["cache_hits"] for v in workers] == [0, 2, 2]
    assert (tmp_path / "cache").stat().st_mode & 0o077 == 0


def test_in_process_caches_share_nothing(ccguard_issuer: TestIssuer):
    ccguard_issuer.jwks_cache_control = "max-age=600"
    token = ccguard_issuer.mint()
    for validator in validators(ccguard_issuer, None):
        validator.validate(token)
    assert ccguard_issuer.hits["jwks"] == 3


def test_issuer_max_age_is_honoured_by_the_shared_cache(ccguard_issuer: TestIssuer):
    ccguard_issuer.jwks_cache_control = "max-age=600"
    token = ccguard_issuer.mint()
    for validator in validators(ccguard_issuer, DictCache()):
        validator.validate(token)
    assert ccguard_issuer.hits["jwks"] == 1


def test_issuer_no_store_is_never_shared(ccguard_issuer: TestIssuer):
    ccguard_issuer.jwks_cache_control = "no-store"
    token = ccguard_issuer.mint()
    for validator in validators(ccguard_issuer, DictCache()):
        validator.validate(token)
    assert ccguard_issuer.hits["jwks"] == 3


def test_unknown_kid_refetch_bypasses_the_shared_cache(ccguard_issuer: TestIssuer):
    first, second = validators(ccguard_issuer, DictCache(), n=2)
    first.validate(ccguard_issuer.mint())
    ccguard_issuer.rotate_keys()
    second.validate(ccguard_issuer.mint())  # its first fetch is served the old set, then refetches
    assert ccguard_issuer.hits["jwks"] == 2
    assert ccguard_issuer.requests[-1].headers.get("Cache-Control") == "no-cache"
    assert second.stats()["unknown_kid_refetches"] == 1


@pytest.mark.parametrize("body", [b"<html>busy</html>", b'{"no": "keys"}'])
def test_unusable_key_set_is_not_served_to_other_workers(ccguard_issuer: TestIssuer, body: bytes):
    first, second = validators(ccguard_issuer, DictCache(), n=2)
    ccguard_issuer.jwks_body = body
    with pytest.raises(KeysUnavailable):
        first.validate(ccguard_issuer.mint())
    ccguard_issuer.jwks_body = None
    second.validate(ccguard_issuer.mint())
    assert ccguard_issuer.hits["jwks"] == 2


def test_unreachable_redis_fails_open_to_the_issuer(ccguard_issuer: TestIssuer):
    pytest.importorskip("redis")
    (validator,) = validators(ccguard_issuer, "redis://127.0.0.1:1/0", n=1)
    assert validator.validate(ccguard_issuer.mint()).subject == "test-client"
    assert ccguard_issuer.hits["jwks"] == 1


def response(status: int = 200, **headers: str) -> HTTPResponse:
    return HTTPResponse(body=b"{}", headers={"Date": "Mon, 01 Jan 2024 00:00:00 GMT", **headers}, status=status)


def cc(value: str) -> dict[str, str]:
    return {"Cache-Control": value}


@pytest.mark.parametrize(
    ("resp", "expected"),
    [
        (response(), "max-age=600"),
        (response(200, **cc("public")), "public, max-age=600"),
        (response(200, **cc("max-age=5")), "max-age=5"),
        (response(200, **cc("no-store")), "no-store"),
        (response(200, **cc("no-cache")), "no-cache"),
        (response(Expires="Mon, 01 Jan 2024 00:01:00 GMT"), None),
        (response(status=404), None),
    ],
)
def test_heuristic_freshness_only_fills_in_what_the_issuer_left_out(resp, expected):
    DefaultFreshness(600).apply(resp)
    assert resp.headers.get("Cache-Control") == expected
    assert "Warning" not in resp.headers
