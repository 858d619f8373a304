"""Certificate-bound access tokens (RFC 8705 §3): issue 16 item 2.

Each proxy preset's encoding is built here the way the proxy documents it;
the ids name the RFC section or the preset.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote

import pytest

from flask_ccguard.core.errors import ConfigurationError, InvalidToken
from flask_ccguard.core.mtls import (
    HEADER_SOURCES,
    MAX_CLIENT_CERT_FIELD,
    SOURCES,
    certificate_thumbprint,
    check_certificate_binding,
    check_client_cert_options,
    client_certificate,
    is_certificate_bound,
)
from flask_ccguard.core.proxies import is_trusted_peer, parse_trusted_proxies
from tests.conftest import certificate_der_pem

PROXY = "10.0.0.7"
TRUSTED = parse_trusted_proxies(["10.0.0.0/24", "fd00::/8"])


@dataclass(frozen=True)
class Cert:
    der: bytes
    pem: str

    @property
    def b64(self) -> str:
        return base64.b64encode(self.der).decode()


def _self_signed(name: str) -> Cert:
    return Cert(*certificate_der_pem(name))


@pytest.fixture(scope="module")
def leaf() -> Cert:
    # A DER length that is not a multiple of 3, so its base64 ends in "=" and
    # the unpadded RFC 8941 byte sequence differs from the padded one.
    while True:
        cert = _self_signed("client")
        if len(cert.der) % 3:
            return cert


@pytest.fixture(scope="module")
def other() -> Cert:
    return _self_signed("someone-else")


def _environ(source: str, value: str, peer: str = PROXY) -> dict[str, Any]:
    if source == "environ":
        return {"SSL_CLIENT_CERT": value, "REMOTE_ADDR": peer}
    return {"HTTP_" + HEADER_SOURCES[source].upper().replace("-", "_"): value, "REMOTE_ADDR": peer}


def _get(source: str, value: str, peer: str = PROXY) -> bytes | None:
    return client_certificate(source, _environ(source, value, peer), trusted_proxies=TRUSTED)


Encode = Callable[[Cert, Cert], str]

# How each source carries the leaf (``c``); ``o`` is another certificate,
# standing for a chain member or an element the client forged further out.
ENCODINGS: list[Any] = [
    pytest.param("environ", lambda c, o: c.pem, id="i16_02_rfc8705_environ_ssl_client_cert_pem"),
    pytest.param("rfc9440", lambda c, o: f":{c.b64}:", id="i16_02_rfc9440_s2_byte_sequence"),
    pytest.param("rfc9440", lambda c, o: f" :{c.b64.rstrip('=')}: ", id="i16_02_rfc9440_rfc8941_s4_2_7_unpadded_ows"),
    pytest.param(
        "envoy",
        lambda c, o: (
            f'Hash={hashlib.sha256(c.der).hexdigest()};Cert="{quote(c.pem, safe="")}";'
            'Subject="CN=client,O=a\\"b;c";URI=spiffe://cluster.local/ns/a'
        ),
        id="i16_02_envoy_xfcc_sanitize_set_cert_and_hash",
    ),
    pytest.param(
        "envoy",
        lambda c, o: (
            f'By=spiffe://edge;Cert="{quote(o.pem, safe="")}";Subject="CN=x,O=y",'
            f"By=spiffe://api;Cert={quote(c.pem, safe='')}"
        ),
        id="i16_02_envoy_xfcc_append_forward_last_element",
    ),
    pytest.param("nginx", lambda c, o: quote(c.pem, safe=""), id="i16_02_nginx_ssl_client_escaped_cert"),
    pytest.param("traefik", lambda c, o: f"{c.b64},{o.b64}", id="i16_02_traefik_v3_chain_first_is_leaf"),
    pytest.param("traefik", lambda c, o: quote(f"{c.b64},{o.b64}", safe=""), id="i16_02_traefik_v2_escaped"),
    pytest.param("aws-alb", lambda c, o: quote(c.pem + o.pem, safe="+=/"), id="i16_02_aws_alb_chain_plus_safe"),
]


@pytest.mark.parametrize(("source", "encode"), ENCODINGS)
def test_i16_02_each_source_yields_the_leaf_der(source: str, encode: Encode, leaf: Cert, other: Cert) -> None:
    assert _get(source, encode(leaf, other)) == leaf.der


def test_i16_02_every_preset_has_an_encoding_test() -> None:
    assert {p.values[0] for p in ENCODINGS} == set(SOURCES)


@pytest.mark.parametrize("source", list(HEADER_SOURCES))
@pytest.mark.parametrize("peer", ["203.0.113.9", "10.0.1.7", "::1", "", "not-an-ip"])
def test_i16_02_header_from_untrusted_peer_is_ignored(source: str, peer: str, leaf: Cert, other: Cert) -> None:
    encode = next(p.values[1] for p in ENCODINGS if p.values[0] == source)
    assert _get(source, encode(leaf, other), peer=peer) is None


@pytest.mark.parametrize("source", list(HEADER_SOURCES))
def test_i16_02_remote_addr_argument_overrides_environ(source: str, leaf: Cert, other: Cert) -> None:
    encode = next(p.values[1] for p in ENCODINGS if p.values[0] == source)
    environ = _environ(source, encode(leaf, other), peer="203.0.113.9")
    assert client_certificate(source, environ, PROXY, TRUSTED) == leaf.der
    assert client_certificate(source, _environ(source, encode(leaf, other)), "203.0.113.9", TRUSTED) is None


def test_i16_02_environ_source_never_reads_a_client_header(leaf: Cert) -> None:
    """A client's ``SSL-Client-Cert`` header lands in HTTP_SSL_CLIENT_CERT, not SSL_CLIENT_CERT."""
    assert client_certificate("environ", {"HTTP_SSL_CLIENT_CERT": leaf.pem, "REMOTE_ADDR": PROXY}) is None


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("value", [None, "", "   "], ids=["absent", "empty", "blank"])
def test_i16_02_no_certificate_is_none(source: str, value: str | None) -> None:
    environ = {} if value is None else _environ(source, value)
    assert client_certificate(source, {**environ, "REMOTE_ADDR": PROXY}, trusted_proxies=TRUSTED) is None


def test_i16_02_no_source_configured_reads_nothing(leaf: Cert) -> None:
    assert client_certificate(None, {"SSL_CLIENT_CERT": leaf.pem}) is None


def test_i16_02_envoy_hash_without_cert_is_no_certificate(leaf: Cert) -> None:
    """We need the certificate itself (``set_current_client_cert_details: cert``)."""
    assert _get("envoy", f"Hash={hashlib.sha256(leaf.der).hexdigest()};URI=spiffe://a") is None


def _garbage_der() -> str:
    return base64.b64encode(b"\x30\x03\x02\x01\x00").decode()


MALFORMED: list[Any] = [
    pytest.param("environ", "not a certificate", id="i16_02_environ_no_pem_block"),
    pytest.param(
        "environ",
        "-----BEGIN CERTIFICATE-----\nMII*!\n-----END CERTIFICATE-----",
        id="i16_02_environ_bad_base64",
    ),
    pytest.param(
        "environ",
        f"-----BEGIN CERTIFICATE-----\n{_garbage_der()}\n-----END CERTIFICATE-----",
        id="i16_02_environ_not_a_certificate",
    ),
    pytest.param("environ", "caf\u00e9", id="i16_02_environ_non_ascii"),
    pytest.param("rfc9440", "MIIBsz==", id="i16_02_rfc9440_s2_no_colons"),
    pytest.param("rfc9440", ":MII*:", id="i16_02_rfc9440_rfc8941_bad_alphabet"),
    pytest.param("rfc9440", ":QUJD:, :QUJD:", id="i16_02_rfc9440_s2_two_values"),
    pytest.param("rfc9440", f":{_garbage_der()}:", id="i16_02_rfc9440_not_a_certificate"),
    pytest.param("rfc9440", ":QUJDR:", id="i16_02_rfc9440_bad_length"),
    pytest.param("envoy", 'Cert="-----BEGIN', id="i16_02_envoy_unterminated_quote"),
    pytest.param("envoy", "Cert", id="i16_02_envoy_pair_without_equals"),
    pytest.param("envoy", "Cert=abc", id="i16_02_envoy_cert_not_pem"),
    pytest.param("envoy", "HASH_MISMATCH", id="i16_02_envoy_hash_disagrees_with_cert"),
    pytest.param("envoy", "HASH_NOT_HEX", id="i16_02_envoy_hash_not_hex"),
    pytest.param("nginx", "-----BEGIN%20CERTIFICATE-----%0A", id="i16_02_nginx_truncated"),
    pytest.param("nginx", "%ZZ%", id="i16_02_nginx_bad_escape"),
    pytest.param("traefik", "MII*", id="i16_02_traefik_bad_base64"),
    pytest.param("traefik", _garbage_der(), id="i16_02_traefik_not_a_certificate"),
    pytest.param("traefik", "TRAILING_GARBAGE", id="i16_02_traefik_der_with_trailing_bytes"),
    pytest.param("aws-alb", "-----BEGIN+CERTIFICATE-----", id="i16_02_aws_alb_truncated"),
    pytest.param("aws-alb", "PEM_BAD_BODY", id="i16_02_aws_alb_bad_base64_body"),
    pytest.param("nginx", "TWO_VALUES", id="i16_02_nginx_header_sent_twice"),
    pytest.param("aws-alb", "TWO_VALUES", id="i16_02_aws_alb_header_sent_twice"),
]


@pytest.mark.parametrize(("source", "value"), MALFORMED)
def test_i16_02_malformed_value_is_a_refusal_not_an_exception(source: str, value: str, leaf: Cert) -> None:
    if value == "HASH_MISMATCH":
        value = f'Hash={"0" * 64};Cert="{quote(leaf.pem, safe="")}"'
    elif value == "HASH_NOT_HEX":
        value = f'Hash=xyz;Cert="{quote(leaf.pem, safe="")}"'
    elif value == "TRAILING_GARBAGE":
        value = base64.b64encode(leaf.der + b"\x00\x00").decode()
    elif value == "TWO_VALUES":  # a forged copy first, then the proxy's (RFC 9110 §5.3)
        value = quote(_self_signed("forged").pem, safe="+=/") + ", " + quote(leaf.pem, safe="+=/")
    elif value == "PEM_BAD_BODY":
        value = quote(leaf.pem.replace("M", "*", 3), safe="+=/")
    with pytest.raises(InvalidToken) as caught:
        _get(source, value)
    assert (caught.value.reason, caught.value.claim) == ("client_certificate_malformed", None)
    assert caught.value.status == 401 and caught.value.error == "invalid_token"
    assert value not in caught.value.description


@pytest.mark.parametrize("source", SOURCES)
def test_i16_02_oversized_value_is_refused_before_parsing(source: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        _get(source, "A" * (MAX_CLIENT_CERT_FIELD + 1))
    assert caught.value.reason == "client_certificate_too_large"


@pytest.mark.parametrize(
    ("proxies", "peer", "trusted"),
    [
        pytest.param(["10.0.0.7"], "10.0.0.7", True, id="ipv4_address"),
        pytest.param(["10.0.0.7"], "10.0.0.8", False, id="ipv4_other_address"),
        pytest.param(["10.0.0.0/8"], "10.200.1.2", True, id="ipv4_network"),
        pytest.param(["10.0.0.0/8"], "11.0.0.1", False, id="ipv4_outside_network"),
        pytest.param(["10.0.0.0/8"], "::ffff:10.1.2.3", True, id="ipv4_mapped_ipv6_peer"),
        pytest.param(["fd00::/8"], "fd12:3456::1", True, id="ipv6_network"),
        pytest.param(["fd00::/8"], "fe80::1", False, id="ipv6_outside_network"),
        pytest.param(["fe80::/10"], "fe80::1%eth0", True, id="ipv6_zone_index"),
        pytest.param(["::1"], "::1", True, id="ipv6_loopback"),
        pytest.param(["10.0.0.0/8"], "::1", False, id="ipv6_peer_ipv4_list"),
        pytest.param(["10.0.0.0/8"], "10.0.0.1:1234", False, id="peer_with_port_unparsable"),
        pytest.param([], "10.0.0.1", False, id="no_proxies"),
    ],
)
def test_i16_02_trusted_proxy_matching(proxies: list[str], peer: str, trusted: bool) -> None:
    assert is_trusted_peer(peer, parse_trusted_proxies(proxies)) is trusted


def test_i16_02_ipaddress_objects_accepted() -> None:
    networks = parse_trusted_proxies([ipaddress.ip_address("10.0.0.7"), ipaddress.ip_network("fd00::/8")])
    assert is_trusted_peer("10.0.0.7", networks) and is_trusted_peer("fd00::1", networks)


def test_i16_02_non_string_peer_is_not_trusted() -> None:
    assert is_trusted_peer(None, TRUSTED) is False


# -- RFC 8705 §3: the binding ------------------------------------------------


def test_i16_02_rfc8705_s3_1_thumbprint_is_base64url_sha256_of_der(leaf: Cert) -> None:
    expected = base64.urlsafe_b64encode(hashlib.sha256(leaf.der).digest()).rstrip(b"=").decode()
    assert certificate_thumbprint(leaf.der) == expected and len(expected) == 43


def test_i16_02_rfc8705_s3_matching_certificate_passes(leaf: Cert) -> None:
    check_certificate_binding({"x5t#S256": certificate_thumbprint(leaf.der)}, leaf.der)


@pytest.mark.parametrize(
    "cnf",
    [None, {}, {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}],
    ids=["i16_02_no_cnf", "i16_02_empty_cnf", "i16_02_rfc9449_dpop_jkt_only"],
)
def test_i16_02_unbound_token_passes_without_certificate(cnf: object) -> None:
    check_certificate_binding(cnf, None)
    assert not is_certificate_bound(cnf)


@pytest.mark.parametrize(
    ("cnf", "reason"),
    [
        pytest.param("MISMATCH", "certificate_mismatch", id="i16_02_rfc8705_s3_other_certificate"),
        pytest.param("MISSING", "certificate_missing", id="i16_02_rfc8705_s3_no_certificate_presented"),
        pytest.param(["x5t#S256"], "cnf_malformed", id="i16_02_rfc7800_s3_cnf_not_object"),
        pytest.param({"x5t#S256": 42}, "cnf_malformed", id="i16_02_rfc8705_s3_1_x5t_not_string"),
        pytest.param({"x5t#S256": None}, "cnf_malformed", id="i16_02_rfc8705_s3_1_x5t_null"),
        pytest.param({"x5t#S256": "A" * 42}, "cnf_malformed", id="i16_02_rfc8705_s3_1_x5t_too_short"),
        pytest.param({"x5t#S256": "A" * 44}, "cnf_malformed", id="i16_02_rfc8705_s3_1_x5t_too_long"),
        pytest.param("PADDED", "cnf_malformed", id="i16_02_rfc7515_s2_x5t_padded"),
        pytest.param({"x5t#S256": "+" * 43}, "cnf_malformed", id="i16_02_rfc7515_s2_x5t_not_base64url"),
        pytest.param("HEX", "cnf_malformed", id="i16_02_rfc8705_s3_1_x5t_hex_not_base64url"),
    ],
)
def test_i16_02_binding_refusals(cnf: Any, reason: str, leaf: Cert, other: Cert) -> None:
    der: bytes | None = leaf.der
    if cnf == "MISMATCH":
        cnf = {"x5t#S256": certificate_thumbprint(other.der)}
    elif cnf == "MISSING":
        cnf, der = {"x5t#S256": certificate_thumbprint(leaf.der)}, None
    elif cnf == "PADDED":
        cnf = {"x5t#S256": certificate_thumbprint(leaf.der) + "="}
    elif cnf == "HEX":
        cnf = {"x5t#S256": hashlib.sha256(leaf.der).hexdigest()}
    with pytest.raises(InvalidToken) as caught:
        check_certificate_binding(cnf, der)
    error = caught.value
    assert (error.reason, error.claim, error.status, error.error) == (reason, "cnf", 401, "invalid_token")
    assert error.challenge().startswith('Bearer error="invalid_token", error_description="')
    assert certificate_thumbprint(leaf.der) not in error.description


def test_i16_02_thumbprints_compared_in_constant_time(leaf: Cert, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module mtls calls through
    thumbprint = certificate_thumbprint(leaf.der)
    check_certificate_binding({"x5t#S256": thumbprint}, leaf.der)
    assert calls == [(thumbprint.encode(), thumbprint.encode())]


def test_i16_02_end_to_end_proxy_header_to_binding(leaf: Cert, other: Cert) -> None:
    """A client presenting another certificate through the proxy is refused."""
    cnf = {"x5t#S256": certificate_thumbprint(leaf.der)}
    check_certificate_binding(cnf, _get("rfc9440", f":{leaf.b64}:"))
    with pytest.raises(InvalidToken) as caught:
        check_certificate_binding(cnf, _get("rfc9440", f":{other.b64}:"))
    assert caught.value.reason == "certificate_mismatch"
    with pytest.raises(InvalidToken) as caught:
        check_certificate_binding(cnf, _get("rfc9440", f":{leaf.b64}:", peer="203.0.113.9"))
    assert caught.value.reason == "certificate_missing"


# -- start-up checks ------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_i16_02_valid_sources_accepted(source: str) -> None:
    assert check_client_cert_options(source, ["10.0.0.0/8"]) == (source, parse_trusted_proxies(["10.0.0.0/8"]))


def test_i16_02_no_source_and_environ_need_no_proxy() -> None:
    assert check_client_cert_options(None, None) == (None, ())
    assert check_client_cert_options("environ", None) == ("environ", ())


@pytest.mark.parametrize("source", ["Envoy", "xfcc", "haproxy", "", 1])
def test_i16_02_unknown_source_lists_the_valid_ones(source: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_client_cert_options(source, ["10.0.0.1"])
    message = str(caught.value)
    assert message.startswith(f"CCGUARD_CLIENT_CERT_SOURCE is {source!r}; use one of ")
    assert all(repr(s) in message for s in SOURCES)


@pytest.mark.parametrize("source", list(HEADER_SOURCES))
@pytest.mark.parametrize("proxies", [None, []], ids=["unset", "empty"])
def test_i16_02_header_source_without_trusted_proxies_fails_at_start_up(source: str, proxies: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_client_cert_options(source, proxies)
    message = str(caught.value)
    assert "CCGUARD_CLIENT_CERT_SOURCE" in message and "set CCGUARD_TRUSTED_PROXIES" in message
    assert HEADER_SOURCES[source] in message


@pytest.mark.parametrize(
    ("proxies", "fragment"),
    [
        pytest.param("10.0.0.1", "must be a list", id="bare_string"),
        pytest.param(7, "must be a list", id="not_iterable"),
        pytest.param(["10.0.0.300"], "not an IP address or network", id="bad_address"),
        pytest.param(["10.0.0.1/8"], "host bits of a network must be zero", id="host_bits_set"),
        pytest.param(["proxy.internal"], "not an IP address or network", id="hostname"),
        pytest.param([None], "not an IP address or network", id="none_entry"),
        pytest.param([167772161], "not an IP address or network", id="int_entry"),
        pytest.param([True], "not an IP address or network", id="bool_entry"),
        pytest.param(["0.0.0.0/0"], "trusts every peer", id="ipv4_everyone"),
        pytest.param(["::/0"], "trusts every peer", id="ipv6_everyone"),
    ],
)
def test_i16_02_bad_trusted_proxies_fail_at_start_up(proxies: object, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_client_cert_options("envoy", proxies)
    assert str(caught.value).startswith("CCGUARD_TRUSTED_PROXIES ")
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("source", "value"),
    [
        pytest.param("nginx", "-----BEGIN%20CERTIFICATE-----" * 550, id="i16_02_nginx_begin_lines_without_end"),
        pytest.param("envoy", 'Cert="' + 'a\\",' * 4000, id="i16_02_envoy_unterminated_quotes_and_escapes"),
        pytest.param("envoy", ',;"",' * 3200, id="i16_02_envoy_many_empty_elements"),
    ],
)
def test_i16_02_hostile_value_at_the_size_cap_is_cheap(source: str, value: str) -> None:
    """Hostile values at the cap are refused (tests assert no timings; the PEM
    is cut with str.find, not a lazy regular expression that went quadratic)."""
    assert len(value) <= MAX_CLIENT_CERT_FIELD
    with pytest.raises(InvalidToken):
        _get(source, value)
