"""``ccguard token --dpop`` and ``ccguard dpop-proof`` against TestIssuer (issue 16 item 4)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from joserfc import jws
from joserfc.jwk import JWKRegistry

from flask_ccguard.cli import main
from flask_ccguard.testing import TestIssuer


def run(*args: str, **kw: Any) -> Result:
    return CliRunner().invoke(main, list(args), **kw)


def part(jwt: str, index: int) -> dict[str, Any]:
    seg = jwt.split(".")[index]
    doc: dict[str, Any] = json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))
    return doc


@pytest.fixture
def issuer() -> Iterator[TestIssuer]:
    with TestIssuer(clients={"app": "secret"}, dpop_nonce=True) as iss:
        yield iss


def test_i16_04_token_dpop_key_file_then_dpop_proof(issuer: TestIssuer, tmp_path: Path) -> None:
    key_file = tmp_path / "dpop.pem"
    args = ["token", "--token-url", issuer.token_endpoint, "-c", "app", "-s", "secret", "--json"]
    result = run(*args, "--dpop-key", str(key_file))
    assert result.exit_code == 0, result.output
    response = json.loads(result.stdout)
    assert response["token_type"] == "DPoP"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    token = response["access_token"]
    again = json.loads(run(*args, "--dpop-key", str(key_file)).stdout)["access_token"]
    assert part(again, 1)["cnf"] == part(token, 1)["cnf"]  # the key was loaded, not made anew

    url = "https://api.example/assets?page=2"
    proof = run("dpop-proof", "--key", str(key_file), "--method", "post", "--url", url, "--token", token)
    assert proof.exit_code == 0, proof.output
    text = proof.stdout.strip()
    jwk = part(text, 0)["jwk"]
    assert "d" not in jwk
    obj = jws.deserialize_compact(text, JWKRegistry.import_key(jwk), algorithms=["ES256"])
    claims = json.loads(obj.payload)
    assert claims["htm"] == "POST" and claims["htu"] == "https://api.example/assets"
    assert claims["ath"] == base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()
    assert JWKRegistry.import_key(jwk).thumbprint() == part(token, 1)["cnf"]["jkt"]


def test_i16_04_token_dpop_refuses_a_header_file(issuer: TestIssuer, tmp_path: Path) -> None:
    result = run(
        "token", "--token-url", issuer.token_endpoint, "-c", "app", "-s", "secret", "--dpop",
        "--header-file", str(tmp_path / "h"),
    )  # fmt: skip
    assert result.exit_code == 2 and "fresh proof" in result.output


def test_i16_04_dpop_proof_refuses_a_file_that_is_not_a_key(tmp_path: Path) -> None:
    bad = tmp_path / "k.pem"
    bad.write_text("not a key")
    result = run("dpop-proof", "--key", str(bad), "--url", "https://api.example/")
    assert result.exit_code == 2 and "not an unencrypted PEM private key" in result.output
