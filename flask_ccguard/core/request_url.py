"""The public URL of a request, for DPoP's ``htu`` (RFC 9449 §4.3 step 9, RFC 3986 §6).

The URL comes from a configured public base URL, or from the forwarding
headers of a configured trusted proxy, else from the server's own name. It
never comes from a bare ``Host`` header: a client that chose the host could
replay a proof made for another server at this one (auth0
express-oauth2-jwt-bearer 1.9.1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

from .errors import ConfigurationError
from .proxies import Network, is_trusted_peer, parse_trusted_proxies

__all__ = [
    "DEFAULT_PORTS",
    "FORWARDING_HEADERS",
    "URI_CHARS",
    "X_FORWARDED",
    "TrustedProxies",
    "effective_request_url",
    "normalize_url",
    "parse_forwarded_headers",
    "parse_public_base_url",
    "parse_trusted_proxies",
]

TrustedProxies = tuple[Network, ...]

#: The forwarding headers a trusted proxy may be said to write.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix")
#: What most proxies write (nginx, HAProxy, AWS ALB, Traefik): the default.
X_FORWARDED = frozenset({"x-forwarded-proto", "x-forwarded-host"})

# RFC 3986 §2: the only characters a URI may hold; anything else (spaces,
# tabs, newlines, non-ASCII) makes the URL unusable rather than "cleaned".
URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)([^?#]*)(?:\?[^#]*)?(?:#.*)?", re.S)
# host [":" port]: a reg-name or a bracketed IPv6 literal (RFC 3986 §3.2.2); no userinfo.
_AUTHORITY = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::([0-9]{0,5}))?")
_PCT = re.compile(r"%(..)?", re.S)
_HEX = frozenset("0123456789abcdefABCDEF")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
#: The default port of each scheme a URL here may have (RFC 9110 §4.2).
DEFAULT_PORTS = {"http": 80, "https": 443}
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


def _normalize_pct(path: str) -> str | None:
    """RFC 3986 §6.2.2.1-2: upper-case hex; decode unreserved characters."""
    out = []
    pos = 0
    for m in _PCT.finditer(path):
        hexa = m.group(1)
        if hexa is None or not set(hexa) <= _HEX:
            return None
        char = chr(int(hexa, 16))
        out.append(path[pos : m.start()])
        out.append(char if char in _UNRESERVED else "%" + hexa.upper())
        pos = m.end()
    out.append(path[pos:])
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, for an absolute path."""
    out: list[str] = []
    segments = path.split("/")[1:]
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif seg == ".":
            if last:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out)


def normalize_url(url: str) -> str | None:
    """``url`` without query and fragment, normalised (RFC 3986 §6.2.2, §6.2.3), or ``None``.

    Scheme and host are lower-cased, the default port and an empty port are
    dropped, percent-encoding is normalised, dot segments are removed and an
    empty path becomes ``/``. Only ``http`` and ``https`` URLs with a host
    and no userinfo are accepted; a host's trailing dot is kept (RFC 3986
    treats ``example.com.`` as another name).
    """
    if not isinstance(url, str) or len(url) > 8192 or not URI_CHARS.fullmatch(url):
        return None
    m = _URL.fullmatch(url)
    if m is None:
        return None
    scheme, authority, path = m.group(1).lower(), m.group(2), m.group(3)
    if scheme not in DEFAULT_PORTS:
        return None
    a = _AUTHORITY.fullmatch(authority)
    if a is None:
        return None
    host, port = a.group(1), a.group(2)
    host = _normalize_pct(host)
    if host is None:
        return None
    host = host.lower()
    netloc = host
    if port:
        number = int(port)
        if number > 65535:
            return None
        if number != DEFAULT_PORTS[scheme]:
            netloc = f"{host}:{number}"
    norm_path = _normalize_pct(path)
    if norm_path is None:
        return None
    norm_path = _remove_dot_segments(norm_path) if norm_path else "/"
    return f"{scheme}://{netloc}{norm_path}"


def parse_public_base_url(value: str, option: str = "CCGUARD_PUBLIC_BASE_URL") -> str:
    """A public base URL, checked and normalised once at start-up, without a trailing slash.

    :raises ConfigurationError: naming ``option`` unless ``value`` is an
        absolute ``http``/``https`` URL with a host and no userinfo, query or fragment.
    """
    normalized = normalize_url(value) if isinstance(value, str) else None
    if normalized is None or "?" in value or "#" in value:
        raise ConfigurationError(
            f"{option} must be the absolute http(s) URL at which the application's root is public, "
            "without query or fragment (e.g. 'https://api.example.com' or 'https://api.example.com/svc1')"
        )
    return normalized.rstrip("/")


def parse_forwarded_headers(value: object, option: str = "CCGUARD_FORWARDED_HEADERS") -> frozenset[str]:
    """The forwarding headers the trusted proxy writes, checked once at start-up.

    A proxy passes on the headers it does not write, so a client's own
    ``Forwarded`` or ``X-Forwarded-Prefix`` would reach us as if the proxy had
    written it (auth0 express-oauth2-jwt-bearer 1.9.1); only the headers named
    here are read, and never both families for the host and scheme.

    :param value: ``"x-forwarded"`` (``X-Forwarded-Proto`` and ``-Host``),
        ``"forwarded"`` (RFC 7239 ``Forwarded``) or a list of names from
        :data:`FORWARDING_HEADERS`.
    :raises ConfigurationError: naming ``option`` for anything else.
    """
    if value == "x-forwarded":
        return X_FORWARDED
    if value == "forwarded":
        return frozenset({"forwarded"})
    names = {v.lower() for v in value if isinstance(v, str)} if isinstance(value, (list, tuple)) else set()
    valid = isinstance(value, (list, tuple)) and len(names) == len(value) and names <= set(FORWARDING_HEADERS)
    if not valid or not names or ("forwarded" in names and names & X_FORWARDED):
        raise ConfigurationError(
            f"{option} must be 'x-forwarded', 'forwarded' or a non-empty list of the headers the trusted proxy "
            f"writes from {list(FORWARDING_HEADERS)}, without both 'forwarded' and 'x-forwarded-proto'/'-host' "
            "(e.g. ['x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-prefix'])."
        )
    return frozenset(names)


def _last(value: str | None) -> str | None:
    """The right-most list element: the one our trusted proxy wrote (earlier ones came from the client)."""
    if value is None:
        return None
    item = value.rsplit(",", 1)[-1].strip()
    return item or None


_FORWARDED_PAIR = re.compile(r'\s*([A-Za-z]+)=("(?:[^"\\]|\\.)*"|[^;,"\s]*)\s*')
# RFC 7230 §3.2.6 quoted-pair, undone in a quoted value.
_QUOTED_PAIR = re.compile(r"\\(.)")


def _forwarded(value: str) -> dict[str, str]:
    """The pairs of the last element of an RFC 7239 ``Forwarded`` header; ``{}`` if malformed."""
    elements: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            elements.append("".join(current))
            current = []
        else:
            current.append(char)
    elements.append("".join(current))
    pairs: dict[str, str] = {}
    for part in elements[-1].split(";"):
        m = _FORWARDED_PAIR.fullmatch(part)
        if m is None:
            return {}
        name, val = m.group(1).lower(), m.group(2)
        if val.startswith('"'):
            val = _QUOTED_PAIR.sub(r"\1", val[1:-1])
        pairs[name] = val
    return pairs


def _usable_host(value: str | None) -> str | None:
    if value and _AUTHORITY.fullmatch(value) and URI_CHARS.fullmatch(value):
        return value
    return None


def _usable_proto(value: str | None) -> str | None:
    if value and value.lower() in DEFAULT_PORTS:
        return value.lower()
    return None


def effective_request_url(
    *,
    scheme: str,
    server_host: str,
    path: str,
    headers: Mapping[str, str],
    remote_addr: str | None,
    public_base_url: str | None = None,
    trusted_proxies: TrustedProxies = (),
    forwarded_headers: frozenset[str] = X_FORWARDED,
) -> str:
    """The URL the client addressed, without query, to compare with ``htu`` (RFC 9449 §4.3).

    :param scheme: the scheme the server received (WSGI ``wsgi.url_scheme``).
    :param server_host: the server's own ``name[:port]`` (WSGI ``SERVER_NAME``
        and ``SERVER_PORT``), never the ``Host`` header.
    :param path: the path below the public base as the application sees it,
        percent-encoded as sent (``SCRIPT_NAME + PATH_INFO`` quoted back);
        characters a path may not hold are percent-encoded here.
    :param headers: the request headers (case-insensitive lookup, or a plain
        mapping whose keys are in any case).
    :param remote_addr: the peer address (WSGI ``REMOTE_ADDR``).
    :param public_base_url: where the application's root is reachable, e.g.
        ``https://api.example.com/svc1``; when set, headers are ignored.
    :param trusted_proxies: from :func:`parse_trusted_proxies`; forwarding
        headers are read only when the peer is one of them, and only the
        right-most value of each, the one that proxy wrote.
    :param forwarded_headers: from :func:`parse_forwarded_headers`: the only
        forwarding headers read. The proxy must overwrite them (a client's
        own copy would otherwise be read); any other is ignored, because a
        proxy passes on the headers it does not write.
    """
    path = quote(path, safe=_PATH_SAFE)
    if path and not path.startswith("/"):
        path = "/" + path
    if public_base_url is not None:
        return public_base_url.rstrip("/") + path
    if is_trusted_peer(remote_addr, trusted_proxies):
        # Only what the proxy writes: a header it does not write is the client's.
        lowered = {k.lower(): v for k, v in headers.items() if k.lower() in forwarded_headers}
        forwarded = lowered.get("forwarded")
        if forwarded is not None:
            pairs = _forwarded(forwarded)
            scheme = _usable_proto(pairs.get("proto")) or scheme
            server_host = _usable_host(pairs.get("host")) or server_host
        else:
            scheme = _usable_proto(_last(lowered.get("x-forwarded-proto"))) or scheme
            server_host = _usable_host(_last(lowered.get("x-forwarded-host"))) or server_host
        prefix = _last(lowered.get("x-forwarded-prefix"))
        if prefix and prefix.startswith("/") and URI_CHARS.fullmatch(prefix) and not set("?#") & set(prefix):
            path = prefix.rstrip("/") + path
    return f"{scheme.lower()}://{server_host}{path}"
