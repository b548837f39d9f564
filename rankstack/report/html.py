"""One self-contained HTML page from :class:`~rankstack.report.data.ReportData`.

No JavaScript, no fonts or styles from elsewhere: charts are inline SVG, per-query details are
``<details>`` elements, and a Content-Security-Policy forbids the page every fetch, so it opens
the same offline, from an e-mail attachment, or years later.
"""

from __future__ import annotations

import datetime
import math
from html import escape

from rankstack.report import plots
from rankstack.report.data import Entry, ReportData, outcome

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_GRADE_COLOURS = ("#c7e9c0", "#74c476", "#238b45")  # light -> dark green: share of the top grade

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1280px;
  padding:0 16px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px} .sub{color:#555;margin:0 0 12px}
.warn{background:#fff4e5;border-left:4px solid #e69500;padding:8px 12px;margin:8px 0}
.note{background:#f3f6fa;border-left:4px solid #7a94b8;padding:6px 12px;margin:6px 0;color:#333}
table{border-collapse:collapse;margin:6px 0} th,td{padding:3px 9px;border-bottom:1px solid #e5e5e5;vertical-align:top}
th{text-align:left;background:#f6f6f6;font-weight:600}
table.summary td.num,table.cost td.num{text-align:right;font-variant-numeric:tabular-nums}
table.cost td.fellback{background:#fde2e1;font-weight:bold}
.sig-up{color:#1e7b45;font-weight:700} .sig-down{color:#b3261e;font-weight:700}
.foot{color:#555;font-size:12px;margin:2px 0 10px}
.charts{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.charts figure{margin:0} .charts svg{max-width:100%;height:auto}
details{border:1px solid #e3e3e3;border-radius:4px;margin:4px 0;padding:2px 8px}
details[open]{padding-bottom:8px} summary{cursor:pointer;padding:3px 0}
summary .qid{font-family:ui-monospace,monospace;color:#555;margin-right:6px}
.val{font-variant-numeric:tabular-nums;margin-left:10px;white-space:nowrap}
.up{color:#1e7b45} .down{color:#b3261e} .same{color:#888}
table.top td{width:auto;font-size:13px;min-width:210px} table.top td.rk{min-width:0;color:#777;text-align:right}
.doc{font-family:ui-monospace,monospace;font-size:12px} .txt{color:#444;font-size:12px;display:block}
.g{display:inline-block;min-width:16px;text-align:center;border-radius:3px;font-size:11px;font-weight:700;
  padding:0 3px;margin-right:4px;border:1px solid #bbb;background:#fff;color:#555}
.g0{background:#eee;color:#777;border-color:#ddd}
""" + "".join(f".gl{i}{{background:{c};border-color:{c};color:{'#fff' if i == len(_GRADE_COLOURS) else '#133'}}}"
              for i, c in enumerate(_GRADE_COLOURS, 1)) + """
.mv{font-size:11px;margin-left:4px}
td.nometa{color:#777;font-style:italic}
details.params{border:0;padding:0;margin:0} details.params code{display:block;max-width:420px;font-size:11px;
  white-space:normal;word-break:break-word;color:#555}
table.moves td{font-size:12px;text-align:right}
table.moves td:first-child{text-align:left;font-family:ui-monospace,monospace} .missed{color:#666;font-size:12px}
.legend span{margin-right:10px}
"""


def _grade_badge(grade: int | None, top_grade: int) -> str:
    """A grade as a coloured badge: grey 0, light to dark green by share of the top grade, '?' unjudged."""
    if grade is None:
        return '<span class="g">?</span>'
    if grade <= 0:
        return f'<span class="g g0">{grade}</span>'
    level = min(len(_GRADE_COLOURS), max(1, math.ceil(grade / max(top_grade, 1) * len(_GRADE_COLOURS))))
    return f'<span class="g gl{level}">{grade}</span>'


def _move(base_rank: int | None, rank: int | None) -> tuple[str, str]:
    """A passage's move against the baseline as (css class, text): up n, down n, same, new (the
    baseline's list lacks it), out (this run's list lacks it)."""
    if base_rank is None and rank is None:
        return "same", "-"
    if base_rank is None:
        return "up", "new"
    if rank is None:
        return "down", "out"
    d = base_rank - rank
    return ("up", f"\u2191{d}") if d > 0 else ("down", f"\u2193{-d}") if d < 0 else ("same", "=")


def _cell(value: str) -> str:
    """A summary-table cell: the mark ``rankstack eval`` prints, coloured."""
    if value.endswith("+"):
        return f'{escape(value[:-1])}<span class="sig-up">+</span>'
    if value.endswith("-"):
        return f'{escape(value[:-1])}<span class="sig-down">-</span>'
    return escape(value)


def summary_section(data: ReportData) -> str:
    from rankstack.eval.table import table_cells

    header, rows, foot = table_cells(data.per_query, baseline=data.baseline)
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + f"<td>{escape(r[0])}</td>" + "".join(f'<td class="num">{_cell(c)}</td>' for c in r[1:])
                   + "</tr>" for r in rows)
    return (f'<section id="summary-section"><h2>Summary</h2><table class="summary" id="summary"><thead><tr>{head}'
            f'</tr></thead><tbody>{body}</tbody></table><p class="foot">{escape(foot)} (the numbers and marks of '
            f'<code>rankstack eval</code>)</p></section>')


def charts_section(data: ReportData) -> str:
    if data.baseline is None:
        return '<section id="charts"><h2>Per-query changes</h2><p class="note">One run: nothing to compare.</p></section>'
    parts = ['<section id="charts"><h2>Per-query changes</h2><p class="sub">Each run against '
             f'<b>{escape(data.baseline)}</b>, one bar or point per query; green: the run wins, red: it loses, '
             'grey: a tie.</p>']
    n = 0
    limits = {m: max([abs(d) for e in data.runs[1:] for d in data.deltas(e.name, m).values()] + [1e-3])
              for m in data.measures}  # one y range per measure: bars compare across runs
    for entry in data.runs[1:]:
        parts.append(f"<h3>{escape(entry.name)} vs {escape(data.baseline)}</h3>")
        for m in data.measures:
            deltas = data.deltas(entry.name, m)
            w, l, t = outcome(deltas)
            n += 1
            delta_svg = plots.delta_chart(deltas, entry.name, data.baseline, m, f"c{n}d", limit=limits[m])
            scatter_svg = plots.scatter_chart(data.per_query[data.baseline][m], data.per_query[entry.name][m],
                                              entry.name, data.baseline, m, f"c{n}s")
            parts.append(f'<p class="sub">{escape(m)}: <span class="up">{w} wins</span>, '
                         f'<span class="down">{l} losses</span>, <span class="same">{t} ties</span></p>'
                         f'<div class="charts"><figure class="delta">{delta_svg}</figure>'
                         f'<figure class="scatter">{scatter_svg}</figure></div>')
    parts.append("</section>")
    return "".join(parts)


def _fmt_num(v) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.3g}" if v else "0"
    return f"{v:,}" if isinstance(v, int) else escape(str(v))


def cost_section(data: ReportData) -> str:
    from rankstack.eval.fallbacks import WARN_SHARE, fallback_share

    cols = ["reranker", "model", "depth", "queries", "docs", "wall time (s)", "docs/s", "model calls", "cache hits",
            "parse repairs", "fell back"]
    rows = []
    for e in data.runs:
        md = e.metadata
        if md is None:
            rows.append(f'<tr><td>{escape(e.name)}</td><td colspan="{len(cols)}" class="nometa">no metadata: '
                        f'{escape(e.meta_note)}</td></tr>')
            continue
        wall = md.get("wall_seconds")
        docs = md.get("docs")
        rate = docs / wall if isinstance(docs, (int, float)) and isinstance(wall, (int, float)) and wall > 0 else None
        parse = {k: v for k, v in md.items() if k.startswith("parse_") and isinstance(v, (int, float))}
        parse_txt = _fmt_num(sum(parse.values())) + (
            " (" + ", ".join(f"{k[6:]} {_fmt_num(v)}" for k, v in sorted(parse.items()) if v) + ")"
            if any(parse.values()) else "")
        what = md.get("reranker") or md.get("retriever") or md.get("teacher") or "-"
        vals = [what, md.get("model") or "-", md.get("depth", "-"), md.get("queries", "-"), docs if docs is not None
                else "-", wall if wall is not None else "-", rate if rate is not None else "-",
                md.get("model_requests", "-"), md.get("cache_hits", "-")]
        what = str(vals[0])
        short = what.split("(", 1)[0]
        what_cell = (f'<details class="params"><summary>{escape(short)}</summary><code>{escape(what)}</code></details>'
                     if short != what else escape(what))  # a reranker's repr carries every parameter: folded
        cells = [f"<td>{what_cell}</td>", f"<td>{escape(str(vals[1]))}</td>"]
        cells += [f'<td class="num">{_fmt_num(v)}</td>' for v in vals[2:]]
        cells.append(f'<td class="num">{escape(parse_txt)}</td>')  # parse_* counters appear once counted: none is 0
        fs = fallback_share(md)
        over = fs is not None and fs.share > WARN_SHARE
        cells.append(f'<td class="num{" fellback" if over else ""}">{escape(fs.text()) if fs else "-"}</td>')
        rows.append(f"<tr><td>{escape(e.name)}</td>{''.join(cells)}</tr>")
    head = "<th>run</th>" + "".join(f"<th>{escape(c)}</th>" for c in cols)
    return (f'<section id="cost"><h2>Cost</h2><p class="sub">From each run\'s metadata (<code>RUN.meta.json</code>, '
            f'written by <code>rankstack rerank --out RUN</code> and <code>rankstack demo --save-runs</code>).</p>'
            f'<table class="cost"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></section>')


def _entry_cell(e: Entry, top_grade: int, show_move: bool) -> str:
    move = '<span class="mv {}">{}</span>'.format(*_move(e.base_rank, e.rank)) if show_move else ""
    text = f'<span class="txt">{escape(e.text)}</span>' if e.text is not None else ""
    return f'<td>{_grade_badge(e.grade, top_grade)}<span class="doc">{escape(e.docid)}</span>{move}{text}</td>'


def _query_block(data: ReportData, qid: str, top: int, words: int, top_grade: int) -> str:
    m = data.measures[0]
    text = data.query_text(qid)
    head = (f'<span class="qid">{escape(qid)}</span>{escape(text) if text is not None else ""}'
            f'<span class="val same">{escape(m)}:</span>')
    for e in data.runs:
        v = data.per_query[e.name][m][qid]
        cls, delta = "", ""
        if data.baseline is not None and e.name != data.baseline:
            d = v - data.per_query[data.baseline][m][qid]
            cls = "up" if d > 1e-9 else "down" if d < -1e-9 else "same"
            delta = f" ({d:+.3f})"
        head += f'<span class="val {cls}">{escape(e.name)} {v:.3f}{delta}</span>'
    lists = {e.name: data.top_entries(e.name, qid, top, words) for e in data.runs}
    grid = ["<tr><th></th>" + "".join(f"<th>{escape(e.name)}</th>" for e in data.runs) + "</tr>"]
    for i in range(max((len(v) for v in lists.values()), default=0)):
        row = [f'<td class="rk">{i + 1}</td>']
        for e in data.runs:
            ents = lists[e.name]
            row.append(_entry_cell(ents[i], top_grade, data.baseline is not None and e.name != data.baseline)
                       if i < len(ents) else "<td></td>")
        grid.append("<tr>" + "".join(row) + "</tr>")
    found, missed = data.rank_changes(qid)
    moves = ""
    if found:
        others = [e.name for e in data.runs[1:]] if data.baseline else []
        head_m = ("<tr><th>judged relevant passage</th><th>grade</th>" + "".join(f"<th>{escape(e.name)} rank</th>"
                  for e in data.runs) + "".join(f"<th>{escape(n)} move</th>" for n in others) + "</tr>")
        body = []
        for c in found:
            ranks = "".join(f'<td>{c.ranks[e.name] if c.ranks[e.name] is not None else "-"}</td>'
                            for e in data.runs)
            mv = "".join('<td class="{}">{}</td>'.format(*_move(c.ranks[data.baseline], c.ranks[n])) for n in others)
            body.append(f'<tr><td>{escape(c.docid)}</td><td>{_grade_badge(c.grade, top_grade)}</td>'
                        f"{ranks}{mv}</tr>")
        moves = f'<table class="moves">{head_m}{"".join(body)}</table>'
    if missed:
        moves += (f'<p class="missed">{len(missed)} judged relevant passages in no run\'s list: '
                  + ", ".join(f"{escape(d)} ({g})" for d, g in missed) + "</p>")
    if not found and not missed:
        moves = '<p class="missed">No passage of this query is judged relevant.</p>'
    return (f'<details class="query" id="q-{escape(qid)}"><summary>{head}</summary>'
            f'<h3>Top {top}</h3><table class="top">{"".join(grid)}</table>'
            f"<h3>Rank of every judged relevant passage</h3>{moves}</details>")


def queries_section(data: ReportData, top: int, words: int) -> str:
    m = data.measures[0]
    top_grade = max((g for q in data.qids for g in data.qrels.get(q, {}).values()), default=1)
    if data.baseline is not None:
        def swing(q):
            return max(abs(data.per_query[e.name][m][q] - data.per_query[data.baseline][m][q]) for e in data.runs[1:])
        order = sorted(data.qids, key=lambda q: (-swing(q), q))
        how = f"largest change in {m} against {data.baseline} first"
    else:
        order = list(data.qids)
        how = "in the qrels' order"
    legend = ('<p class="legend sub">Grades: ' + "".join(f"<span>{_grade_badge(g, top_grade)}</span>"
              for g in range(0, top_grade + 1)) + f'<span>{_grade_badge(None, top_grade)} unjudged</span>'
              '<span><span class="up">\u2191n</span>/<span class="down">\u2193n</span>: '
              'moved up/down n places against the baseline; <span class="up">new</span>: not in the baseline\'s '
              'list; <span class="down">out</span>: not in this run\'s list</span></p>')
    blocks = "".join(_query_block(data, q, top, words, top_grade) for q in order)
    return (f'<section id="queries"><h2>Queries</h2><p class="sub">{len(order)} queries, {escape(how)}; '
            f'click one to see each run\'s top {top} and where every judged relevant passage went.</p>'
            f"{legend}{blocks}</section>")


def render(data: ReportData, title: str | None = None, top: int = 10, words: int = 12) -> str:
    """The whole page as one string."""
    from rankstack.version import __version__

    title = title or ("rankstack report: " + ", ".join(data.names))
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    sub = escape(f"{len(data.qids)} queries; measures {', '.join(data.measures)}"
                 + (f"; baseline {data.baseline}" if data.baseline else "")
                 + (f"; binary measures count grade \u2265 {data.rel} as relevant" if data.rel is not None else "")
                 + f"; rankstack {__version__}, {when}")
    banners = "".join(f'<div class="warn">{escape(w)}</div>' for w in data.warnings)
    banners += "".join(f'<div class="note">{escape(n)}</div>' for n in data.notes)
    return page(title, f'<p class="sub">{sub}</p>{banners}{summary_section(data)}{charts_section(data)}'
                       f"{cost_section(data)}{queries_section(data, top, words)}")


def page(title: str, body: str) -> str:
    """A self-contained HTML page: the report's styles, no scripts, a Content-Security-Policy that
    forbids every fetch.

    Args:
        title: the page's title and first heading (plain text; escaped here).
        body: HTML that follows the heading.

    Returns:
        The whole document, ending in a newline.
    """
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{escape(title)}</h1>{body}</body></html>\n")
