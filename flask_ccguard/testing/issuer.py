""":class:`TestIssuer`: a real local OpenID issuer over loopback HTTP.

It serves OpenID Connect Discovery 1.0 §4 and RFC 8414 §3 metadata, a JWKS
(RFC 7517 §5) and a client-credentials token endpoint (RFC 6749 §4.4, errors
per §5.2). It signs its tokens (RFC 7515 compact JWS, RFC 9068 ``at+jwt``)
with ``cryptography`` directly (:mod:`.minting`) and never uses
flask_ccguard's own validator, so it stays an independent check of it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import token_request
from .dpop import binding_claims
from .dpop_check import ProofChecker
from .keys import KeyRing
from .minting import Default, PrivateKey, compact, hmac_signer, json_bytes, merge, no_signature
from .server import IssuerServer

__all__ = ["TestIssuer"]


class TestIssuer(IssuerServer):
    """A local OpenID issuer on ``127.0.0.1`` at an ephemeral port.

    :param audience: default ``aud`` of minted and issued tokens.
    :param algorithms: algorithms whose keys are published from the start;
        :meth:`mint` with another supported algorithm adds a key for it.
    :param path: issuer path, e.g. ``"/tenant-1"``.
    :param openid_configuration: serve ``{issuer}/.well-known/openid-configuration``.
    :param oauth_metadata: serve RFC 8414 metadata both at
        ``/.well-known/oauth-authorization-server{path}`` (RFC 8414 §3.1) and
        at ``{issuer}/.well-known/oauth-authorization-server``.
    :param token_lifetime: ``expires_in`` of issued tokens, and the default
        lifetime of minted ones.
    :param clients: client_id -> secret accepted by the token endpoint.
    :param start: start serving now. The port is bound (and :attr:`issuer`
        known) either way; until :meth:`start` connections wait unanswered.

    To mimic an identity provider (Entra ID, IBM Verify, Duende, ...) use
    :func:`flask_ccguard.testing.profile_issuer`, which builds the
    provider's subclass (:mod:`flask_ccguard.testing.profiles`).

    Switches tests may flip at run time (read on every request):
    :attr:`openid_configuration`, :attr:`oauth_metadata`, :attr:`jwks_status`,
    :attr:`jwks_delay`, :attr:`jwks_body`, :attr:`jwks_cache_control`,
    :attr:`discovery_overrides`, :attr:`extra_jwks`, :attr:`token_alg`.
    :attr:`hits` counts requests per endpoint (openid_configuration,
    oauth_metadata, jwks, token, other; a disabled document still counts) and
    :attr:`requests` keeps the last :attr:`max_recorded`.

    URLs: :attr:`issuer`, :attr:`base_url`, :attr:`discovery_url`,
    :attr:`oauth_metadata_url` (the RFC 8414 §3.1 inserted form),
    :attr:`jwks_uri`, :attr:`token_endpoint`.

    Example::

        with TestIssuer(clients={"app": "secret"}) as issuer:
            token = issuer.mint(roles=["reader"])
            validator = TokenValidator(issuer=issuer.issuer, audience=issuer.audience)
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(
        self,
        *,
        audience: str = "https://api.example.com",
        algorithms: Sequence[str] = ("RS256",),
        path: str = "",
        openid_configuration: bool = True,
        oauth_metadata: bool = True,
        token_lifetime: int = 300,
        clients: Mapping[str, str] | None = None,
        dpop_nonce: bool = False,
        start: bool = True,
    ) -> None:
        if path and not path.startswith("/"):
            raise ValueError("path must be empty or start with '/', e.g. '/tenant-1'")
        path = path.rstrip("/")
        self._keys = KeyRing(list(algorithms))  # first: a bad algorithm binds no port
        self.audience = audience
        self.path = path
        self.openid_configuration = openid_configuration
        self.oauth_metadata = oauth_metadata
        self.token_lifetime = token_lifetime
        #: Algorithm of the tokens the token endpoint issues.
        self.token_alg = "RS256"
        #: != 200: the JWKS answers this status with a small JSON error body.
        self.jwks_status = 200
        #: Seconds to wait before answering a JWKS request.
        self.jwks_delay = 0.0
        #: When set, served verbatim as the JWKS body.
        self.jwks_body: bytes | None = None
        #: When set, sent as ``Cache-Control`` of JWKS responses (none by default).
        self.jwks_cache_control: str | None = None
        #: Merged into both metadata documents; a value of None removes a member.
        self.discovery_overrides: dict[str, Any] = {}
        #: Extra JWKs appended to the published set.
        self.extra_jwks: list[dict[str, Any]] = []
        #: Checks DPoP proofs on token requests; ``dpop.nonce`` is the nonce demanded, if any.
        self.dpop = ProofChecker(nonce=dpop_nonce)
        self._clients_lock = threading.Lock()
        self._clients: dict[str, tuple[str, dict[str, Any]]] = {}
        for client_id, secret in (clients or {}).items():
            self.add_client(client_id, secret)
        super().__init__()
        self.issuer = self.base_url + path
        self.discovery_url = self.issuer + "/.well-known/openid-configuration"
        self.oauth_metadata_url = f"{self.base_url}/.well-known/oauth-authorization-server{path}"
        self.jwks_uri = self.issuer + "/jwks"
        self.token_endpoint = self.issuer + "/token"
        if start:
            self.start()

    def _release(self) -> None:
        self._keys.release()  # stop(): the keys go back to the pool

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.issuer}>"

    # -- keys ----------------------------------------------------------------

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Algorithms whose current keys are published."""
        return self._keys.algorithms

    def key_for(self, alg: str) -> PrivateKey:
        """The current ``cryptography`` private key for ``alg``."""
        return self._keys.key(alg).private

    def public_jwk(self, alg: str) -> dict[str, Any]:
        """The published JWK of the current key for ``alg``."""
        return dict(self._keys.key(alg).jwk)

    def jwks(self) -> dict[str, Any]:
        """The JWK Set as currently published (RFC 7517 §5)."""
        return {"keys": self._keys.published_jwks() + [dict(jwk) for jwk in self.extra_jwks]}

    def rotate_keys(self, *, keep_old: bool = False) -> None:
        """Give every algorithm a new key and kid.

        :param keep_old: keep publishing the previous keys after the new ones
            (a rollover); otherwise they leave the JWKS at once.
        """
        self._keys.rotate(keep_old=keep_old)

    def app_config(self, **overrides: Any) -> dict[str, Any]:
        """The ``CCGUARD_*`` settings of an app under test that trusts this issuer.

        ``CCGUARD_ISSUER`` and ``CCGUARD_AUDIENCE`` name this issuer,
        ``CCGUARD_ALGORITHMS`` its current algorithms, and
        ``CCGUARD_JWKS_REFRESH_COOLDOWN`` is ``0``: after :meth:`rotate_keys`
        the app then fetches the new keys for the first token that names one,
        where the production default (30 s between refetches for an unknown
        ``kid``) would refuse every new token for 30 seconds.

        :param overrides: more settings, by their full ``CCGUARD_*`` name;
            they win over the ones above.
        """
        config: dict[str, Any] = {
            "CCGUARD_ISSUER": self.issuer,
            "CCGUARD_AUDIENCE": self.audience,
            "CCGUARD_ALGORITHMS": list(self.algorithms),
            "CCGUARD_JWKS_REFRESH_COOLDOWN": 0,
        }
        config.update(overrides)
        return config

    # -- tokens --------------------------------------------------------------

    def sign(
        self,
        header: Mapping[str, Any] | bytes,
        payload: Mapping[str, Any] | bytes,
        *,
        alg: str = "RS256",
        secret: bytes | None = None,
    ) -> str:
        """Sign any header and payload as they are, for adversarial tests.

        Dicts are JSON-encoded compactly, bytes are used verbatim; the header
        is not touched, so the caller controls ``alg`` and ``kid``.

        :param alg: a supported algorithm (the current key for it signs);
            ``"none"`` gives an empty signature; ``HS256``/``HS384``/``HS512``
            sign with ``secret`` (e.g. a public key's bytes, for the
            algorithm-confusion attack).
        """
        header_bytes, payload_bytes = (
            part if isinstance(part, bytes) else json_bytes(dict(part)) for part in (header, payload)
        )
        signer: Callable[[bytes], bytes]
        if alg == "none":
            signer = no_signature
        elif alg.startswith("HS"):
            if secret is None:
                raise ValueError(f"{alg} needs secret=")
            signer = hmac_signer(alg, secret)
        else:
            signer = self._keys.key(alg).signature
        return compact(header_bytes, payload_bytes, signer)

    def mint(
        self,
        *,
        alg: str = "RS256",
        kid: str | Default | None = Default.KID,
        headers: Mapping[str, Any] | None = None,
        expires_in: int | None = None,
        dpop_key: Any = None,
        cert: Any = None,
        **claims: Any,
    ) -> str:
        """A signed access token (RFC 9068 shape) from this issuer.

        :param alg: signing algorithm; a key for it is added if needed.
        :param kid: None leaves ``kid`` out of the header; a string replaces
            it (the current key for ``alg`` still signs).
        :param headers: merged over the header; None removes a member.
        :param expires_in: seconds until ``exp`` (default ``token_lifetime``).
        :param dpop_key: bind the token to this DPoP key (a private key or
            public JWK): ``cnf.jkt`` is its RFC 7638 thumbprint (RFC 9449 §6.1).
        :param cert: bind the token to this client certificate (DER, PEM or
            ``x509.Certificate``): ``cnf["x5t#S256"]`` (RFC 8705 §3.1).
        :param claims: override the defaults (``iss``, ``aud``, ``sub``,
            ``client_id``, ``iat``, ``nbf``, ``exp``, ``jti``); None leaves
            a claim out.
        """
        key = self._keys.key(alg)
        header: dict[str, Any] = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
        if kid is None:
            del header["kid"]
        elif isinstance(kid, str):
            header["kid"] = kid
        merge(header, headers)
        lifetime = self.token_lifetime if expires_in is None else expires_in
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "test-client",
            "client_id": "test-client",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        if dpop_key is not None or cert is not None:
            payload["cnf"] = binding_claims(dpop_key, cert, claims.pop("cnf", None))
        merge(payload, claims)
        return compact(json_bytes(header), json_bytes(payload), key.signature)

    def add_client(self, client_id: str, secret: str, **claims: Any) -> None:
        """Accept ``client_id``/``secret`` at the token endpoint.

        :param claims: added to every token issued to this client (e.g.
            ``roles=[...]``). A ``scope`` claim also limits the scopes the
            client may request (``invalid_scope`` otherwise).
        """
        with self._clients_lock:
            self._clients[client_id] = (secret, dict(claims))

    def _client(self, client_id: str) -> tuple[str, dict[str, Any]] | None:
        with self._clients_lock:
            return self._clients.get(client_id)

    # -- token endpoint ------------------------------------------------------

    def _issue(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """The token endpoint's answer to a valid request (RFC 6749 §5.1)."""
        claims = token_request.grant(headers, body, self.issuer, self._client)
        token_type = "Bearer"
        proof = next((v for k, v in headers.items() if k.lower() == "dpop"), None)
        if proof is not None:
            # RFC 9449 §5: a valid proof binds the token to its key (cnf.jkt, §6.1).
            jkt = self.dpop.check(proof, "POST", self.token_endpoint)
            claims["cnf"] = {**claims.get("cnf", {}), "jkt": jkt}
            token_type = "DPoP"
        token = self.mint(alg=self.token_alg, expires_in=self.token_lifetime, **claims)
        response: dict[str, Any] = {"access_token": token, "token_type": token_type, "expires_in": self.token_lifetime}
        if isinstance(claims.get("scope"), str):
            response["scope"] = claims["scope"]
        return response
