"""``rankstack report``: the page's numbers are ``rankstack eval``'s, it renders in a real headless
Chromium without a console error, and bad input (different query sets, no metadata, no corpus)
still gives a page that says what is missing. Real DL19 data; the reranked runs come from the
real MiniLM dense reranker through ``rankstack rerank`` (which also writes the metadata sidecar)."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from html import unescape
from html.parser import HTMLParser

import pytest

from rankstack.cli import main
from rankstack.data import load_dataset, read_run, read_run_metadata, write_run, write_run_metadata
from rankstack.errors import FormatError, RankstackError
from rankstack.types import Run


class _Tables(HTMLParser):
    """Cells of the ``<table class=...>`` elements of a page, by class; plus every tag seen."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: list[str] = []
        self._cls, self._row, self._cell = None, None, None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "table" and self._cls is None:
            self._cls = a.get("class", "")
            self.tables.setdefault(self._cls, [])
        elif tag == "tr" and self._cls is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._cls].append(self._row)
            self._row = None
        elif tag == "table":
            self._cls = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _tables(html: str) -> _Tables:
    p = _Tables()
    p.feed(html)
    return p


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    """BM25 (the shipped run, no metadata) and two real reranked runs written by ``rankstack rerank``:
    MiniLM dense over the top 10, and the same fused with BM25 (all from the cache)."""
    d = tmp_path_factory.mktemp("runs")
    cache = str(d / "cache.sqlite")
    bm25 = d / "BM25.trec"
    shutil.copy(data_dir / "dl19" / "bm25.trec", bm25)
    common = ["rerank", "--run", "dl19", "--queries", "dl19", "--corpus", "dl19", "--reranker", "dense",
              "--model", "minilm-l6", "--depth", "10", "--threads", "1", "--cache", cache, "--no-progress"]
    assert main(common + ["--out", str(d / "dense.trec")]) == 0
    assert main(common + ["--fusion-weight", "0.5", "--out", str(d / "fused.trec")]) == 0
    return {"BM25": bm25, "dense": d / "dense.trec", "fused": d / "fused.trec"}


def test_rerank_writes_metadata_sidecar(runs):
    md = read_run_metadata(runs["dense"])
    assert md is not None and read_run_metadata(runs["BM25"]) is None
    assert md["depth"] == 10 and md["queries"] == 43 and md["docs"] == 430
    assert md["model"] == "minilm-l6" and md["reranker"].startswith("DenseReranker")
    assert md["model_requests"] > 0 and md["wall_seconds"] > 0 and len(md["fingerprint"]) == 24
    fused = read_run_metadata(runs["fused"])
    assert fused["model_requests"] == 0 and fused["cache_hits"] == md["requests"]  # the second run is all cached


def test_metadata_sidecar_round_trip_and_bad_file(tmp_path):
    run = tmp_path / "r.trec"
    path = write_run_metadata(run, {"docs": 3, "parse_missing": 1, "reranker": "X"})
    assert path.name == "r.trec.meta.json"
    assert read_run_metadata(run) == {"docs": 3, "parse_missing": 1, "reranker": "X"}
    path.write_text('{"docs": 3,\n "x": }\n')
    with pytest.raises(FormatError, match=r"r\.trec\.meta\.json:2"):
        read_run_metadata(run)
    path.write_text("[1, 2]\n")
    with pytest.raises(FormatError, match="JSON object"):
        read_run_metadata(run)


def _report(runs, tmp_path, *extra) -> str:
    out = tmp_path / "report.html"
    args = ["report", *(f"{n}={p}" for n, p in runs.items()), "--qrels", "dl19", *extra, "-o", str(out)]
    assert main(args) == 0
    return out.read_text(encoding="utf-8")


def test_summary_table_is_eval_table(runs, tmp_path, capsys):
    ms = ["-m", "nDCG@10", "-m", "R(rel=2)@100"]
    assert main(["eval", *(f"{n}={p}" for n, p in runs.items()), "--qrels", "dl19", *ms]) == 0
    eval_out = capsys.readouterr().out.strip().splitlines()
    html = _report(runs, tmp_path, "--queries", "dl19", "--corpus", "dl19", *ms)
    cells = _tables(html).tables["summary"]
    eval_rows = [eval_out[0].split()] + [ln.split() for ln in eval_out[2:-1]]
    assert cells == eval_rows  # same header, numbers and +/- marks
    assert any(c.endswith(("+", "-")) for row in cells[1:] for c in row[1:])  # a mark is there to compare
    assert eval_out[-1] in unescape(html)  # the footnote: 43 queries; paired t-test vs BM25
    # per-query charts: a delta chart and a scatter per run and measure (2 runs x 2 measures)
    assert html.count("<svg") == 8 and "<script" not in html
    assert re.search(r"dense - BM25: \d+ wins, \d+ losses, \d+ ties", html)
    # each query collapsible, with its text, top 10 per run with grades, and the rank of its relevant passages
    assert html.count('<details class="query"') == 43
    ds = load_dataset("dl19")
    q = next(iter(ds.judged_queries.values()))
    assert q.text in html
    top_doc = read_run(runs["dense"])[q.qid].docids[0]
    assert " ".join(ds.corpus.get(top_doc).text.split()[:12]) in html
    # the cost section: the reranked runs' metadata, and BM25's missing sidecar said so
    cost = {row[0]: row for row in _tables(html).tables["cost"][1:]}
    assert cost["dense"][2] == "minilm-l6" and cost["dense"][5] == "430" and cost["fused"][8] == "0"
    assert "no metadata" in cost["BM25"][1] and "BM25.trec.meta.json" in cost["BM25"][1]


def test_python_api_returns_the_page(runs, data_dir):
    import rankstack
    import rankstack.report as pkg

    assert rankstack.report is pkg and callable(pkg)
    ds = load_dataset("dl19")
    dense = read_run(runs["dense"])
    dense.metadata = read_run_metadata(runs["dense"])
    html = rankstack.report({"BM25": ds.run, "dense": dense}, ds.qrels, queries=ds.queries, corpus=ds.corpus,
                            rel=ds.rel)
    via_files = rankstack.report([f"BM25={runs['BM25']}", f"dense={runs['dense']}"], "dl19", queries="dl19",
                                 corpus="dl19")
    cost = lambda h: {row[0]: row for row in _tables(h).tables["cost"][1:]}
    assert cost(html)["dense"] == cost(via_files)["dense"]  # the metadata: run.metadata or the sidecar
    assert "the run carries no metadata" in cost(html)["BM25"][1]  # a Run object's note differs from a file's
    strip = lambda h: re.sub(r'rankstack \S+, \d{4}-\d\d-\d\d \d\d:\d\d|<section id="cost">.*?</section>', "", h)
    assert strip(html) == strip(via_files)  # everything else is the same page
    # a fresh interpreter: `rankstack.report` is callable before anything imported the package
    code = "import rankstack, sys; sys.exit(0 if callable(rankstack.report) else 1)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_different_query_sets_warn_and_use_common_queries(runs, tmp_path, caplog):
    from rankstack.eval import evaluate

    dense = read_run(runs["dense"])
    keep = list(dense)[:5]
    part = tmp_path / "part.trec"
    write_run(Run({q: dense[q] for q in keep}, name="part"), part)
    with caplog.at_level("WARNING"):
        html = _report({"BM25": runs["BM25"], "part": part}, tmp_path)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "part lacks 38" in warned[0] and "5 judged queries every run holds" in warned[0]
    missing = [q for q in load_dataset("dl19").judged_queries if q not in keep]
    assert sum(re.search(rf"\b{q}\b", warned[0]) is not None for q in missing) == 10  # the first ten named
    assert '<div class="warn">' in html and "part lacks 38" in html
    qrels = {q: load_dataset("dl19").qrels[q] for q in keep}
    want = evaluate(read_run(part), qrels, ["nDCG@10"], rel=2)["nDCG@10"]
    cells = _tables(html).tables["summary"]
    assert cells[2][0] == "part" and float(cells[2][1].rstrip("+-")) == pytest.approx(want, abs=5e-5)
    assert "5 queries" in html and html.count('<details class="query"') == 5


def test_no_corpus_no_topics_no_metadata(runs, tmp_path):
    html = _report({"BM25": runs["BM25"], "dense": runs["dense"]}, tmp_path)
    ds = load_dataset("dl19")
    q = next(iter(ds.judged_queries.values()))
    top_doc = read_run(runs["dense"])[q.qid].docids[0]
    assert " ".join(ds.corpus.get(top_doc).text.split()[:6]) not in html  # no passage text
    assert q.text not in html and top_doc in html  # queries by id, passages by docid
    assert "no corpus given" in html and "no topics given" in html
    assert html.count("<svg") == 2 and html.count('<details class="query"') == 43  # the rest still drawn
    no_meta = tmp_path / "nometa.trec"
    shutil.copy(runs["dense"], no_meta)
    html = _report({"BM25": runs["BM25"], "bare": no_meta}, tmp_path)
    cost = {row[0]: row for row in _tables(html).tables["cost"][1:]}
    assert "no metadata" in cost["bare"][1] and "nometa.trec.meta.json" in cost["bare"][1]


def test_bad_input_errors(runs, tmp_path, capsys):
    import rankstack

    with pytest.raises(RankstackError, match="two runs are named 'x'"):
        rankstack.report([f"x={runs['BM25']}", f"x={runs['dense']}"], "dl19")
    with pytest.raises(RankstackError, match="baseline 'nope'"):
        rankstack.report([str(runs["BM25"])], "dl19", baseline="nope")
    with pytest.raises(RankstackError, match="no run holds a judged query"):
        rankstack.report([str(runs["BM25"])], "vaswani")
    bad = tmp_path / "bad.trec"
    bad.write_text("264014 Q0 5611210 1 15.78\n")
    assert main(["report", str(bad), "--qrels", "dl19", "-o", str(tmp_path / "x.html")]) == 1
    assert "bad.trec:1" in capsys.readouterr().err


def test_baseline_goes_first_with_its_marks(runs, tmp_path, capsys):
    assert main(["eval", *(f"{n}={p}" for n, p in runs.items()), "--qrels", "dl19", "--baseline", "dense"]) == 0
    eval_rows = {ln.split()[0]: ln.split() for ln in capsys.readouterr().out.strip().splitlines()[2:-1]}
    html = _report(runs, tmp_path, "--baseline", "dense")
    cells = _tables(html).tables["summary"][1:]
    assert [r[0] for r in cells] == ["dense", "BM25", "fused"]
    assert all(r == eval_rows[r[0]] for r in cells)


# --- the browser check: a real headless Chromium ------------------------------------------------
def _chromium():
    from rankstack.report.browser import find_chromium

    found = find_chromium()
    if not found:
        pytest.skip("no chromium on this machine (make test installs it: apt-get install -y chromium)")
    return found


def _coloured_pixels(png: bytes, rgb: tuple[int, int, int], tol: int = 12) -> int:
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    return int((np.abs(img - np.array(rgb, dtype=np.int16)) <= tol).all(axis=-1).sum())


def test_report_renders_in_headless_chromium(runs, tmp_path):
    from rankstack.report import plots
    from rankstack.report.browser import check_page

    chromium = _chromium()
    html = _report(runs, tmp_path, "--queries", "dl19", "--corpus", "dl19")
    page = tmp_path / "report.html"
    seen = check_page(page, chromium=chromium)
    assert seen.errors == [] and seen.requests == []  # no console error, nothing fetched
    assert seen.dom["summary"] == _tables(html).tables["summary"]  # the browser shows eval's table
    assert seen.dom["summary_box"]["h"] > 40 and seen.dom["summary_box"]["w"] > 100
    assert len(seen.dom["svgs"]) == 4
    for svg in seen.dom["svgs"]:  # laid out with a size, with shapes drawn
        assert svg["w"] > 150 and svg["h"] > 150 and svg["shapes"] > 20
    assert seen.dom["queries"] == 43
    hexrgb = lambda h: tuple(int(h[i: i + 2], 16) for i in (1, 3, 5))
    # the screenshot of the charts holds the bars' colours: painted, not only parsed
    assert _coloured_pixels(seen.screenshot, hexrgb(plots.WIN)) > 200
    assert _coloured_pixels(seen.screenshot, hexrgb(plots.LOSS)) > 200


def test_browser_check_catches_errors(tmp_path):
    """The check can fail: a console error, a failed load and a fetch the page's policy refuses."""
    from rankstack.report.browser import check_page
    from rankstack.report.html import CSP

    chromium = _chromium()
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><table class="summary"><tr>'
                   '<td>x</td></tr></table><img src="missing.png"><script>console.error("boom")</script>'
                   "</body></html>")
    seen = check_page(bad, chromium=chromium)
    assert any("boom" in e for e in seen.errors) and any("missing.png" in e for e in seen.errors)
    assert seen.dom["summary"] == [["x"]] and seen.dom["svgs"] == []
    fetch = tmp_path / "fetch.html"  # the report's own policy: an outside image is refused, and said so
    fetch.write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
                     f'content="{CSP}"></head><body><img src="http://127.0.0.1:9/x.png"></body></html>')
    seen = check_page(fetch, chromium=chromium)
    assert any("Content Security Policy" in e and "127.0.0.1:9" in e for e in seen.errors)


def test_demo_save_runs_then_report(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RANKSTACK_RERANK_CACHE", str(tmp_path / "c.sqlite"))
    out = tmp_path / "runs"
    assert main(["demo", "--rerankers", "dense", "--depth", "5", "--queries-limit", "3",  # dense runs its own MiniLM, not --model (the LLM)
                 "--threads", "1", "--save-runs", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["BM25.trec", "dense+BM25_0.8.trec", "dense+BM25_0.8.trec.meta.json",
                                                    "dense.trec", "dense.trec.meta.json"]
    demo_table = capsys.readouterr().out
    md = json.loads((out / "dense.trec.meta.json").read_text())
    assert md["queries"] == 3 and md["docs"] == 15 and md["model"] == "minilm-l6"
    html = _report({"BM25": out / "BM25.trec", "dense": out / "dense.trec"}, tmp_path)
    cells = _tables(html).tables["summary"]
    demo_rows = {ln.split()[0]: ln.split() for ln in demo_table.splitlines() if ln.startswith(("BM25 ", "dense "))}
    assert cells[1][1] == demo_rows["BM25"][1] and cells[2][1] == demo_rows["dense"][1]  # the demo's numbers
    assert "judge 40 queries no run holds" in html  # the demo's 3 queries of 43
