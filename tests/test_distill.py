"""Distillation: teachers, teacher-built examples, synthetic queries, the consistency filter, the
pointwise distillation trainer and the ``train distill`` recipe, on real DL19 files and models."""

from __future__ import annotations

import json
import math

import pytest

from rankstack.data.trec import write_run
from rankstack.errors import RankstackError
from rankstack.rerankers.prompts.listwise import identifier
from rankstack.training import synthetic as S
from rankstack.training.examples import first_examples, pointwise_examples, setwise_examples
from rankstack.training.teacher import (MissingTeacherScoreError, RunTeacher, grades_from_ranks, load_teacher,
                                        soft_targets)
from rankstack.types import Doc, Query, Ranking, Run


@pytest.fixture(scope="module")
def cands(dl19):
    """Two DL19 queries' BM25 top-20 (the candidates a teacher ranks)."""
    return Run((dl19.run[q].top(20) for q in sorted(dl19.run)[:2]), name="bm25")


@pytest.fixture(scope="module")
def reversed_teacher(cands, tmp_path_factory):
    """A teacher run file that ranks every candidate in the reverse of BM25's order."""
    run = Run((Ranking.from_order(q, list(reversed(r.docids))) for q, r in cands.items()), name="rev")
    path = tmp_path_factory.mktemp("teacher") / "teacher.trec"
    write_run(run, path)
    return path


# --- teachers and teacher-built examples -------------------------------------------------------


def test_first_window_target_is_the_teachers_permutation(dl19, cands, reversed_teacher):
    teacher = load_teacher(str(reversed_teacher)).rank(cands, dl19.queries, dl19.corpus, depth=20)
    ds = first_examples(dl19.queries, None, cands, dl19.corpus, teacher=teacher, window=20, step=20, depth=20,
                        max_passage_tokens=16)
    assert len(ds) == 2
    for row in ds:
        assert row["docids"] == cands[row["qid"]].docids  # shown in first-stage order
        assert row["completion"] == " > ".join(f"[{identifier(j, 'alpha')}]" for j in reversed(range(20)))
        assert row["teacher"] == list(range(20, 0, -1))
        assert row["grades"][-1] == 3 and row["grades"][0] == 0  # the teacher's top doc gets grade 3


def test_missing_teacher_docid_raises_with_the_docid(dl19, cands):
    q = sorted(cands)[0]
    gone = cands[q].docids[7]
    partial = Run([Ranking(q, [d for d in cands[q].docs if d.docid != gone])], name="partial")
    with pytest.raises(MissingTeacherScoreError, match=gone):
        RunTeacher(partial).rank(Run([cands[q]]), depth=20)
    with pytest.raises(MissingTeacherScoreError, match=gone):
        first_examples(dl19.queries, None, Run([cands[q]]), dl19.corpus, teacher=partial, window=20, step=20,
                       depth=20)
    dropped = RunTeacher(partial, missing="drop").rank(Run([cands[q]]), depth=20)
    assert len(dropped[q]) == 19 and dropped.metadata["teacher_docs_missing"] == 1


def test_teacher_run_with_fewer_candidates_than_the_window(dl19, cands, reversed_teacher):
    q = sorted(cands)[0]
    short = Run([cands[q].top(7)])
    teacher = load_teacher(str(reversed_teacher)).rank(short, dl19.queries, dl19.corpus, depth=20)
    assert len(teacher[q]) == 7
    ds = first_examples(dl19.queries, None, short, dl19.corpus, teacher=teacher, window=20, step=10, depth=100,
                        max_passage_tokens=16)
    assert len(ds) == 1
    assert ds[0]["completion"] == "[G] > [F] > [E] > [D] > [C] > [B] > [A]"


def test_teacher_sharing_no_query_is_an_error(dl19, cands):
    other = Run([Ranking.from_order("no-such-query", ["a", "b"])])
    with pytest.raises(RankstackError, match="shares no query"):
        RunTeacher(other).rank(cands)
    with pytest.raises(RankstackError, match="ranks none"):
        pointwise_examples(dl19.queries, None, cands, dl19.corpus, teacher=other)
    with pytest.raises(RankstackError, match="neither a run file"):
        load_teacher("not-a-file-and-no-reranker")


def test_qrels_teacher_scores_grades_and_unjudged_zero(dl19, cands):
    teacher = load_teacher("qrels:dl19")
    out = teacher.rank(cands, depth=20)
    for q, r in out.items():
        assert sorted(r.docids) == sorted(cands[q].docids)
        for d in r:
            assert d.score == dl19.qrels[q].get(d.docid, 0)
        assert [d.score for d in r] == sorted((d.score for d in r), reverse=True)
    with pytest.raises(RankstackError, match="judge none"):
        teacher.rank(Run([Ranking.from_order("nope", ["a"])]))


def test_pointwise_soft_targets_follow_the_teacher(dl19, cands, reversed_teacher):
    teacher = load_teacher(str(reversed_teacher)).rank(cands, depth=20)
    ds = pointwise_examples(dl19.queries, None, cands, dl19.corpus, teacher=teacher, group_size=6, n_top=2, seed=1,
                            max_doc_tokens=16)
    assert len(ds) == 12
    for q in cands:
        rows = [r for r in ds if r["qid"] == q]
        assert len(rows) == 6
        top = [r["docid"] for r in rows if r["kind"] == "teacher_top"]
        assert top == teacher[q].docids[:2]
        want = soft_targets(teacher[q])
        for r in rows:
            assert r["target"] == pytest.approx(want[r["docid"]])
            assert r["completion"] == ("Yes" if r["target"] >= 0.5 else "No")
            assert 0 <= r["target_bin"] <= 10
        best = max(rows, key=lambda r: r["teacher_score"])
        assert best["target_bin"] == 10 and best["label"] == 3
    # z-scores of 1..20 by rank: the top doc's yes-probability is sigmoid(1.647...)
    z_top = (20 - 10.5) / math.sqrt((20 ** 2 - 1) / 12)
    assert max(r["target"] for r in ds) == pytest.approx(1 / (1 + math.exp(-z_top)))


def test_setwise_gold_comes_from_the_teachers_ranks(dl19, cands, reversed_teacher):
    teacher = load_teacher(str(reversed_teacher)).rank(cands, depth=20)
    ds = setwise_examples(dl19.queries, None, cands, dl19.corpus, teacher=teacher, size=4, n_sets=3, depth=20,
                          max_doc_tokens=16)
    assert len(ds) > 0
    for row in ds:
        grades = grades_from_ranks(teacher[row["qid"]])
        best = max(grades[d] for d in row["docids"])
        assert [row["docids"][g - 1] for g in row["gold"]] == [d for d in row["docids"] if grades[d] == best]


# --- synthetic queries and the consistency filter ------------------------------------------------


def test_clean_and_copy_rules():
    assert S.clean_query("Relevant Query: how long do sharks live\nExample 2:") == "how long do sharks live"
    assert S.clean_query('  "why did china declare war on germany"  ') == "why did china declare war on germany"
    assert S.clean_query("") is None and S.clean_query("Query:") is None and S.clean_query("sharks") is None
    passage = "Many sharks can live for about 20 to 30 years in the wild, some far longer."
    assert S.copies_passage("many sharks can live for about 20 to 30 years", passage)
    assert not S.copies_passage("how long do sharks live in the wild", passage)
    assert S.normalise("How long, do SHARKS live?") == "how long do sharks live"


def test_consistency_filter_keeps_and_drops_on_a_constructed_case():
    syn = S.SyntheticQueries({q: Query(q, f"query {q}") for q in ("k", "t", "r", "x")},
                             {"k": "d1", "t": "d3", "r": "d9", "x": "d1"})
    cands = Run([Ranking.from_order("k", ["d1", "d2", "d3", "d4"]), Ranking.from_order("t", ["d1", "d2", "d3", "d4"]),
                 Ranking.from_order("r", ["d1", "d2"]), Ranking.from_order("x", ["d5", "d1"])])
    teacher = Run([Ranking.from_order("k", ["d2", "d1", "d3", "d4"]),  # source 2nd: kept with keep_top 2
                   Ranking.from_order("t", ["d1", "d2", "d4", "d3"]),  # source 4th: dropped
                   Ranking.from_order("r", ["d1", "d2"]),  # source d9 never retrieved: dropped
                   Ranking.from_order("x", ["d1", "d5"])])  # source first: kept
    res = S.consistency_filter(syn, cands, teacher, keep_top=2)
    assert sorted(res.kept.queries) == ["k", "x"]
    assert res.stats["dropped_teacher_disagrees"] == 1 and res.stats["dropped_source_not_retrieved"] == 1
    assert res.keep_rate == 0.5
    assert sorted(res.candidates) == sorted(res.teacher) == ["k", "x"]
    assert res.kept.qrels() == {"k": {"d1": 1}, "x": {"d1": 1}}
    with pytest.raises(RankstackError, match="kept none"):
        S.consistency_filter(syn, cands, Run([Ranking.from_order("t", ["d4", "d3"])]), keep_top=1)


def test_generate_queries_on_the_real_smollm2(smollm2, dl19, tmp_path):
    from rankstack.rerankers.cache import ScoreCache

    cache = ScoreCache(str(tmp_path / "gen.sqlite"))
    syn = S.generate_queries(dl19.corpus, smollm2, n=6, seed=3, max_new_tokens=24, max_passage_tokens=64,
                             cache=cache, progress=False)
    assert 1 <= len(syn.queries) <= 6
    texts = [q.text for q in syn.queries.values()]
    assert all(len(t.split()) >= 2 and "\n" not in t for t in texts)
    assert len({S.normalise(t) for t in texts}) == len(texts)  # deduplicated
    for qid, q in syn.queries.items():
        assert not S.copies_passage(q.text, dl19.corpus.get(syn.source[qid]).text)
    assert syn.stats["sampled"] == 6 and syn.stats["kept"] == len(texts)
    assert syn.stats["kept"] + sum(v for k, v in syn.stats.items() if k.startswith("dropped_")) == 6
    again = S.generate_queries(dl19.corpus, smollm2, n=6, seed=3, max_new_tokens=24, max_passage_tokens=64,
                               cache=cache, progress=False)
    assert again.queries == syn.queries and again.stats["model_requests"] == 0  # from the cache
    S.write_synthetic(syn, tmp_path / "q.tsv", tmp_path / "q.qrels")
    back = S.read_synthetic(tmp_path / "q.tsv", tmp_path / "q.qrels")
    assert back.queries == syn.queries and back.source == syn.source


def test_bad_generator_and_empty_corpus_are_errors(tiny_lm, dl19):
    from rankstack.rerankers.backends.hf import HFBackend

    model, tok = tiny_lm
    garbage = HFBackend(model="tiny", model_obj=model, tokenizer=tok, dtype="float32")
    with pytest.raises(RankstackError, match="no usable query"):  # one random token: never two words
        S.generate_queries(dl19.corpus, garbage, n=3, max_new_tokens=1, progress=False)
    with pytest.raises(RankstackError, match="no passage"):
        S.generate_queries([], garbage, n=3, progress=False)
    with pytest.raises(RankstackError, match="no passage"):
        S.sample_passages([Doc("a", "too short")], 2)


# --- the distillation loss and trainer ------------------------------------------------------------


def test_distill_losses_are_minimal_where_the_student_follows_the_teacher():
    import torch

    from rankstack.training.distill import distill_loss

    z = torch.tensor([[1.5, 0.5, -0.5, -1.5]])
    valid = torch.ones_like(z, dtype=torch.bool)
    target = torch.sigmoid(z)
    follow, reverse = z.clone(), -z
    for kind in ("listwise", "margin_mse", "bce"):
        assert distill_loss(follow, z, target, valid, kind) < distill_loss(reverse, z, target, valid, kind)
    assert float(distill_loss(z + 3.0, z, target, valid, "margin_mse")) == pytest.approx(0.0, abs=1e-6)
    # listwise: cross-entropy is smallest (the teacher's entropy) at scores = z / T
    ce = float(distill_loss(z / 0.5, z, target, valid, "listwise", temperature=0.5))
    p = torch.softmax(z / 0.5, -1)
    assert ce == pytest.approx(float(-(p * p.log()).sum()), abs=1e-5)
    masked = torch.tensor([[True, True, True, False]])
    assert float(distill_loss(torch.tensor([[1.5, 0.5, -0.5, 99.0]]), z, target, masked, "margin_mse")) == \
        pytest.approx(0.0, abs=1e-6)


def test_trainer_teaches_a_tiny_model_the_teachers_order(tiny_lm, tmp_path):
    """A tiny random Llama (config-built) learns to put a teacher's order on its yes/no log-odds."""
    import copy

    from datasets import Dataset

    from rankstack.rerankers.backends.hf import HFBackend
    from rankstack.rerankers.pointwise import PointwiseReranker
    from rankstack.training.distill import train_pointwise_distill

    model, tok = tiny_lm
    model = copy.deepcopy(model)
    be = HFBackend(model="tiny", model_obj=model, tokenizer=tok, dtype="float32")
    rr = PointwiseReranker(be, cache=False, progress=False)
    docs = [Doc(f"d{i}", t) for i, t in enumerate(["bees make honey from nectar", "honey is sweet",
                                                    "cars have four wheels", "the stock market fell"])]
    teacher = {"d0": 0.9, "d1": 0.7, "d2": 0.2, "d3": 0.1}
    q = Query("q", "how do bees make honey")
    rows = []
    for d in docs:
        p = rr.prompt(q, d)
        rows.append({"qid": "q", "docid": d.docid, "teacher_score": teacher[d.docid], "target": 0.5,
                     "prompt": p.as_dicts(), "assistant_prefix": p.assistant_prefix})
    before = rr.rerank(q, docs)
    res = train_pointwise_distill(Dataset.from_list(rows), model=(model, tok), output_dir=str(tmp_path / "m"),
                                  lora=False, max_steps=40, learning_rate=5e-3, groups_per_step=1, warmup=0.0,
                                  use_cpu=True, bf16=False, logging_steps=5, save_model=False)
    losses = res.losses()
    t = list(teacher.values())
    mean, sd = sum(t) / 4, (sum((v - sum(t) / 4) ** 2 for v in t) / 4) ** 0.5
    p = [math.exp((v - mean) / sd) for v in t]
    floor = -sum(x / sum(p) * math.log(x / sum(p)) for x in p)  # the teacher's entropy: the listwise optimum
    assert losses[0] - floor > 0.1 and losses[-1] - floor < 0.05, (losses, floor)
    assert res.tokens == 40 * sum(len(tok(be.render(rr.prompt(q, d)), add_special_tokens=False)["input_ids"])
                                  for d in docs)
    model.eval()
    after = PointwiseReranker(HFBackend(model="tiny2", model_obj=model, tokenizer=tok, dtype="float32"),
                              cache=False, progress=False).rerank(q, docs)
    assert after.docids == ["d0", "d1", "d2", "d3"], (before.docids, after.docids)


def test_qlm_student_scores_as_inference_does_and_learns_the_teachers_order(tiny_lm, tmp_path):
    """Query-likelihood distillation: the training score of a row is the QLM reranker's score (the
    backend's mean query log-probability, to float precision), and a tiny model learns a teacher's
    order on it."""
    import copy

    import numpy as np
    from datasets import Dataset

    from rankstack.rerankers.backends.hf import HFBackend
    from rankstack.rerankers.pointwise import PointwiseReranker
    from rankstack.training.distill import _Collator, group_examples, qlm_scores, train_pointwise_distill

    model, tok = tiny_lm
    model = copy.deepcopy(model)
    be = HFBackend(model="tiny", model_obj=model, tokenizer=tok, dtype="float32")
    rr = PointwiseReranker(be, method="qlm", cache=False, progress=False)
    docs = [Doc(f"d{i}", t) for i, t in enumerate(["cars have four wheels", "honey is sweet",
                                                    "bees make honey from nectar", "the stock market fell today"])]
    teacher = {"d2": 0.9, "d1": 0.7, "d0": 0.2, "d3": 0.1}
    rows = []
    for qid, text in (("q", "how do bees make honey"), ("r", "honey")):
        q = Query(qid, text)
        for d in docs:
            p = rr.prompt(q, d)
            rows.append({"qid": qid, "docid": d.docid, "teacher_score": teacher[d.docid], "target": 0.5,
                         "prompt": p.as_dicts(), "assistant_prefix": p.assistant_prefix, "completion": text})
    items = group_examples(Dataset.from_list(rows), tok, method="qlm")
    batch = _Collator(tok.pad_token_id)(items)  # two queries of different lengths: left padding, masks
    _, s = qlm_scores(model, batch)
    want = [be.continuation_logprobs([rr.prompt(Query(r["qid"], r["completion"]), Doc(r["docid"], t))],
                                     [r["completion"]])[0].mean()
            for r, t in zip(rows, [d.text for d in docs] * 2)]
    order = [i for it in items for i in range(len(rows)) if rows[i]["qid"] == it["qid"]]
    np.testing.assert_allclose(s.detach().numpy(), np.array(want)[order], rtol=1e-4, atol=1e-4)

    q = Query("q", "how do bees make honey")
    before = rr.rerank(q, docs)
    res = train_pointwise_distill(Dataset.from_list(rows[:4]), model=(model, tok), output_dir=str(tmp_path / "m"),
                                  method="qlm", lora=False, max_steps=40, learning_rate=5e-3, groups_per_step=1,
                                  warmup=0.0, use_cpu=True, bf16=False, logging_steps=5, save_model=False)
    losses = res.losses()
    assert losses[-1] < losses[0] - 0.1, losses
    model.eval()
    after = PointwiseReranker(HFBackend(model="tiny2", model_obj=model, tokenizer=tok, dtype="float32"),
                              method="qlm", cache=False, progress=False).rerank(q, docs)
    assert after.docids == ["d2", "d1", "d0", "d3"], (before.docids, after.docids)


# --- the whole recipe -------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_distill_end_to_end_gives_a_loadable_model(tiny_lm, tmp_path):
    """``rankstack train distill`` on a tiny budget: SmolLM2 writes the queries, MiniLM ranks, a tiny
    student trains; every intermediate file is kept and the student loads as a reranker."""
    from rankstack.cli import main
    from rankstack.rerankers import load_reranker

    model, tok = tiny_lm
    student = tmp_path / "tiny-student"
    model.save_pretrained(student)
    tok.save_pretrained(student)
    out = tmp_path / "distill"
    args = ["train", "distill", "--corpus", "dl19", "--teacher", "dense:minilm-l6", "--student-kind", "llm",
            "--student", str(student),
            "--generator", "smollm2-135m", "--n-queries", "6", "--depth", "10", "--keep-top", "10",
            "--group-size", "3", "--max-doc-tokens", "24", "--epochs", "1", "--dtype", "float32", "--out", str(out)]
    assert main(args) == 0
    for f in ("generated.tsv", "generated.qrels", "candidates.trec", "teacher.trec", "queries.tsv", "qrels.txt",
              "examples.jsonl", "model/config.json", "summary.json"):
        assert (out / f).exists(), f
    summary = json.loads((out / "summary.json").read_text())
    assert summary["filter"]["kept"] >= 1 and summary["training"]["tokens"] > 0
    rr = load_reranker("pointwise", model=str(out / "model"), cache=False, progress=False)
    assert rr.max_doc_tokens == 24 and rr.method == "yesno"  # run as it was trained (rankstack_reranker.json)
    assert load_reranker("pointwise", model=str(out / "model"), max_doc_tokens=50, cache=False).max_doc_tokens == 50
    r = rr.rerank("how do bees make honey", ["Bees make honey.", "Cars have wheels."])
    assert sorted(r.docids) == ["0", "1"]
    assert main(args) == 0  # a rerun finds every step done
    assert json.loads((out / "summary.json").read_text())["filter"] == summary["filter"]


# --- the recipe's resume and its held-out metric -------------------------------------------------


def test_held_out_agreement_is_ndcg_against_the_teachers_rank_grades_by_hand():
    """``agreement``: nDCG@10 (trec_eval's linear gain, log2 discount) against the grades the teacher's
    ranks give (rank 1 -> 3, 2-3 -> 2, 4-10 -> 1, below 0), and MRR@10 of the source passage."""
    from rankstack.training.pipeline import agreement
    from rankstack.training.teacher import teacher_qrels

    teacher = Run([Ranking.from_order("q1", ["c", "b", "a", "d"]), Ranking.from_order("q2", ["x", "y"])])
    grades = teacher_qrels(teacher)
    assert grades == {"q1": {"c": 3, "b": 2, "a": 2, "d": 1}, "q2": {"x": 3, "y": 2}}
    run = Run([Ranking.from_order("q1", ["a", "b", "c", "d"]), Ranking.from_order("q2", ["x", "y"])])
    log2 = math.log2
    dcg = 2 / log2(2) + 2 / log2(3) + 3 / log2(4) + 1 / log2(5)
    ideal = 3 / log2(2) + 2 / log2(3) + 2 / log2(4) + 1 / log2(5)
    want_ndcg = (dcg / ideal + 1.0) / 2  # q2 is in the teacher's order: 1
    source = {"q1": {"c": 1}, "q2": {"y": 1}}  # the passages the queries were written from
    got = agreement(run, grades, source)
    assert got == {"ndcg10_vs_teacher": round(want_ndcg, 4), "mrr10_source": round((1 / 3 + 1 / 2) / 2, 4)}
    assert agreement(teacher, grades, {}) == {"ndcg10_vs_teacher": 1.0}  # the teacher agrees with itself


def test_distill_steps_whose_files_exist_are_skipped(dl19, tmp_path):
    """Every step's file present: ``run_distill`` reads them and recomputes nothing; the student
    (a name that cannot load) is never loaded, no generation, teacher or training runs, and the
    earlier summary's measurements are kept."""
    from datasets import Dataset

    from rankstack.training.pipeline import DistillConfig, run_distill

    out = tmp_path / "distill"
    out.mkdir()
    qids = sorted(dl19.run)[:3]
    syn = S.SyntheticQueries({f"syn{i}": Query(f"syn{i}", dl19.queries[q].text) for i, q in enumerate(qids)},
                             {f"syn{i}": dl19.run[q].docids[0] for i, q in enumerate(qids)})
    S.write_synthetic(syn, out / "generated.tsv", out / "generated.qrels")
    cands = Run((Ranking(f"syn{i}", dl19.run[q].top(5).docs) for i, q in enumerate(qids)), name="bm25")
    write_run(cands, out / "candidates.trec")
    write_run(cands, out / "teacher.trec")  # the teacher agrees with BM25: every source is its top 1
    Dataset.from_list([{"qid": "syn0", "completion": "Yes"}] * 3).to_json(str(out / "examples.jsonl"))
    (out / "model").mkdir()
    (out / "model" / "config.json").write_text("{}")
    (out / "summary.json").write_text(json.dumps({"training": {"seconds": 12.5}, "generation": {"kept": 3}}))
    cfg = DistillConfig(corpus="dl19", student_kind="llm", student="no-such-model-anywhere", teacher="no-such-teacher:x",
                        keep_top=1)
    summary = run_distill(cfg, out, progress=False)
    assert summary["examples"] == 3 and summary["filter"]["kept"] == 3 and summary["filter"]["keep_rate"] == 1.0
    assert summary["training"] == {"seconds": 12.5} and summary["generation"] == {"kept": 3}  # earlier runs' numbers
    assert "teacher_seconds" not in summary
    assert (out / "queries.tsv").read_text().count("\n") == 3  # the filter (cheap) ran again on the files read
    assert json.loads((out / "summary.json").read_text())["examples"] == 3
