"""``rankstack rerank``: dataset names for run/queries/corpus, TREC output, the summary line, cache."""

from __future__ import annotations

from rankstack.cli import main
from rankstack.data.trec import read_run


def _summary(out: str) -> dict:
    return {"line": [ln for ln in out.splitlines() if ln.startswith("queries ")][0]}


def test_rerank_cross_encoder_cached_second_run(tmp_path, capsys, data_dir):
    out = tmp_path / "ce.trec"
    argv = ["rerank", "--run", "dl19", "--queries", "dl19", "--corpus", "dl19", "--reranker", "cross_encoder",
            "--model", "minilm-l6", "--depth", "4", "--queries-limit", "2", "--out", str(out),
            "--cache", str(tmp_path / "c.sqlite"), "--no-progress", "--qrels", "dl19"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    s = _summary(text)
    assert "docs scored 8" in s["line"] and "cache hits 0" in s["line"] and "parse fallbacks 0" in s["line"]
    assert "docs/s" in s["line"] and "wall" in s["line"] and "nDCG@10" in text
    run = read_run(str(out))
    assert len(run) == 2 and all(len(r) == 100 for r in run.values())  # top-4 reranked, the rest kept below
    assert main(argv) == 0
    line2 = _summary(capsys.readouterr().out)["line"]
    assert "cache hits 8" in line2 and "model calls 0" in line2
    assert read_run(str(out)) == run  # the cached run writes the same ranking


def test_rerank_pointwise_smollm2_with_fusion(tmp_path, capsys, data_dir):
    out = tmp_path / "pw.trec"
    argv = ["rerank", "--run", str(data_dir / "dl19" / "bm25.trec"), "--queries", "dl19", "--corpus", "dl19",
            "--reranker", "pointwise", "--model", "smollm2-135m", "--method", "prorank", "--depth", "2",
            "--queries-limit", "1", "--max-doc-tokens", "24", "--threads", "1", "--batch-size", "2",
            "--fusion-weight", "0.8", "--fusion-norm", "minmax", "--no-cache", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    line = _summary(capsys.readouterr().out)["line"]
    assert "queries 1" in line and "docs scored 2" in line and "model calls 2" in line
    assert len(read_run(str(out))) == 1


def test_rerank_user_errors(tmp_path, capsys, data_dir):
    base = ["rerank", "--run", "dl19", "--queries", "dl19", "--corpus", "dl19", "--out", str(tmp_path / "x.trec"),
            "--no-cache"]
    assert main(base + ["--reranker", "nope"]) == 2
    assert "unknown reranker" in capsys.readouterr().err
    assert main(base + ["--depth", "0"]) == 2
    assert main(base + ["--backend", "openai", "--model", "m", "--threads", "2"]) == 2
    assert "does not apply" in capsys.readouterr().err
    assert main(base + ["--reranker", "cross_encoder", "--model", "minilm-l6", "--fusion-weight", "2"]) == 2
    assert main(["rerank", "--run", str(tmp_path / "missing.trec"), "--queries", "dl19", "--corpus", "dl19",
                 "--out", str(tmp_path / "y.trec")]) == 1  # an error, not a usage error
    assert "no such file" in capsys.readouterr().err


def test_rerank_option_passes_through(tmp_path, capsys, data_dir):
    base = ["rerank", "--run", "dl19", "--queries", "dl19", "--corpus", "dl19", "--out", str(tmp_path / "x.trec"),
            "--no-cache", "--reranker", "cross_encoder", "--model", "minilm-l6", "--depth", "2", "--queries-limit", "1",
            "--no-progress"]
    assert main(base + ["--option", "no_such_option=3"]) == 2  # reached the reranker, which refused it
    assert "no_such_option" in capsys.readouterr().err
    assert main(base + ["--option", "badly-formed"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(base + ["--option", "seed=7"]) == 0  # a real option of the cross-encoder


def test_unknown_backend_is_a_one_line_error_not_a_traceback(tmp_path, capsys, data_dir):
    """``--backend nope`` used to end in a ValueError traceback from load_backend; now it is a
    BackendError (a RankstackError) the CLI prints on one line with exit status 2."""
    assert main(["rerank", "--run", "dl19", "--queries", "dl19", "--corpus", "dl19", "--out", str(tmp_path / "x.trec"),
                 "--no-cache", "--reranker", "pointwise", "--backend", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "rankstack rerank: error: unknown backend 'nope'; known: hf, openai, vllm"
    assert not (tmp_path / "x.trec").exists()
