"""DPoP proofs at the resource server: checking one proof against its request and token (RFC 9449 §4.3, §7.1).

:class:`DPoPVerifier` is framework-free: the caller gives it the proof
header, the method, the effective request URL (see
:mod:`flask_ccguard.core.request_url`), the access token and the token's
``cnf.jkt``. Every malformed input ends as :class:`InvalidDPoPProof` with a
fixed description; the proof's ``jti`` is recorded only after every other
check passed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable, NamedTuple

from .dpop_nonce import NonceSource
from .errors import ConfigurationError, InvalidDPoPProof, InvalidToken, UseDPoPNonce
from .jws import b64url_decode, b64url_encode, parse_compact
from .keys import ASYMMETRIC_ALGORITHMS, EC_COORDINATE_BYTES, UnusableKey, VerifyingKey, prepare_jwk
from .numbers import bounded_number
from .replay import KeyQuota, ReplayMemoryStore, ReplayStoreFull
from .replay_store import ReplayStoreUnavailable
from .request_url import normalize_url
from .store import ByteStore

__all__ = [
    "DEFAULT_DPOP_ALGORITHMS",
    "KEY_CACHE_SIZE",
    "MAX_JTI_LENGTH",
    "MAX_PROOF_BYTES",
    "DPoPProof",
    "DPoPVerifier",
    "jwk_thumbprint",
    "refuse_bound_bearer",
    "single_proof",
    "token_jkt",
]

#: Every asymmetric JWS algorithm we verify; never ``none`` or ``HS*``
#: (RFC 9449 §4.3 step 5: the proof is signed with the client's private key).
DEFAULT_DPOP_ALGORITHMS = ("ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "EdDSA")
#: A proof with an 8192-bit RSA key (the largest :func:`prepare_jwk` takes)
#: is ~3.6 KiB; 8 KiB leaves room for claims and bounds parsing work.
MAX_PROOF_BYTES = 8192
#: RFC 9449 §4.2 asks for >= 96 random bits in ``jti``; 256 characters is plenty and bounds the store's input.
MAX_JTI_LENGTH = 256
#: Prepared proof keys kept per verifier, by exact header bytes (LRU). A
#: header is at most 8 KiB; 1024 entries stay under ~3 MB with RSA-4096 keys.
KEY_CACHE_SIZE = 1024

# RFC 7638 §3.2: the required members of each key type, the only ones hashed.
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}


class DPoPProof(NamedTuple):
    """What a verified proof established."""

    #: RFC 7638 SHA-256 thumbprint of the proof's key, base64url.
    jkt: str
    jti: str
    iat: float
    htm: str
    htu: str
    nonce: str | None
    #: With nonces on, the current nonce when the proof used the previous
    #: one: send it in ``DPoP-Nonce`` with the response (RFC 9449 §8.2, §9).
    next_nonce: str | None = None


def _refuse(description: str, reason: str) -> InvalidDPoPProof:
    return InvalidDPoPProof(description, reason=reason)


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK, base64url (RFC 9449 §6.1).

    Members must be canonical base64url with no leading zero octets
    (RFC 7518 §6.2.1, §6.3.1), so one key has exactly one thumbprint.

    :raises InvalidDPoPProof: if a required member is missing or not canonical.
    """
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise _refuse("The DPoP proof's key type is not supported.", "bad_jwk")
    canonical: dict[str, str] = {}
    for name in members:
        value = jwk.get(name)
        if not isinstance(value, str) or not value:
            raise _refuse("The DPoP proof's key is missing a member.", "bad_jwk")
        if name not in ("kty", "crv"):
            try:
                raw = b64url_decode(value)
            except InvalidToken:
                raise _refuse("The DPoP proof's key is not canonical base64url.", "bad_jwk") from None
            if kty == "RSA" and (not raw or raw[0] == 0):
                raise _refuse("The DPoP proof's RSA key has leading zero octets.", "bad_jwk")
            if kty == "EC" and len(raw) != EC_COORDINATE_BYTES.get(str(jwk.get("crv")), -1):
                raise _refuse("The DPoP proof's EC key coordinates have the wrong length.", "bad_jwk")
        canonical[name] = value
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return b64url_encode(hashlib.sha256(text.encode("ascii")).digest())


def token_jkt(claims: Mapping[str, Any]) -> str | None:
    """The token's ``cnf.jkt`` (RFC 9449 §6.1), or ``None`` if it is not DPoP-bound.

    Other ``cnf`` members (``x5t#S256``, Keycloak's ``kc-jkt-type``) are
    ignored: auth0's 1.9.2 fix, after refusing them broke interoperability.

    :raises InvalidToken: if ``cnf`` or ``cnf.jkt`` has the wrong type.
    """
    cnf = claims.get("cnf")
    if cnf is None:
        return None
    if not isinstance(cnf, dict):
        raise InvalidToken("The access token's 'cnf' claim is not an object.", reason="malformed", claim="cnf")
    jkt = cnf.get("jkt")
    if jkt is None:
        return None
    if not isinstance(jkt, str) or not jkt:
        raise InvalidToken("The access token's 'cnf.jkt' is not a string.", reason="malformed", claim="cnf")
    return jkt


def refuse_bound_bearer(claims: Mapping[str, Any]) -> None:
    """Refuse a DPoP-bound token presented with the ``Bearer`` scheme (RFC 9449 §7.2).

    :raises InvalidToken: if the token carries ``cnf.jkt``.
    """
    if token_jkt(claims) is not None:
        raise InvalidToken(
            "This access token is DPoP-bound; send it with the DPoP scheme and a proof.",
            reason="dpop_bound_as_bearer",
            claim="cnf",
        )


def single_proof(values: str | Sequence[str] | None) -> str:
    """The one ``DPoP`` header value of a request (RFC 9449 §4.3 steps 1-2).

    :param values: every ``DPoP`` header value (a server that joined repeated
        headers with commas gives one string; a JWS holds no comma).
    :raises InvalidDPoPProof: for none, several, or an empty one.
    """
    if isinstance(values, str):
        values = [values]
    values = list(values or ())
    if not values or not values[0].strip():
        raise _refuse("A DPoP proof is required with the DPoP scheme.", "missing")
    if len(values) > 1 or "," in values[0]:
        raise _refuse("Send exactly one DPoP header.", "several_proofs")
    return values[0].strip()


class DPoPVerifier:
    """Checks DPoP proofs for protected-resource requests (RFC 9449 §4.3, §7.1).

    :param algorithms: the proof algorithms accepted (asymmetric only).
    :param iat_past: how old (seconds) a proof's ``iat`` may be.
    :param iat_future: how far ahead a proof's ``iat`` may be (client clocks
        that run fast); RFC 9449 §11.1 leaves both to the server.
    :param replay_store: a :class:`~flask_ccguard.core.store.ByteStore` where
        ``(jkt, jti)`` pairs are recorded (``add_if_absent``); by default a
        bounded in-process :class:`~flask_ccguard.core.replay.ReplayMemoryStore`.
    :param nonce_source: if set, every proof must carry one of its nonces (§9).
    :param clock: wall-clock seconds, for tests.
    """

    def __init__(
        self,
        algorithms: Iterable[str] = DEFAULT_DPOP_ALGORITHMS,
        *,
        iat_past: float = 60.0,
        iat_future: float = 10.0,
        replay_store: ByteStore | None = None,
        nonce_source: NonceSource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(algorithms, str):
            algorithms = [algorithms]
        algs = tuple(algorithms)
        bad = [a for a in algs if a not in ASYMMETRIC_ALGORITHMS]
        if bad or not algs:
            raise ConfigurationError(
                f"DPoP proof algorithms must be asymmetric JWS algorithms from {sorted(ASYMMETRIC_ALGORITHMS)}; "
                f"got {bad or 'none'!r}"
            )
        if not (0 < iat_past <= 3600 and 0 <= iat_future <= 300):
            raise ConfigurationError("the DPoP iat window must be 0 < past <= 3600 s and 0 <= future <= 300 s")
        self.algorithms = algs
        self.iat_past = float(iat_past)
        self.iat_future = float(iat_future)
        self.replay_store: ByteStore = replay_store if replay_store is not None else ReplayMemoryStore()
        self.nonce_source = nonce_source
        self._clock = clock
        # Entries live at most iat_past + iat_future + 1 s (the ttl below).
        self.key_quota = KeyQuota(window=self.iat_past + self.iat_future + 1.0, clock=clock)
        self._keys: OrderedDict[bytes, tuple[str, VerifyingKey]] = OrderedDict()
        self._keys_lock = threading.Lock()

    def verify(self, proof: Any, *, method: str, url: str, access_token: str, jkt: str | None) -> DPoPProof:
        """Check ``proof`` for a request and, last, record its ``jti``.

        :param proof: the single ``DPoP`` header value (see :func:`single_proof`).
        :param method: the request method, compared case-sensitively with ``htm``.
        :param url: the effective request URL (query and fragment ignored).
        :param access_token: the token sent with the DPoP scheme, bound by ``ath``.
        :param jkt: the token's ``cnf.jkt`` (:func:`token_jkt`); ``None``
            skips the binding check, for the caller to decide on unbound tokens.
        :raises UseDPoPNonce: if nonces are on and the proof lacks a current one.
        :raises ReplayStoreUnavailable: the replay store cannot record the
            proof (down, or full: 503 with ``Retry-After``).
        :raises InvalidDPoPProof: for every other failure (``replay_quota``:
            the key has :data:`~flask_ccguard.core.replay.KEY_QUOTA` proofs
            recorded in this window).
        """
        parsed = self._parse(proof)
        header, claims = parsed.header, parsed.payload

        # §4.3 step 4: explicit typing, so no other JWT passes as a proof.
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ("dpop+jwt", "application/dpop+jwt"):
            raise _refuse("The DPoP proof's 'typ' must be 'dpop+jwt'.", "bad_typ")
        # §4.3 step 5: an asymmetric algorithm we allow (never none or HS*).
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise _refuse("The DPoP proof's algorithm is not allowed.", "bad_alg")
        if "crit" in header:
            # RFC 7515 §4.1.11: we understand no extension, so none may be critical.
            raise _refuse("The DPoP proof has critical header parameters.", "bad_header")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise _refuse("The DPoP proof has no 'jwk' header.", "bad_jwk")
        # A client sends the same header (typ, alg, jwk) with every proof, so
        # the prepared key is cached under the header's exact bytes.
        cache_key = hashlib.sha256(parsed.signing_input.split(b".", 1)[0]).digest()
        with self._keys_lock:
            cached = self._keys.get(cache_key)
            if cached is not None:
                self._keys.move_to_end(cache_key)
        if cached is None:
            cached = self._prepare(jwk, alg)
            with self._keys_lock:
                self._keys[cache_key] = cached
                if len(self._keys) > KEY_CACHE_SIZE:
                    self._keys.popitem(last=False)
        thumbprint, key = cached
        # §4.3 step 6: the signature, with the key in the proof.
        if not key.verify(alg, parsed.signing_input, parsed.signature):
            raise _refuse("The DPoP proof's signature is invalid.", "bad_signature")

        jti, htm, htu, iat = (claims.get(name) for name in ("jti", "htm", "htu", "iat"))
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
            raise _refuse("The DPoP proof's 'jti' is missing or too long.", "bad_jti")
        # §4.3 step 8: htm is the method (RFC 9110 §9.1: methods are case-sensitive).
        if not isinstance(htm, str) or htm != method:
            raise _refuse("The DPoP proof's 'htm' does not match the request method.", "htm_mismatch")
        # §4.3 step 9: htu is the request URI without query and fragment, after
        # syntax- and scheme-based normalisation (RFC 3986 §6.2.2, §6.2.3).
        expected = normalize_url(url)
        if not isinstance(htu, str) or expected is None or normalize_url(htu) != expected:
            raise _refuse("The DPoP proof's 'htu' does not match the request URL.", "htu_mismatch")
        # §4.3 step 11 / §11.1: created within an acceptable window.
        # core.numbers owns "a sane JSON number": a huge int (10**400) would
        # overflow math.isfinite()/float() here and end as an unexpected error.
        iat = bounded_number(iat)
        if iat is None:
            raise _refuse("The DPoP proof's 'iat' is missing or not a number.", "bad_iat")
        now = self._clock()
        if iat < now - self.iat_past or iat > now + self.iat_future:
            raise _refuse("The DPoP proof's 'iat' is outside the accepted window.", "iat_window")
        # §4.3 step 12 / §7.1: the proof is bound to this access token.
        ath = claims.get("ath")
        digest = b64url_encode(hashlib.sha256(access_token.encode("utf-8", "surrogatepass")).digest())
        if not isinstance(ath, str) or not hmac.compare_digest(ath.encode("utf-8", "surrogatepass"), digest.encode()):
            raise _refuse("The DPoP proof's 'ath' does not match the access token.", "ath_mismatch")
        # §7.1 / §6.1: the proof's key is the one the token is bound to.
        if jkt is not None and not hmac.compare_digest(thumbprint.encode(), jkt.encode("utf-8", "surrogatepass")):
            raise _refuse("The DPoP proof's key is not the one the access token is bound to.", "jkt_mismatch")
        # §9 / §4.3 step 10: a current server nonce, if we use them.
        nonce = claims.get("nonce")
        next_nonce = None
        if self.nonce_source is not None:
            if nonce is None:
                raise UseDPoPNonce("A DPoP nonce is required.", nonce=self.nonce_source.current(), reason="no_nonce")
            if not isinstance(nonce, str) or not self.nonce_source.is_valid(nonce):
                raise UseDPoPNonce(
                    "The DPoP nonce is stale or unknown.", nonce=self.nonce_source.current(), reason="stale_nonce"
                )
            current = self.nonce_source.current()
            next_nonce = None if hmac.compare_digest(nonce.encode(), current.encode()) else current
        elif nonce is not None and not isinstance(nonce, str):
            raise _refuse("The DPoP proof's 'nonce' is not a string.", "bad_nonce")

        # §11.1: each proof once. Last, so a refused proof never burns its jti;
        # the key is a hash, never the attacker's raw jti.
        replay_key = hashlib.sha256(
            b"ccguard-dpop\0" + thumbprint.encode() + b"\0" + jti.encode("utf-8", "surrogatepass")
        ).digest()
        ttl = iat + self.iat_past - now + 1.0
        # One key may not take the store from everyone else. Only recorded
        # proofs count, so replaying a captured proof spends no one's quota.
        if not self.key_quota.allows(thumbprint):
            raise _refuse("Too many DPoP proofs with this key; retry shortly.", "replay_quota")
        try:
            fresh = self.replay_store.add_if_absent(replay_key, b"1", ttl)
        except ReplayStoreFull as exc:
            # The server's state, not the proof, is at fault: 503 like a
            # replay store that is down, never a 401 blaming the client.
            raise ReplayStoreUnavailable(
                "The server cannot record more DPoP proofs now; try again later.",
                reason="replay_store_full",
                retry_after=exc.retry_after,
            ) from None
        if not fresh:
            raise _refuse("The DPoP proof has already been used.", "replayed")
        self.key_quota.record(thumbprint)
        return DPoPProof(thumbprint, jti, iat, htm, htu, nonce, next_nonce)

    @staticmethod
    def _prepare(jwk: dict[str, Any], alg: str) -> tuple[str, VerifyingKey]:
        thumbprint = jwk_thumbprint(jwk)
        try:
            # Only the header's algorithm: one verifier built, no needless work.
            key = prepare_jwk(jwk, frozenset((alg,)))
        except (UnusableKey, ValueError, TypeError, OverflowError):
            # §4.3 step 7: a public key that can verify `alg`; private members, small
            # RSA, off-curve points, small-order Ed25519 and type mismatches end here.
            raise _refuse("The DPoP proof's key is not a usable public key for its algorithm.", "bad_jwk") from None
        return thumbprint, key

    def _parse(self, proof: Any) -> Any:
        if isinstance(proof, str) and "," in proof:
            raise _refuse("Send exactly one DPoP header.", "several_proofs")
        if isinstance(proof, str) and len(proof) > MAX_PROOF_BYTES:
            raise _refuse("The DPoP proof is too large.", "too_large")
        try:
            return parse_compact(proof, MAX_PROOF_BYTES)
        except InvalidToken:
            # §4.3 step 3: a well-formed JWT; the parser's text speaks of the access token.
            raise _refuse("The DPoP proof is not a well-formed JWT.", "malformed") from None
