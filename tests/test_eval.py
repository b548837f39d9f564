"""Evaluation through ir-measures reproduces Anserini's published DL19 BM25 numbers."""

from __future__ import annotations

import pytest

from rankstack.cli import main
from rankstack.data import read_qrels, read_run
from rankstack.eval import compare, evaluate, paired_ttest
from rankstack.types import Ranking, Run


def test_dl19_bm25_matches_anserini(data_dir):
    run = read_run(data_dir / "dl19/bm25.trec")
    qrels = read_qrels(data_dir / "dl19/qrels.txt")
    res = evaluate(run, qrels, ["nDCG@10", "R(rel=2)@100", "RR(rel=2)@10"])
    assert round(res["nDCG@10"], 4) == 0.5058
    assert round(res["R(rel=2)@100"], 4) == 0.4910
    assert round(res["RR(rel=2)@10"], 4) == 0.7024
    # the rel level applies to binary measures only; nDCG keeps the grades
    res2 = evaluate(run, qrels, ["nDCG@10", "R@100"], rel=2)
    assert res2["R(rel=2)@100"] == res["R(rel=2)@100"] and res2["nDCG@10"] == res["nDCG@10"]
    assert evaluate(run, qrels, ["R@100"])["R@100"] != res["R(rel=2)@100"]  # rel=1 counts grade-1 docs too


def test_missing_query_counts_zero(data_dir):
    run = read_run(data_dir / "dl19/bm25.trec")
    qrels = read_qrels(data_dir / "dl19/qrels.txt")
    full = evaluate(run, qrels, ["nDCG@10"], per_query=True)["nDCG@10"]
    dropped = Run({q: r for q, r in list(run.items())[1:]})
    part = evaluate(dropped, qrels, ["nDCG@10"])["nDCG@10"]
    first = next(iter(run))
    assert part == pytest.approx((sum(full.values()) - full[first]) / 43)


def test_perfect_ranking_scores_one():
    qrels = {"q": {"a": 3, "b": 1, "c": 0}}
    best = Run([Ranking.from_order("q", ["a", "b", "c"])])
    worst = Run([Ranking.from_order("q", ["c", "b", "a"])])
    assert evaluate(best, qrels, ["nDCG@10"])["nDCG@10"] == pytest.approx(1.0)
    assert evaluate(worst, qrels, ["nDCG@10"])["nDCG@10"] < 0.7


def test_paired_ttest():
    a = {str(i): 0.1 * (i % 3) for i in range(30)}
    b = {q: v + 0.05 + 0.01 * (int(q) % 2) for q, v in a.items()}
    t = paired_ttest(a, b)
    assert t.n == 30 and t.mean_diff == pytest.approx(0.055) and t.p_value < 1e-6
    same = paired_ttest(a, a)
    assert same.p_value == 1.0


def test_compare_table_marks_significance(data_dir):
    run = read_run(data_dir / "dl19/bm25.trec")
    qrels = read_qrels(data_dir / "dl19/qrels.txt")
    reversed_run = Run({q: Ranking.from_order(q, list(reversed(r.docids))) for q, r in run.items()})
    table = compare({"bm25": run, "reversed": reversed_run}, qrels, ["nDCG@10"])
    lines = table.splitlines()
    assert lines[2].split()[:2] == ["bm25", "0.5058"]
    assert lines[3].split()[1].endswith("-")  # significantly worse
    assert "paired t-test vs bm25" in table


def test_cli_eval_prints_anserini_numbers(data_dir, capsys):
    rc = main(["eval", str(data_dir / "dl19/bm25.trec"), "--qrels", str(data_dir / "dl19/qrels.txt"),
               "-m", "nDCG@10", "-m", "R(rel=2)@100"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "0.5058" in out and "0.4910" in out


def test_cli_eval_bad_run_names_file_and_line(tmp_path, data_dir, capsys):
    bad = tmp_path / "bad.trec"
    bad.write_text("264014 Q0 5611210 1 15.78\n")
    rc = main(["eval", str(bad), "--qrels", str(data_dir / "dl19/qrels.txt")])
    assert rc == 2
    assert "bad.trec:1" in capsys.readouterr().err


def test_cli_convert_rankllm(data_dir, tmp_path):
    out = tmp_path / "run.trec"
    assert main(["convert", "rankllm", str(data_dir / "dl19/rank_llm_retrieve_results.json"), str(out)]) == 0
    got, want = read_run(out), read_run(data_dir / "dl19/bm25.trec")
    assert {q: r.docids for q, r in got.items()} == {q: r.docids for q, r in want.items()}
    assert all(abs(a.score - b.score) < 1e-5 for q in got for a, b in zip(got[q], want[q]))  # JSON holds float32
    back = tmp_path / "back.json"
    assert main(["convert", "run", str(out), str(back), "--to", "rankllm", "--queries", "dl19", "--corpus", "dl19"]) == 0
    assert back.stat().st_size > 1_000_000
