"""Sphinx extension: draw the documentation's pictures from code at the start of each build.

* ``_generated/request-sequence.svg``: the sequence of one request (client,
  API, issuer), drawn from :data:`SEQUENCE` as plain SVG (no Graphviz or other
  binary needed);
* ``_generated/benchmark-results.svg``: ``benchmarks/plot.py`` run on the
  committed benchmark snapshot ``_static/benchmark-results.json``, so the
  picture is always the benchmark's own output.
"""

from __future__ import annotations

import json
import sys
from html import escape
from pathlib import Path
from typing import Any

#: Columns of the diagram, left to right.
PARTICIPANTS = ("Client\n(ClientCredentials)", "Your API\n(flask-ccguard)", "Issuer\n(token, metadata, JWKS)")

#: The rows, top to bottom: ``("msg", from, to, text, dashed)``, ``("self", who, text)``,
#: ``("frame", first_row, last_row, label)`` drawn around rows already listed (counting every row but
#: frames), ``("divider", text)``, or ``("gap",)`` for room above a frame.
SEQUENCE: tuple[tuple[Any, ...], ...] = (
    ("msg", 0, 2, "POST /token  grant_type=client_credentials + client id/secret", False),
    ("msg", 2, 0, "200  access_token (JWT), expires_in   — cached until shortly before expiry", True),
    ("msg", 0, 1, "GET /assets   Authorization: Bearer <token>", False),
    ("gap",),
    ("msg", 1, 2, "GET /.well-known/openid-configuration", False),
    ("msg", 2, 1, "metadata: issuer (exact match), jwks_uri", True),
    ("msg", 1, 2, "GET jwks_uri   (one fetch shared by all threads)", False),
    ("msg", 2, 1, "JWKS: keys by kid, prepared once", True),
    ("frame", 4, 7, "first sight only (an unknown kid: once per cooldown)"),
    ("self", 1, "check alg, signature, iss, aud, exp, nbf, iat; cache"),
    ("msg", 1, 0, "200  the view's answer (current_token = the verified token)", True),
    ("divider", "refusal: the token has expired, names another audience, or is forged"),
    ("msg", 0, 1, "GET /assets   Authorization: Bearer <bad token>", False),
    ("self", 1, "refused locally: no issuer request"),
    ("msg", 1, 0, '401  WWW-Authenticate: Bearer error="invalid_token", …', True),
    ("msg", 0, 2, "POST /token for a new token, then the request is retried once", False),
)

_COL = 290  # distance between lifelines
_LEFT = 150
_TOP = 78  # below the participant boxes
_ROW = 34
_FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"


def _text(x: float, y: float, s: str, size: int = 12, anchor: str = "middle", extra: str = "") -> str:
    return f"<text x='{x:.0f}' y='{y:.0f}' font-size='{size}' text-anchor='{anchor}' {_FONT} {extra}>{escape(s)}</text>"


def sequence_svg() -> str:
    """The request sequence as an SVG document."""
    xs = [_LEFT + i * _COL for i in range(len(PARTICIPANTS))]
    rows = [r for r in SEQUENCE if r[0] != "frame"]
    width = xs[-1] + _LEFT
    height = _TOP + _ROW * (len(rows) + 1) + 20
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}'"
        " role='img' aria-label='Sequence diagram of one request: client, API, issuer'>",
        "<defs><marker id='arrow' markerWidth='10' markerHeight='8' refX='9' refY='4' orient='auto'>"
        "<path d='M0,0 L10,4 L0,8 z' fill='#222'/></marker></defs>",
        f"<rect width='{width}' height='{height}' fill='white'/>",
    ]
    for x, name in zip(xs, PARTICIPANTS):
        out.append(
            f"<line x1='{x}' y1='{_TOP - 18}' x2='{x}' y2='{height - 10}' stroke='#999' stroke-dasharray='4 4'/>"
        )
        out.append(f"<rect x='{x - 95}' y='10' width='190' height='48' rx='6' fill='#e8f0fa' stroke='#2b6cb0'/>")
        first, _, second = name.partition("\n")
        out.append(_text(x, 30, first, 13, extra="font-weight='bold'"))
        out.append(_text(x, 48, second, 11))
    y_of: list[float] = []
    y = _TOP + _ROW
    for row in rows:
        kind = row[0]
        if kind == "msg":
            _, a, b, label, dashed = row
            x1, x2 = xs[a], xs[b]
            step = 6 if x2 > x1 else -6
            dash = " stroke-dasharray='6 4'" if dashed else ""
            out.append(
                f"<line x1='{x1}' y1='{y}' x2='{x2 - step}' y2='{y}' stroke='#222' stroke-width='1.3'{dash}"
                " marker-end='url(#arrow)'/>"
            )
            out.append(_text((x1 + x2) / 2, y - 6, label, 11))
        elif kind == "self":
            _, who, label = row
            x = xs[who]
            out.append(f"<rect x='{x - 8}' y='{y - 14}' width='16' height='22' fill='#2b6cb0'/>")
            out.append(_text(x + 16, y + 2, label, 11, anchor="start"))
        elif kind == "gap":
            y -= _ROW - 14
        elif kind == "divider":
            out.append(f"<line x1='20' y1='{y}' x2='{width - 20}' y2='{y}' stroke='#c44e52' stroke-width='1.5'/>")
            out.append(f"<rect x='{width / 2 - 260}' y='{y - 11}' width='520' height='20' fill='white'/>")
            out.append(_text(width / 2, y + 4, row[1], 12, extra="fill='#c44e52' font-style='italic'"))
        y_of.append(y)
        y += _ROW
    for row in SEQUENCE:
        if row[0] == "frame":
            _, first_row, last_row, label = row
            top, bottom = y_of[first_row] - _ROW / 2 - 14, y_of[last_row] + 8
            left, right = xs[1] - 30, xs[2] + 30
            out.append(
                f"<rect x='{left}' y='{top}' width='{right - left}' height='{bottom - top}' fill='none'"
                " stroke='#8172b3' stroke-dasharray='3 3'/>"
            )
            out.append(_text(right - 4, top + 11, label, 10, anchor="end", extra="fill='#8172b3'"))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _generate(app: Any) -> None:
    src = Path(app.srcdir)
    generated = src / "_generated"
    generated.mkdir(exist_ok=True)
    _write_if_changed(generated / "request-sequence.svg", sequence_svg())
    root = src.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.plot import render

    target = generated / "benchmark-results.svg"
    tmp = generated / "benchmark-results.svg.new"
    render(json.loads((src / "_static" / "benchmark-results.json").read_text(encoding="utf-8")), tmp)
    _write_if_changed(target, tmp.read_text(encoding="utf-8"))
    tmp.unlink()


def _write_if_changed(path: Path, text: str) -> None:
    """Write only a changed picture, so an unchanged build stays incremental."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", _generate)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
