"""HTTP Basic client authentication as OAuth 2.0 defines it (RFC 6749 §2.3.1).

The client id and secret are form-urlencoded (Appendix B) *before* the Basic
encoding, so a secret holding ``:``, ``%`` or ``+`` survives the round trip.
Some servers (glewlwyd, for one) skip that step and expect the pair raw, as
plain HTTP Basic (RFC 7617 §2) has it: :data:`BASIC_ENCODINGS` names both.
Both directions live here: the token client and the introspector send it,
the test issuer and the example's issuer read it.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections import OrderedDict
from urllib.parse import quote_plus, unquote_plus

__all__ = [
    "BASIC_ENCODINGS",
    "BASIC_ENCODING_OPTIONS",
    "basic_authorization",
    "encodings_differ",
    "form_encode",
    "parse_basic_authorization",
    "remember_encoding",
    "remembered_encoding",
]

#: ``rfc6749``: form-encode id and secret, then base64 (RFC 6749 §2.3.1);
#: ``raw``: base64 of ``id:secret`` as they are (RFC 7617 §2).
BASIC_ENCODINGS = ("rfc6749", "raw")
#: What the token client accepts: ``auto`` is RFC 6749 first, raw once if the
#: client is refused, then whichever worked for that token URL.
BASIC_ENCODING_OPTIONS = ("auto", *BASIC_ENCODINGS)

#: token URL -> the Basic encoding that last got a token there; bounded, as
#: every token client of the process shares it.
_REMEMBERED: OrderedDict[str, str] = OrderedDict()
_REMEMBERED_MAX = 256
_REMEMBERED_LOCK = threading.Lock()


def form_encode(value: str) -> str:
    """``value`` application/x-www-form-urlencoded as RFC 6749 Appendix B has it ("~" too)."""
    return quote_plus(value, safe="*").replace("~", "%7E")


def basic_authorization(client_id: str, client_secret: str, encoding: str = "rfc6749") -> str:
    """The ``Authorization`` header value for ``client_id`` and ``client_secret``.

    :param encoding: one of :data:`BASIC_ENCODINGS`. A raw ``client_id`` may
        not contain ``:`` (RFC 7617 §2: the first colon ends it).
    :raises ValueError: an unknown encoding, or a raw id holding ``:``.
    """
    if encoding == "rfc6749":
        pair = f"{form_encode(client_id)}:{form_encode(client_secret)}"
    elif encoding == "raw" and ":" not in client_id:
        pair = f"{client_id}:{client_secret}"
    else:
        raise ValueError(f"cannot encode this client id with Basic encoding {encoding!r}")
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


def parse_basic_authorization(authorization: str) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` from an ``Authorization`` header value.

    :returns: None when the scheme is not Basic.
    :raises ValueError: Basic credentials that are not base64 of ``id:secret``.
    """
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("malformed Basic credentials") from None
    if ":" not in decoded:
        raise ValueError("malformed Basic credentials")
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


def encodings_differ(client_id: str, client_secret: str) -> bool:
    """True when the raw encoding exists for these credentials and differs from RFC 6749's."""
    if ":" in client_id:
        return False
    return basic_authorization(client_id, client_secret) != basic_authorization(client_id, client_secret, "raw")


def remembered_encoding(token_url: str) -> str | None:
    """The Basic encoding that last got a token from ``token_url``, if any."""
    with _REMEMBERED_LOCK:
        return _REMEMBERED.get(token_url)


def remember_encoding(token_url: str, encoding: str) -> None:
    """Note that ``encoding`` got a token from ``token_url`` (the oldest of 256 are forgotten)."""
    with _REMEMBERED_LOCK:
        _REMEMBERED[token_url] = encoding
        _REMEMBERED.move_to_end(token_url)
        while len(_REMEMBERED) > _REMEMBERED_MAX:
            _REMEMBERED.popitem(last=False)
