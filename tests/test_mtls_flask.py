"""Certificate-bound tokens (RFC 8705 §3) and the FAPI 2.0 preset through the Flask extension (issue 16 items 2, 3)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import quote

import pytest

from flask_ccguard import ConfigurationError
from flask_ccguard.testing import TestIssuer
from tests.challenges import DPOP, assert_challenge
from tests.conftest import certificate_der_pem as _cert
from tests.conftest import make_app
from tests.dpop_proofs import DPoPKey

LEAF_DER, LEAF_PEM = _cert("client")
OTHER_DER, OTHER_PEM = _cert("someone-else")
X5T = base64.urlsafe_b64encode(hashlib.sha256(LEAF_DER).digest()).rstrip(b"=").decode()
PROXY = {"REMOTE_ADDR": "10.0.0.7"}


@pytest.mark.parametrize(
    ("config", "environ", "headers", "status", "description"),
    [
        pytest.param(
            {"CCGUARD_CLIENT_CERT_SOURCE": "environ"},
            {"SSL_CLIENT_CERT": LEAF_PEM},
            {},
            200,
            None,
            id="rfc8705_3_environ_accepted",
        ),
        pytest.param(
            {"CCGUARD_CLIENT_CERT_SOURCE": "environ"},
            {"SSL_CLIENT_CERT": OTHER_PEM},
            {},
            401,
            "The access token is bound to a different client certificate.",
            id="rfc8705_3_environ_other_certificate",
        ),
        pytest.param(
            {"CCGUARD_CLIENT_CERT_SOURCE": "environ"},
            {},
            {},
            401,
            "The access token is bound to a client certificate; none was presented.",
            id="rfc8705_3_environ_no_certificate",
        ),
        pytest.param(
            {},
            {"SSL_CLIENT_CERT": LEAF_PEM},
            {},
            401,
            "The access token is bound to a client certificate; none was presented.",
            id="rfc8705_3_no_source_configured_refuses",
        ),
        pytest.param(
            {"CCGUARD_CLIENT_CERT_SOURCE": "nginx", "CCGUARD_TRUSTED_PROXIES": ["10.0.0.0/8"]},
            PROXY,
            {"X-SSL-Client-Cert": quote(LEAF_PEM)},
            200,
            None,
            id="rfc8705_3_nginx_trusted_proxy",
        ),
        pytest.param(
            {"CCGUARD_CLIENT_CERT_SOURCE": "rfc9440", "CCGUARD_TRUSTED_PROXIES": ["10.0.0.0/8"]},
            PROXY,
            {"Client-Cert": ":" + base64.b64encode(LEAF_DER).decode() + ":"},
            200,
            None,
            id="rfc9440_2_client_cert_header",
        ),
        pytest.param(
            {"CCGUARD_CLIENT_CERT_SOURCE": "rfc9440", "CCGUARD_TRUSTED_PROXIES": ["10.0.0.0/8"]},
            {"REMOTE_ADDR": "192.0.2.1"},
            {"Client-Cert": ":" + base64.b64encode(LEAF_DER).decode() + ":"},
            401,
            "The access token is bound to a client certificate; none was presented.",
            id="rfc9440_4_header_from_untrusted_peer_ignored",
        ),
        pytest.param(
            {"CCGUARD_CLIENT_CERT_SOURCE": "rfc9440", "CCGUARD_TRUSTED_PROXIES": ["10.0.0.0/8"]},
            PROXY,
            {"Client-Cert": ":!!!:"},
            401,
            "The access token is bound to a client certificate; none was presented.",
            id="rfc9440_2_malformed_header_is_no_certificate",
        ),
    ],
)
def test_i16_02_certificate_bound_token_table(
    ccguard_issuer: TestIssuer,
    config: dict[str, Any],
    environ: dict[str, str],
    headers: dict[str, str],
    status: int,
    description: str | None,
) -> None:
    client = make_app(ccguard_issuer, **config).test_client()
    token = ccguard_issuer.mint(cnf={"x5t#S256": X5T})
    resp = client.get("/v", headers={"Authorization": f"Bearer {token}", **headers}, environ_base=environ)
    assert_challenge(resp, status, "invalid_token" if description else None, description, realm="assets")


def test_i16_02_unbound_token_ignores_a_malformed_certificate(ccguard_issuer: TestIssuer) -> None:
    app = make_app(ccguard_issuer, CCGUARD_CLIENT_CERT_SOURCE="rfc9440", CCGUARD_TRUSTED_PROXIES=["10.0.0.0/8"])
    resp = app.test_client().get(
        "/v", headers={"Authorization": f"Bearer {ccguard_issuer.mint()}", "Client-Cert": ":!!!:"}, environ_base=PROXY
    )
    assert_challenge(resp, 200, realm="assets")


def test_i16_02_header_source_without_trusted_proxies_fails_at_start_up(ccguard_issuer: TestIssuer) -> None:
    with pytest.raises(ConfigurationError, match="CCGUARD_TRUSTED_PROXIES"):
        make_app(ccguard_issuer, CCGUARD_CLIENT_CERT_SOURCE="envoy")
    with pytest.raises(ConfigurationError, match="CCGUARD_CLIENT_CERT_SOURCE"):
        make_app(ccguard_issuer, CCGUARD_CLIENT_CERT_SOURCE="apache")


# -- FAPI 2.0 preset (item 3) ---------------------------------------------------------------------

FAPI_DPOP = ("DPoP", {"algs": "PS256 ES256 EdDSA"})


def test_i16_03_fapi2_requires_sender_constrained_tokens(ccguard_issuer: TestIssuer) -> None:
    app = make_app(ccguard_issuer, CCGUARD_PROFILE="fapi2", CCGUARD_CLIENT_CERT_SOURCE="environ")
    client = app.test_client()
    offer: tuple[tuple[str, dict[str, str]], ...] = (("Bearer", {}), FAPI_DPOP)
    # An unbound bearer token is refused (FAPI 2.0 §5.3.4: sender-constrained tokens only).
    resp = client.get("/v", headers={"Authorization": f"Bearer {ccguard_issuer.mint(alg='ES256')}"})
    description = "This API requires sender-constrained tokens (DPoP or certificate-bound)."
    assert_challenge(resp, 401, "invalid_token", description, realm="assets", schemes=offer)
    # RS256 is not a FAPI 2.0 algorithm (§5.4.1).
    key = DPoPKey()
    rs = ccguard_issuer.mint(cnf={"jkt": key.jkt})
    resp = client.get("/v", headers={"Authorization": f"DPoP {rs}", "DPoP": key.proof("GET", "http://localhost/v", rs)})
    assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_token"
    # ES256 DPoP-bound and certificate-bound tokens pass.
    es = ccguard_issuer.mint(alg="ES256", cnf={"jkt": key.jkt})
    resp = client.get("/v", headers={"Authorization": f"DPoP {es}", "DPoP": key.proof("GET", "http://localhost/v", es)})
    assert_challenge(resp, 200, realm="assets", schemes=offer)
    bound = ccguard_issuer.mint(alg="ES256", cnf={"x5t#S256": X5T})
    resp = client.get("/v", headers={"Authorization": f"Bearer {bound}"}, environ_base={"SSL_CLIENT_CERT": LEAF_PEM})
    assert_challenge(resp, 200, realm="assets", schemes=offer)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        pytest.param({"CCGUARD_ALLOW_QUERY_TOKEN": True}, "CCGUARD_ALLOW_QUERY_TOKEN", id="fapi2_5_3_4_query_token"),
        pytest.param({"CCGUARD_ALLOW_FORM_TOKEN": True}, "CCGUARD_ALLOW_FORM_TOKEN", id="fapi2_5_3_4_form_token"),
        pytest.param({"CCGUARD_ALGORITHMS": ["RS256"]}, "CCGUARD_ALGORITHMS", id="fapi2_5_4_1_rs256"),
        pytest.param({"CCGUARD_DPOP_ALGORITHMS": ["ES384"]}, "CCGUARD_DPOP_ALGORITHMS", id="fapi2_5_4_1_dpop_es384"),
        pytest.param({"CCGUARD_DPOP": "disabled"}, "CCGUARD_DPOP", id="fapi2_5_3_4_no_sender_constraint"),
        pytest.param({"CCGUARD_PROFILE": "fapi1"}, "CCGUARD_PROFILE", id="unknown_profile"),
    ],
)
def test_i16_03_fapi2_conflicts_fail_at_start_up(ccguard_issuer: TestIssuer, config: dict[str, Any], key: str) -> None:
    config = {"CCGUARD_PROFILE": "fapi2", **config}
    with pytest.raises(ConfigurationError, match=key):
        make_app(ccguard_issuer, **config)


def test_i16_03_fapi2_required_dpop_offers_only_dpop(ccguard_issuer: TestIssuer) -> None:
    app = make_app(ccguard_issuer, CCGUARD_PROFILE="fapi2", CCGUARD_DPOP="required")
    assert app.extensions["ccguard"].schemes == (FAPI_DPOP,)
    assert_challenge(app.test_client().get("/v"), 401, realm="assets", schemes=(FAPI_DPOP,))
    assert DPOP[0] == FAPI_DPOP[0]
