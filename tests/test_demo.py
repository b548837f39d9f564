"""``rankstack demo``, the main job, end to end on a slice (real SmolLM2, real DL19)."""

from __future__ import annotations

from rankstack.cli import main


def test_demo_prints_table(data_dir, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RANKSTACK_RERANK_CACHE", str(tmp_path / "c.sqlite"))
    assert main(["demo", "--depth", "2", "--queries-limit", "1", "--rerankers", "pointwise", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "dataset dl19 (1 judged queries)" in lines[0] and "depth 2" in lines[0]
    names = [ln.split()[0] for ln in lines[3:6]]
    assert names == ["BM25", "pointwise", "pointwise+BM25"]
    bm25 = float(lines[3].split()[1])
    assert 0.0 <= bm25 <= 1.0
    assert lines[4].split()[3] == "0"  # cache hits on the first pass; the fused pass reuses the cache
