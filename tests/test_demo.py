"""``rankstack demo``, the main job, end to end (real SmolLM2, real DL19, every judged query)."""

from __future__ import annotations

import re

from rankstack.cli import main


def _ndcg10(qrels_path, run_path) -> str:
    """nDCG@10 of a TREC run file, straight from ir-measures (no rankstack reader or evaluator)."""
    import ir_measures
    from ir_measures import nDCG

    qrels = list(ir_measures.read_trec_qrels(str(qrels_path)))
    run = list(ir_measures.read_trec_run(str(run_path)))
    judged = {q.query_id for q in qrels}
    return f"{ir_measures.calc_aggregate([nDCG @ 10], qrels, [r for r in run if r.query_id in judged])[nDCG @ 10]:.4f}"


def test_demo_prints_table(data_dir, capsys, tmp_path, monkeypatch):
    """All 43 judged queries at depth 2: the BM25 row is Anserini's DL19 nDCG@10, 0.5058; every reranker
    has its row and its fused row, each with a value; the fused pass is answered from the cache. The
    BM25 row and one reranker row are recomputed from the runs the demo saved, with ir-measures."""
    monkeypatch.setenv("RANKSTACK_RERANK_CACHE", str(tmp_path / "c.sqlite"))
    saved = tmp_path / "runs"
    assert main(["demo", "--depth", "2", "--rerankers", "pointwise,pointwise-qlm,first", "--threads", "1",
                 "--save-runs", str(saved)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "dataset dl19 (43 judged queries)" in lines[0] and "depth 2" in lines[0]
    cells = [re.split(r"\s{2,}", ln.strip()) for ln in lines[3:10]]
    rows = {c[0].split()[0]: c[1:] for c in cells}  # "pointwise+BM25 (0.8)" -> "pointwise+BM25"
    assert list(rows) == ["BM25", "pointwise", "pointwise+BM25", "pointwise-qlm", "pointwise-qlm+BM25", "first",
                          "first+BM25"]
    assert rows["BM25"][0] == "0.5058"
    qrels = data_dir / "dl19" / "qrels.txt"
    assert _ndcg10(qrels, saved / "BM25.trec") == _ndcg10(qrels, data_dir / "dl19" / "bm25.trec") == "0.5058"
    assert _ndcg10(qrels, saved / "pointwise.trec") == rows["pointwise"][0].rstrip("+-")  # the row, recomputed
    assert _ndcg10(qrels, saved / "first+BM25_0.8.trec") == rows["first+BM25"][0].rstrip("+-")
    for name in ("pointwise", "pointwise+BM25", "pointwise-qlm", "pointwise-qlm+BM25", "first", "first+BM25"):
        assert 0.0 < float(rows[name][0].rstrip("+-")) <= 1.0
    # cache hits of the first (unfused) pass: none, so pointwise-qlm is not the yes/no reranker again
    assert rows["pointwise"][2] == "0" and rows["pointwise-qlm"][2] == "0" and rows["first"][2] == "0"
    assert lines[-2].startswith("43 queries") and lines[-1].startswith("runs written to")
