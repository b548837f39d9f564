"""Evaluation through ir-measures reproduces Anserini's published DL19 BM25 numbers."""

from __future__ import annotations

import pytest

from rankstack.cli import main
from rankstack.data import read_qrels, read_run
from rankstack.data.trec import qrels_to_ir_measures
from rankstack.errors import RankstackError
from rankstack.eval import compare, evaluate, paired_ttest
from rankstack.types import Ranking, Run


def test_dl19_bm25_matches_anserini(data_dir):
    """The shipped run is Anserini's BM25 (k1=0.9, b=0.4) top-100; its DL19 passage regression
    (src/main/resources/regression/dl19-passage.yaml, trec_eval -c, relevance >= 1 for the binary
    measures) publishes nDCG@10 0.5058, R@100 0.4531 and RR 0.8245."""
    run = read_run(data_dir / "dl19/bm25.trec")
    qrels = read_qrels(data_dir / "dl19/qrels.txt")
    res = evaluate(run, qrels, ["nDCG@10", "R@100", "RR"])
    assert (round(res["nDCG@10"], 4), round(res["R@100"], 4), round(res["RR"], 4)) == (0.5058, 0.4531, 0.8245)
    # TREC DL counts grade >= 2 as relevant for binary measures: R(rel=2)@100 0.4910, RR(rel=2)@10 0.7024
    res = evaluate(run, qrels, ["nDCG@10", "R(rel=2)@100", "RR(rel=2)@10"])
    assert round(res["R(rel=2)@100"], 4) == 0.4910
    assert round(res["RR(rel=2)@10"], 4) == 0.7024
    # the rel level applies to binary measures only; nDCG keeps the grades
    res2 = evaluate(run, qrels, ["nDCG@10", "R@100"], rel=2)
    assert res2["R(rel=2)@100"] == res["R(rel=2)@100"] and res2["nDCG@10"] == res["nDCG@10"]


def test_rel2_values_agree_with_a_second_tool(data_dir):
    """R(rel=2)@100 through trec_eval itself (ir-measures' pytrec_eval provider, named explicitly);
    RR(rel=2)@10 counted by hand from the run and qrels (trec_eval's recip_rank has no cutoff: it
    gives the uncut RR(rel=2), 0.7036, which is checked too)."""
    import ir_measures

    run = read_run(data_dir / "dl19/bm25.trec")
    qrels = read_qrels(data_dir / "dl19/qrels.txt")
    trec_eval = ir_measures.pytrec_eval.calc_aggregate([ir_measures.parse_measure("R(rel=2)@100")],
                                                        list(qrels_to_ir_measures(qrels)), list(run.to_ir_measures()))
    assert round(next(iter(trec_eval.values())), 4) == 0.4910
    rr = []
    for q in qrels:
        ranks = [i for i, d in enumerate(run[q].docids[:10], 1) if qrels[q].get(d, 0) >= 2]
        rr.append(1 / ranks[0] if ranks else 0.0)
    assert round(sum(rr) / len(rr), 4) == 0.7024 == round(evaluate(run, qrels, ["RR(rel=2)@10"])["RR(rel=2)@10"], 4)
    uncut = evaluate(run, qrels, ["RR(rel=2)"])["RR(rel=2)"]
    assert round(uncut, 4) == 0.7036 > 0.7024


def test_missing_query_left_out_or_zero(data_dir, caplog):
    run = read_run(data_dir / "dl19/bm25.trec")
    qrels = read_qrels(data_dir / "dl19/qrels.txt")
    full = evaluate(run, qrels, ["nDCG@10"], per_query=True)["nDCG@10"]
    dropped = Run({q: r for q, r in list(run.items())[1:]}, name="dropped")
    first = next(iter(run))
    with caplog.at_level("WARNING"):
        part = evaluate(dropped, qrels, ["nDCG@10"])["nDCG@10"]  # default: the 42 judged queries it holds
    assert part == pytest.approx((sum(full.values()) - full[first]) / 42)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "dropped holds 42 of the 43 judged queries" in warned[0] and first in warned[0]
    zero = evaluate(dropped, qrels, ["nDCG@10"], missing_as_zero=True)["nDCG@10"]  # TREC's convention
    assert zero == pytest.approx((sum(full.values()) - full[first]) / 43)
    per = evaluate(dropped, qrels, ["nDCG@10"], per_query=True, missing_as_zero=True)["nDCG@10"]
    assert len(per) == 43 and per[first] == 0.0
    with pytest.raises(RankstackError, match="no run holds a judged query"):
        evaluate(Run({}), qrels, ["nDCG@10"])


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
    assert rc == 1
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


def test_cli_eval_partial_run_scores_what_it_holds(data_dir, tmp_path, capsys):
    """A 5-query run: scored on its 5 judged queries with a note naming the 38 left out (not a 43-query
    mean with 38 zeros); --missing-as-zero gives TREC's number; a dataset name is a run too."""
    from rankstack.data.trec import write_run

    run = read_run(data_dir / "dl19/bm25.trec")
    part = tmp_path / "part.trec"
    write_run(Run({q: run[q] for q in list(run)[:5]}), part)
    qrels = read_qrels(data_dir / "dl19/qrels.txt")
    held = evaluate(Run({q: run[q] for q in list(run)[:5]}), qrels, ["nDCG@10"])["nDCG@10"]
    assert main(["eval", str(part), "--qrels", "dl19"]) == 0
    out = capsys.readouterr().out
    assert f"{held:.4f}" in out and "5 queries" in out
    assert "note: part.trec holds 5 of the 43 judged queries" in out and "left out 38" in out
    assert main(["eval", str(part), "dl19", "--qrels", "dl19", "--missing-as-zero"]) == 0
    out = capsys.readouterr().out
    assert "43 queries" in out and f"{held * 5 / 43:.4f}" in out and "0.5058" in out
    table = compare({"part": Run({q: run[q] for q in list(run)[:5]}), "bm25": run}, qrels, ["nDCG@10"])
    assert "5 queries" in table and "note: the runs hold different judged queries: part lacks 38" in table
