"""Certificate-bound access tokens on the resource server (RFC 8705 §3).

A token whose ``cnf`` claim holds ``x5t#S256`` may only be used over a mutual
TLS connection made with that certificate. Here: reading the client's leaf
certificate from where the TLS terminator put it (:func:`client_certificate`),
comparing its thumbprint with the token's (:func:`check_certificate_binding`),
and checking the two options at start-up (:func:`check_client_cert_options`).

Where the certificate comes from (``CCGUARD_CLIENT_CERT_SOURCE``):

``"environ"``
    PEM in the WSGI environ's ``SSL_CLIENT_CERT`` (mod_wsgi with
    ``SSLOptions +ExportCertData``, or a server that terminates TLS itself).
``"rfc9440"``
    ``Client-Cert``: an RFC 8941 §3.3.5 byte sequence, ``:base64(DER):``
    (RFC 9440 §2.1-§2.2); Cloudflare, for one, can send it.
``"envoy"``
    ``X-Forwarded-Client-Cert`` (Envoy's XFCC, https://www.envoyproxy.io/docs/
    envoy/latest/configuration/http/http_conn_man/headers): comma-separated
    elements, each ``;``-separated ``key=value`` pairs, ``Cert="<URL-encoded
    PEM>"``. Envoy *appends* an element for its own
    downstream, so we read the **last** element, the only one written by the
    trusted peer; configure the proxy that terminates the client's TLS with
    ``forward_client_cert_details: SANITIZE_SET`` (one element) and
    ``set_current_client_cert_details: {cert: true}``. ``Hash`` (hex SHA-256 of
    the DER) alone is not enough: we need ``Cert``; when both are present they
    must agree.
``"nginx"``
    ``X-SSL-Client-Cert`` set from ``$ssl_client_escaped_cert``: URL-encoded PEM
    (https://nginx.org/en/docs/http/ngx_http_ssl_module.html#var_ssl_client_escaped_cert).
``"traefik"``
    ``X-Forwarded-Tls-Client-Cert`` from the ``passTLSClientCert`` middleware
    with ``pem: true`` (https://doc.traefik.io/traefik/middlewares/http/
    passtlsclientcert/): base64 DER without the PEM delimiters, several
    certificates separated by ``,`` (the first is the leaf); Traefik v2
    URL-escapes the value, v3 does not, so a ``%`` escape is undone.
``"aws-alb"``
    ``X-Amzn-Mtls-Clientcert`` (ALB mutual TLS, passthrough mode,
    https://docs.aws.amazon.com/elasticloadbalancing/latest/application/
    mutual-authentication.html): URL-encoded PEM of the chain, leaf first,
    with ``+``, ``=`` and ``/`` left as they are (so ``+`` is not a space).

A header is read only when the request's immediate peer is one of
``CCGUARD_TRUSTED_PROXIES`` (:mod:`.proxies`); that proxy must drop any copy
of the header the client sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from cryptography import x509

from .errors import ConfigurationError, InvalidToken
from .jws import b64url_encode
from .proxies import Network, is_trusted_peer, parse_trusted_proxies

__all__ = [
    "HEADER_SOURCES",
    "MAX_CLIENT_CERT_FIELD",
    "SOURCES",
    "certificate_thumbprint",
    "check_certificate_binding",
    "check_client_cert_options",
    "client_certificate",
    "is_certificate_bound",
]

#: The header each proxy preset reads.
HEADER_SOURCES: Mapping[str, str] = {
    "rfc9440": "Client-Cert",
    "envoy": "X-Forwarded-Client-Cert",
    "nginx": "X-SSL-Client-Cert",
    "traefik": "X-Forwarded-Tls-Client-Cert",
    "aws-alb": "X-Amzn-Mtls-Clientcert",
}
#: Every valid ``CCGUARD_CLIENT_CERT_SOURCE``.
SOURCES: tuple[str, ...] = ("environ", *HEADER_SOURCES)
#: Longest certificate field read, in characters (a leaf is 1-2 KiB; a
#: URL-encoded PEM chain of three a few KiB): parsing cost stays bounded.
MAX_CLIENT_CERT_FIELD = 16 * 1024

_BEGIN, _END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')  # an RFC 7230-style quoted string
_SF_BYTES = re.compile(r":([A-Za-z0-9+/]*={0,2}):")  # RFC 8941 §3.3.5
_B64URL_SHA256 = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes, unpadded (RFC 7515 §2)
_HEX_SHA256 = re.compile(r"[0-9A-Fa-f]{64}")


def _refuse(reason: str, description: str, claim: str | None = "cnf") -> InvalidToken:
    # RFC 8705 §3: a failed binding is answered 401 invalid_token.
    return InvalidToken(description, reason=reason, claim=claim)


def _malformed() -> InvalidToken:
    return _refuse(
        "client_certificate_malformed", "The client certificate forwarded with the request is unreadable.", None
    )


def check_client_cert_options(source: object, trusted_proxies: object) -> tuple[str | None, tuple[Network, ...]]:
    """Check ``CCGUARD_CLIENT_CERT_SOURCE`` and ``CCGUARD_TRUSTED_PROXIES`` at start-up.

    :returns: the source (``None`` when unset: certificate-bound tokens are
        then refused) and the parsed proxy networks.
    :raises ConfigurationError: for an unknown source (listing the valid
        ones), a bad proxy entry, or a header preset with no trusted proxy.
    """
    proxies = parse_trusted_proxies(trusted_proxies)
    if source is None:
        return None, proxies
    if source not in SOURCES:
        raise ConfigurationError(
            f"CCGUARD_CLIENT_CERT_SOURCE is {source!r}; use one of "
            + ", ".join(repr(s) for s in SOURCES)
            + ", or leave it unset to refuse certificate-bound tokens."
        )
    if source in HEADER_SOURCES and not proxies:
        raise ConfigurationError(
            f"CCGUARD_CLIENT_CERT_SOURCE {source!r} reads the {HEADER_SOURCES[str(source)]} header, which any "
            "client can send; set CCGUARD_TRUSTED_PROXIES to the addresses or networks of the proxies "
            "that set it, such as ['10.0.0.0/8']."
        )
    return str(source), proxies


def client_certificate(
    source: str | None,
    environ: Mapping[str, Any],
    remote_addr: str | None = None,
    trusted_proxies: tuple[Network, ...] = (),
) -> bytes | None:
    """The DER of the client's leaf certificate, or ``None`` if none was presented.

    Call it only for a certificate-bound token (:func:`is_certificate_bound`):
    a malformed value is refused even though an unbound token would not need it.

    :param source: a value checked by :func:`check_client_cert_options`.
    :param environ: the WSGI environ; headers are read from their ``HTTP_*``
        keys only, so a client header can never pose as ``SSL_CLIENT_CERT``.
    :param remote_addr: the immediate peer (default: ``environ["REMOTE_ADDR"]``).
    :param trusted_proxies: from :func:`check_client_cert_options`; a header
        from any other peer is ignored (``None``).
    :raises InvalidToken: ``reason="client_certificate_malformed"`` or
        ``"client_certificate_too_large"`` (never a parser's exception).
    """
    if source is None:
        return None
    if source == "environ":
        raw = environ.get("SSL_CLIENT_CERT")
    else:
        peer = environ.get("REMOTE_ADDR") if remote_addr is None else remote_addr
        if not is_trusted_peer(peer, trusted_proxies):
            return None
        raw = environ.get("HTTP_" + HEADER_SOURCES[source].upper().replace("-", "_"))
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.isascii():
        raise _malformed()
    if len(raw) > MAX_CLIENT_CERT_FIELD:
        raise _refuse(
            "client_certificate_too_large", "The client certificate forwarded with the request is too large.", None
        )
    raw = raw.strip()
    if not raw:
        return None
    der = _DECODERS[source](raw)
    if der is None:
        return None
    try:
        x509.load_der_x509_certificate(der)
    except ValueError:
        raise _malformed() from None
    return der


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed() from None


def _pem_to_der(pem: str) -> bytes:
    """The first certificate of a PEM text (RFC 7468 §2); for a chain, the leaf."""
    # str.find, not a lazy regular expression: many BEGIN lines without an
    # END would make the expression quadratic in the value's length.
    start = pem.find(_BEGIN)
    end = pem.find(_END, start + len(_BEGIN)) if start >= 0 else -1
    if end < 0:
        raise _malformed()
    return _b64decode("".join(pem[start + len(_BEGIN) : end].split()))


def _from_environ(raw: str) -> bytes:
    return _pem_to_der(raw)


def _from_rfc9440(raw: str) -> bytes:
    # RFC 9440 §2.2: Client-Cert is a single byte sequence Item; a comma means
    # two values were sent (RFC 9110 §5.3 joins repeated fields) and is refused.
    match = _SF_BYTES.fullmatch(raw)
    if match is None:
        raise _malformed()
    body = match.group(1)
    # RFC 8941 §4.2.7: parsers SHOULD NOT fail when "=" padding is absent.
    return _b64decode(body + "=" * (-len(body) % 4))


def _split_unquoted(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double quotes (XFCC ``Subject`` holds commas).

    Each quoted string is matched once from its opening quote and an
    unclosed one is refused at once, so the work stays linear in the
    value's length whatever quotes and backslashes it holds.
    """
    parts = [""]
    position = 0
    while True:
        quote = text.find('"', position)
        first, *rest = text[position : None if quote < 0 else quote].split(separator)
        parts[-1] += first
        parts.extend(rest)
        if quote < 0:
            return parts
        quoted = _QUOTED.match(text, quote)
        if quoted is None:  # a quote that never closes
            raise _malformed()
        parts[-1] += quoted.group()
        position = quoted.end()


def _from_envoy(raw: str) -> bytes | None:
    # The last element is the one the nearest (trusted) Envoy appended; earlier
    # ones came from further away and may have been sent by the client.
    element = _split_unquoted(raw, ",")[-1]
    fields: dict[str, str] = {}
    for pair in _split_unquoted(element, ";"):
        key, sep, value = pair.strip().partition("=")
        if not sep:
            raise _malformed()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"')
        fields.setdefault(key.strip().lower(), value)
    if "cert" not in fields:
        return None
    der = _pem_to_der(unquote(fields["cert"]))
    digest = fields.get("hash")
    if digest is not None and not (
        _HEX_SHA256.fullmatch(digest) and hmac.compare_digest(digest.lower(), hashlib.sha256(der).hexdigest())
    ):
        raise _malformed()
    return der


def _from_url_encoded_pem(raw: str) -> bytes:
    # nginx $ssl_client_escaped_cert and the ALB header: percent-encoded PEM.
    # unquote, not unquote_plus: the ALB leaves "+" of base64 unescaped.
    if "," in raw:
        # PEM holds no comma: the header came twice (RFC 9110 §5.3 joins
        # repeated fields), and which copy the proxy wrote is unknowable.
        raise _malformed()
    return _pem_to_der(unquote(raw))


def _from_traefik(raw: str) -> bytes:
    leaf = unquote(raw).split(",", 1)[0]
    return _b64decode("".join(leaf.split()))


_DECODERS: dict[str, Callable[[str], bytes | None]] = {
    "environ": _from_environ,
    "rfc9440": _from_rfc9440,
    "envoy": _from_envoy,
    "nginx": _from_url_encoded_pem,
    "traefik": _from_traefik,
    "aws-alb": _from_url_encoded_pem,
}


def certificate_thumbprint(der: bytes) -> str:
    """``x5t#S256`` of a certificate: base64url SHA-256 of its DER (RFC 8705 §3.1)."""
    return b64url_encode(hashlib.sha256(der).digest())


def is_certificate_bound(cnf: object) -> bool:
    """Whether a token's ``cnf`` claim binds it to a certificate (RFC 8705 §3.1)."""
    return isinstance(cnf, Mapping) and "x5t#S256" in cnf


def check_certificate_binding(cnf: object, der: bytes | None) -> None:
    """Refuse a certificate-bound token not presented with its certificate (RFC 8705 §3).

    :param cnf: the token's ``cnf`` claim (``None`` if absent); a token without
        ``x5t#S256`` is not certificate-bound and passes.
    :param der: from :func:`client_certificate`.
    :raises InvalidToken: with ``claim="cnf"`` and ``reason`` one of
        ``"cnf_malformed"``, ``"certificate_missing"``, ``"certificate_mismatch"``.
    """
    if cnf is None:
        return
    if not isinstance(cnf, Mapping):
        raise _refuse("cnf_malformed", "The access token's confirmation claim is malformed.")
    if "x5t#S256" not in cnf:
        return
    expected = cnf["x5t#S256"]
    if not isinstance(expected, str) or not _B64URL_SHA256.fullmatch(expected):
        raise _refuse("cnf_malformed", "The access token's certificate thumbprint is malformed.")
    if der is None:
        raise _refuse("certificate_missing", "The access token is bound to a client certificate; none was presented.")
    # Constant time: the thumbprint is not secret, but a timing oracle on the
    # comparison costs nothing to avoid.
    if not hmac.compare_digest(expected.encode("ascii"), certificate_thumbprint(der).encode("ascii")):
        raise _refuse("certificate_mismatch", "The access token is bound to a different client certificate.")
