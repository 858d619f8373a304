"""Reading ``WWW-Authenticate`` challenges (RFC 7235 §4.1) a resource sends back (RFC 6750 §3)."""

from __future__ import annotations

import re

__all__ = ["parse_challenges"]

# RFC 7230 §3.2.6 token, and an auth-param value: token or quoted-string.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_SCHEME = re.compile(rf"\s*({_TOKEN})(?=\s|,|$)")
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*("(?:[^"\\]|\\.)*"|{_TOKEN}=*)\s*(?:,|$)')
_TOKEN68 = re.compile(r"\s*[A-Za-z0-9\-._~+/]+=*\s*(?:,|$)")
_MAX_LEN = 8192  # a header longer than this is not worth parsing


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """Split a ``WWW-Authenticate`` value into (scheme in lower case, params).

    Parameter names are lower-cased; the first of a repeated name wins. Text
    that does not parse ends the list (what came before is kept).
    """
    challenges: list[tuple[str, dict[str, str]]] = []
    text = header[:_MAX_LEN]
    pos = 0
    while pos < len(text):
        if text[pos] in ", \t":
            pos += 1
            continue
        scheme = _SCHEME.match(text, pos)
        if scheme is None:
            break
        params: dict[str, str] = {}
        challenges.append((scheme.group(1).lower(), params))
        pos = scheme.end()
        while pos < len(text):
            param = _PARAM.match(text, pos)
            if param is None:
                # RFC 7235 §2.1: a challenge carries a token68 instead of params.
                token68 = _TOKEN68.match(text, pos) if not params else None
                if token68 is not None:
                    pos = token68.end()
                break
            params.setdefault(param.group(1).lower(), _unquote(param.group(2)))
            pos = param.end()
    return challenges
