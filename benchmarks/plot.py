"""Plot a benchmark run: validation throughput of flask-ccguard and its peers, relative to the limit.

Run by ``tox -e bench`` after ``bench_validate.py``, and by the documentation
build on the committed snapshot ``docs/_static/benchmark-results.json``::

    python benchmarks/plot.py benchmarks/results.json benchmarks/results.svg

Each bar is the median over the rounds of the contender's throughput divided
by the limit's in the same round (1.0 = as fast as the bare signature check);
the whisker spans the lowest and highest round. Repeated tokens (served by the
verified-token cache, 30 to 100 times the limit) are written in the legend
rather than drawn, so that the first-seen bars stay readable.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["main", "render"]

_OURS = "flask-ccguard first-seen"
_REPEATED = "flask-ccguard repeated"
_PEER_COLOURS = ("#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3")


def _contenders(validate: dict[str, dict[str, Any]]) -> list[str]:
    """Every contender of the run, ours first, then the peers from fastest to slowest on RS256."""
    names: list[str] = []
    for rows in validate.values():
        names += [n for n in rows if n not in names and n not in ("limit", _REPEATED)]
    first = next(iter(validate.values()))
    peers = sorted((n for n in names if n != _OURS), key=lambda n: -first.get(n, {}).get("ratio", 0.0))
    return [_OURS, *peers] if _OURS in names else peers


def render(results: dict[str, Any], out: Path) -> None:
    """Write ``results`` (the JSON of ``bench_validate.py --json``) as an SVG bar chart to ``out``."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the docs build and CI run headless
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "flask-ccguard"  # stable element ids: same input, same file
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text (smaller, searchable)

    validate: dict[str, dict[str, Any]] = results["validate"]
    algorithms = list(validate)
    contenders = _contenders(validate)
    width = 0.8 / len(contenders)
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
    for i, name in enumerate(contenders):
        xs, ys, low, high = [], [], [], []
        for j, alg in enumerate(algorithms):
            row = validate[alg].get(name)
            if row is None:  # python-jose has no PS256 or EdDSA
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(row["ratio"])
            low.append(row["ratio"] - row.get("ratio_min", row["ratio"]))
            high.append(row.get("ratio_max", row["ratio"]) - row["ratio"])
        ours = name == _OURS
        ax.bar(
            xs,
            ys,
            width * 0.92,
            yerr=[low, high],
            capsize=2,
            label=name,
            color="#2b6cb0" if ours else _PEER_COLOURS[(i - 1) % len(_PEER_COLOURS)],
            edgecolor="black" if ours else "none",
            linewidth=0.6,
        )
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.text(len(algorithms) - 0.45, 1.01, "the limit", ha="right", va="bottom", fontsize=8)
    ax.set_xticks(range(len(algorithms)))
    labels = []
    for alg in algorithms:
        limit = validate[alg]["limit"]["us_per_op"]
        labels.append(f"{alg}\n(limit {limit:.0f} µs)")
    ax.set_xticklabels(labels)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("throughput relative to the limit")
    repeated = ", ".join(
        f"{alg} {validate[alg][_REPEATED]['ratio']:.0f}\N{MULTIPLICATION SIGN}"
        for alg in algorithms
        if _REPEATED in validate[alg]
    )
    title = "First-seen tokens, higher is better"
    if repeated:
        title += f"  (repeated token: {repeated})"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
    cpus = results.get("cpus")
    note = f"Python {results.get('python', '?')}, {results.get('rounds', '?')} rounds"
    if cpus:
        note += f", {cpus} CPUs"
    fig.text(0.99, 0.01, note, ha="right", va="bottom", fontsize=7, color="#555555")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="svg", metadata={"Date": None})  # no timestamp: reproducible output
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the JSON written by bench_validate.py --json")
    parser.add_argument("svg", type=Path, help="the SVG to write")
    args = parser.parse_args(argv)
    render(json.loads(args.results.read_text(encoding="utf-8")), args.svg)
    print(f"wrote {args.svg}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
