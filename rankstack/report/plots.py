"""The report's charts: matplotlib figures rendered to SVG strings to inline in the page.

No pyplot (no global figure state): each chart is a :class:`matplotlib.figure.Figure` saved as
SVG with text kept as text (small, searchable). Every id in a chart is prefixed with the chart's
own name, so several charts inlined into one HTML document never share an id.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping

WIN, LOSS, TIE = "#2e8b57", "#c8414b", "#9a9a9a"
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        from rankstack.errors import RankstackError

        raise RankstackError("the report's charts need matplotlib: pip install 'rankstack[report]'") from None
    return matplotlib


def _svg(fig, prefix: str) -> str:
    matplotlib = _matplotlib()

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": prefix}):
        fig.savefig(buf, format="svg", bbox_inches="tight",  # no RDF block (its date would change every page)
                    metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE: inline SVG in HTML
    ids = set(_ID.findall(text))
    text = _REF.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}" if m.group(2) in ids else m.group(0), text)
    return text.strip()


def _figure(width: float, height: float):
    _matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.patch.set_alpha(0.0)
    return fig


def delta_chart(deltas: Mapping[str, float], run: str, baseline: str, measure: str, chart_id: str,
                limit: float | None = None, eps: float = 1e-9) -> str:
    """Per-query ``run - baseline`` as bars sorted from the largest gain to the largest loss; ``limit``:
    the y axis spans +-limit (give every run the same one, so that bar heights compare across charts)."""
    items = sorted(deltas.items(), key=lambda kv: (-kv[1], kv[0]))
    values = [v for _, v in items]
    colours = [WIN if v > eps else LOSS if v < -eps else TIE for v in values]
    fig = _figure(7.2, 2.6)
    ax = fig.add_subplot()
    x = range(len(values))
    ax.bar(x, values, color=colours, width=0.8)
    ax.scatter([i for i, v in enumerate(values) if abs(v) <= eps], [0.0] * sum(abs(v) <= eps for v in values),
               marker="o", s=8, color=TIE, zorder=3)  # ties: a dot where a bar has no height
    ax.axhline(0.0, color="#444", linewidth=0.8)
    ax.set_ylabel(f"delta {measure}")
    ax.set_xlim(-0.6, len(values) - 0.4)
    if limit:
        ax.set_ylim(-limit * 1.05, limit * 1.05)
    if len(values) <= 60:
        ax.set_xticks(list(x), [q for q, _ in items], rotation=90, fontsize=6)
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"{len(values)} queries, sorted by delta")
    wins = sum(1 for c in colours if c == WIN)
    losses = sum(1 for c in colours if c == LOSS)
    ax.set_title(f"{run} - {baseline}: {wins} wins, {losses} losses, {len(values) - wins - losses} ties",
                 fontsize=9)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _svg(fig, chart_id)


def scatter_chart(base: Mapping[str, float], run: Mapping[str, float], run_name: str, baseline: str, measure: str,
                  chart_id: str, eps: float = 1e-9) -> str:
    """One point per query: baseline value (x) against the run's (y); above the diagonal is a win."""
    qids = sorted(base)
    xs, ys = [base[q] for q in qids], [run[q] for q in qids]
    colours = [WIN if y - x > eps else LOSS if y - x < -eps else TIE for x, y in zip(xs, ys)]
    top = max(xs + ys + [1e-9])
    hi = 1.0 if top <= 1.0 else top  # most measures live in [0, 1]: keep that frame
    fig = _figure(3.0, 3.0)
    ax = fig.add_subplot()
    ax.plot([0, hi], [0, hi], color="#888", linewidth=0.8, linestyle="--")
    ax.scatter(xs, ys, c=colours, s=14, alpha=0.85, edgecolors="none")
    ax.set_xlim(0, hi * 1.02)
    ax.set_ylim(0, hi * 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel(f"{baseline} {measure}", fontsize=8)
    ax.set_ylabel(f"{run_name} {measure}", fontsize=8)
    ax.tick_params(labelsize=7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _svg(fig, chart_id)
