"""The cross-encoder distillation recipe: shared-prefix sampling, ensemble teachers, the
cross-encoder trainer and the whole ``train distill --student-kind cross-encoder`` on real parts."""

from __future__ import annotations

import json
import math

import pytest

from rankstack.errors import RankstackError
from rankstack.rerankers.backends.base import Prompt, SamplingParams
from rankstack.training.teacher import EnsembleTeacher, FirstStageTeacher, RunTeacher, load_teacher
from rankstack.types import Doc, Query, Ranking, Run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- shared-prefix sampling ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_backend(tiny_lm):
    from rankstack.rerankers.backends.hf import HFBackend

    model, tok = tiny_lm
    return HFBackend(model="tiny", model_obj=model, tokenizer=tok, dtype="float32")


def _prompts():
    shots = [("user", "Write a query.\nDocument: bees make honey"), ("assistant", "how do bees make honey")]
    return [Prompt.chat(f"Write a query.\nDocument: {t}", history=shots)
            for t in ("cars have four wheels", "the stock market fell sharply today on rate fears", "snow is cold")]


def test_shared_prefix_greedy_equals_model_generate(tiny_backend):
    """Greedy decoding with the prefix run once, left padding between prefix and suffix and rows
    dropped as they stop gives exactly ``model.generate``'s tokens and log-probs."""
    import numpy as np

    from rankstack.rerankers.backends.shared_prefix_generate import SharedPrefixGenerator

    gen = SharedPrefixGenerator(tiny_backend.model, tiny_backend.tokenizer, batch_size=2)
    params = SamplingParams(temperature=0.0, max_new_tokens=12, stop=("\n",))
    prompts = _prompts()
    enc = tiny_backend.encode_many(prompts)
    ours = gen.generate(enc, params)
    ref = tiny_backend.generate(prompts, params)
    for a, b in zip(ours, ref):
        assert a[0].text == b[0].text and a[0].tokens == b[0].tokens
        np.testing.assert_allclose(a[0].token_logprobs, b[0].token_logprobs, atol=1e-4)
    from rankstack.rerankers.backends.shared_prefix_generate import common_prefix_len

    n = common_prefix_len(enc)
    assert n > 10 and gen.tokens["prefix"] == n  # the few-shot prefix ran once, for both batches
    assert gen.tokens["suffix"] == sum(len(e) for e in enc) - 3 * n


def test_shared_prefix_samples_share_a_prefill_and_stop_at_newlines(tiny_backend):
    from rankstack.rerankers.backends.shared_prefix_generate import SharedPrefixGenerator

    gen = SharedPrefixGenerator(tiny_backend.model, tiny_backend.tokenizer, batch_size=8)
    enc = tiny_backend.encode_many(_prompts())
    params = SamplingParams(n=3, temperature=1.5, top_p=0.95, max_new_tokens=20, stop=("\n",), seed=1)
    out = gen.generate(enc, params)
    assert [len(c) for c in out] == [3, 3, 3]
    assert gen.tokens["prefix"] + gen.tokens["suffix"] == sum(len(e) for e in enc) - 2 * gen.tokens["prefix"]
    for comps in out:
        for c in comps:
            assert "\n" not in c.text and len(c.token_logprobs) == len(c.tokens) <= 20
            assert all(lp <= 0 for lp in c.token_logprobs)
    # a random tiny model emits a newline-bearing token now and then: such rows stop early
    finished = [c.finish_reason for cs in out for c in cs]
    assert gen.tokens["decoded"] <= 9 * 20
    assert (gen.tokens["decoded"] < 9 * 20) == ("stop" in finished)
    again = SharedPrefixGenerator(tiny_backend.model, tiny_backend.tokenizer, batch_size=8).generate(enc, params)
    assert [[c.text for c in cs] for cs in again] == [[c.text for c in cs] for cs in out]  # seeded


# --- ensemble teachers ---------------------------------------------------------------------------


def _z(vals):
    m = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / len(vals))
    return [(v - m) / sd for v in vals]


def test_ensemble_teacher_is_the_weighted_sum_of_per_query_z_scores():
    cands = Run([Ranking.from_scores("q", [("a", 12.0), ("b", 10.0), ("c", 4.0)])], name="bm25")
    other = Run([Ranking.from_scores("q", [("a", 0.1), ("b", 0.9), ("c", 0.5)])], name="dense")
    t = load_teacher([RunTeacher(other), "bm25"], weights=[0.75, 0.25])
    assert isinstance(t, EnsembleTeacher) and isinstance(t.members[1], FirstStageTeacher)
    got = t.rank(cands, {}, None, depth=3)["q"].scores()
    za, zb = _z([0.1, 0.9, 0.5]), _z([12.0, 10.0, 4.0])
    want = {d: 0.75 * x + 0.25 * y for d, x, y in zip("abc", za, zb)}
    for d in "abc":
        assert got[d] == pytest.approx(want[d], abs=1e-9)
    assert list(t.rank(cands, {}, None, depth=3)["q"].docids) == sorted(want, key=want.get, reverse=True)


def test_teacher_specs_parse_and_bad_ones_are_clear_errors(tmp_path):
    from rankstack.data.trec import write_run
    from rankstack.training.teacher import parse_weights

    t = load_teacher("dense:minilm-l6+bm25", weights=parse_weights("0.8,0.2"))
    assert isinstance(t, EnsembleTeacher) and t.weights == [0.8, 0.2] and t.name == "dense:minilm-l6+bm25"
    with pytest.raises(RankstackError, match="known reranker"):
        load_teacher("nope:model")
    with pytest.raises(RankstackError, match="2 teachers but 3 weights"):
        load_teacher("bm25+bm25", weights=[1, 2, 3])
    with pytest.raises(RankstackError, match="numbers"):
        parse_weights("0.8;x")
    path = tmp_path / "t.trec"
    write_run(Run([Ranking.from_scores("other", [("a", 1.0)])]), path)
    cands = Run([Ranking.from_scores("q", [("a", 1.0), ("b", 0.5)])])
    with pytest.raises(RankstackError, match="shares no query"):
        load_teacher(f"{path}+bm25").rank(cands, {}, None)


# --- the cross-encoder trainer -------------------------------------------------------------------


BEES = [("d0", "Bees make honey from flower nectar in the hive."), ("d1", "Honey is sweet and sticky."),
        ("d2", "A car has four wheels and an engine."), ("d3", "The stock market fell today.")]


@pytest.fixture(scope="module")
def bee_case():
    from rankstack.data.corpus import InMemoryDocStore

    queries = {f"q{i}": Query(f"q{i}", t) for i, t in enumerate(["how do bees make honey", "bees and honey",
                                                                "where does honey come from"])}
    order = ["d0", "d1", "d2", "d3"]
    teacher = Run(Ranking.from_scores(q, [(d, 3.0 - i) for i, d in enumerate(order)]) for q in queries)
    cands = Run(Ranking.from_scores(q, [(d, float(i)) for i, d in enumerate(reversed(order))]) for q in queries)
    return queries, cands, teacher, InMemoryDocStore(Doc(d, t) for d, t in BEES)


@pytest.mark.parametrize("loss", ["listnet", "lambda", "margin_mse"])
def test_cross_encoder_student_learns_the_teachers_order_and_loads_back(bee_case, loss, tmp_path):
    from rankstack.rerankers import load_reranker
    from rankstack.rerankers.registry import save_options
    from rankstack.training.cross_encoder import cross_encoder_examples, pair_texts, train_cross_encoder

    queries, cands, teacher, corpus = bee_case
    ds = cross_encoder_examples(queries, cands, teacher, corpus, loss=loss, list_size=4, n_top=1, depth=4)
    assert len(ds) == 3 and len(pair_texts(ds)) == 12
    res = train_cross_encoder(ds, model="minilm-l6", output_dir=str(tmp_path / "ce"), loss=loss, epochs=15,
                              learning_rate=2e-4, batch_size=3, max_length=32, bf16=False, warmup_ratio=0.0,
                              logging_steps=1)
    losses = res.losses()
    assert losses[-1] < losses[0], losses
    assert res.tokens > 0 and (tmp_path / "ce" / "config.json").exists()
    save_options(tmp_path / "ce", "cross_encoder", {"max_length": 32})
    rr = load_reranker("cross_encoder", model=str(tmp_path / "ce"), cache=False, progress=False)
    assert rr.max_length == 32
    ranking = rr.rerank("how do bees make honey", [Doc(d, t) for d, t in reversed(BEES)])
    assert ranking.docids[0] == "d0" and ranking.docids[-1] in ("d2", "d3"), ranking.docids


def test_dense_student_moves_from_its_own_order_to_the_teachers_and_loads_back(bee_case, tmp_path):
    """The teacher here prefers the off-topic passages (reversed order), which the MiniLM bi-encoder
    does not: trained on the teacher's lists, the student follows the teacher."""
    from rankstack.rerankers import load_reranker
    from rankstack.rerankers.registry import save_options, saved_reranker
    from rankstack.training.cross_encoder import cross_encoder_examples
    from rankstack.training.dense_student import dense_columns, train_dense_student

    queries, cands, _, corpus = bee_case
    reverse = Run(Ranking.from_scores(q, [(d, float(i)) for i, d in enumerate(["d0", "d1", "d2", "d3"])])
                  for q in queries)
    ds = cross_encoder_examples(queries, cands, reverse, corpus, loss="listnet", list_size=4, n_top=1, depth=4)
    assert dense_columns(ds).column_names == ["query", "doc_0", "doc_1", "doc_2", "doc_3", "label"]
    docs = [Doc(d, t) for d, t in BEES]
    before = load_reranker("dense", model="minilm-l6", cache=False, progress=False).rerank("how do bees make honey", docs)
    assert before.docids[0] == "d0"
    res = train_dense_student(ds, model="minilm-l6", output_dir=str(tmp_path / "bi"), epochs=20, learning_rate=1e-4,
                              batch_size=3, max_length=32, bf16=False, warmup_ratio=0.0, logging_steps=1)
    losses = res.losses()
    assert losses[-1] < losses[0], losses
    save_options(tmp_path / "bi", "dense", {})
    assert saved_reranker(tmp_path / "bi") == "dense" and saved_reranker(tmp_path) is None  # how demo loads it
    after = load_reranker("dense", model=str(tmp_path / "bi"), cache=False, progress=False)
    ranking = after.rerank("how do bees make honey", docs)
    assert ranking.docids.index("d3") < ranking.docids.index("d0"), ranking.docids
    with pytest.raises(RankstackError, match="listnet rows"):
        dense_columns(cross_encoder_examples(queries, cands, reverse, corpus, loss="margin_mse", list_size=4,
                                             n_top=1, depth=4))


def test_cross_encoder_examples_bad_input(bee_case):
    from rankstack.training.cross_encoder import cross_encoder_examples

    queries, cands, teacher, corpus = bee_case
    with pytest.raises(RankstackError, match="unknown cross-encoder loss"):
        cross_encoder_examples(queries, cands, teacher, corpus, loss="nope")
    with pytest.raises(RankstackError, match="no training rows"):
        cross_encoder_examples({}, cands, teacher, corpus)
    ds = cross_encoder_examples(queries, cands, teacher, corpus, loss="listnet", list_size=3, n_top=1, depth=4,
                                temperature=0.5)
    row = ds[0]
    assert row["docs"][0] == BEES[0][1]  # the teacher's top first
    z = dict(zip([d for d, _ in BEES], _z([3.0, 2.0, 1.0, 0.0])))
    assert row["labels"][0] == pytest.approx(z["d0"] / 0.5)


# --- the whole recipe -----------------------------------------------------------------------------


@pytest.mark.slow
def test_train_distill_cross_encoder_end_to_end_with_a_second_round(tmp_path):
    """``rankstack train distill`` (cross-encoder student, the default) on a tiny budget: SmolLM2
    writes two queries per passage, an ensemble teacher (MiniLM + BM25) ranks and filters, a
    MiniLM cross-encoder trains with ListNet; round 2 is taught by the round-1 student fused with
    the teacher on fresh passages. Every file is kept, both students load, a rerun does nothing."""
    from rankstack.cli import main
    from rankstack.rerankers import load_reranker

    out = tmp_path / "ce"
    args = ["train", "distill", "--corpus", "dl19", "--teacher", "dense:minilm-l6+bm25", "--teacher-weights",
            "0.8,0.2", "--n-queries", "5", "--samples", "2", "--val-queries", "2", "--depth", "8", "--keep-top", "8",
            "--group-size", "4", "--max-length", "48", "--gen-passage-tokens", "48", "--dtype", "float32",
            "--rounds", "2", "--out", str(out)]
    assert main(args) == 0
    for f in ("generated.tsv", "candidates.trec", "teacher.trec", "queries.tsv", "examples.jsonl",
              "model/config.json", "model/rankstack_reranker.json", "summary.json", "round2/model/config.json",
              "round2/teacher.trec", "round2/summary.json"):
        assert (out / f).exists(), f
    s = json.loads((out / "summary.json").read_text())
    gen = s["generation"]
    assert gen["sampled"] == 5 and gen["generated"] == 10 and gen["prefill_tokens"] > 0
    assert gen["decoded_tokens"] > 0 and gen["tokens_per_second"] > 0
    assert s["filter"]["queries"] == gen["kept"] - 2  # the held-out queries are never trained on
    assert s["validation"]["queries"] == 2 and 0 <= s["validation"]["student_mrr10_source"] <= 1
    assert s["pairs"] == 4 * s["examples"] and s["training"]["tokens"] > 0
    first = set((out / "generated.qrels").read_text().split())
    second = set((out / "round2" / "generated.qrels").read_text().split())
    docs = lambda lines: {x for x in lines if not x.startswith("syn") and x not in ("0", "1")}  # noqa: E731
    assert not docs(first) & docs(second)  # round 2 writes queries for passages round 1 did not use
    assert s["round2"]["teacher"] == "round1-student+dense:minilm-l6+bm25"
    for m in ("model", "round2/model"):
        rr = load_reranker("cross_encoder", model=str(out / m), cache=False, progress=False)
        assert rr.max_length == 48
        assert sorted(rr.rerank("how do bees make honey", ["Bees make honey.", "Cars have wheels."]).docids) == ["0", "1"]
    assert main(args) == 0  # a rerun finds every step done
    assert json.loads((out / "summary.json").read_text())["filter"] == s["filter"]


def test_distill_config_rejects_bad_kinds_and_losses():
    from rankstack.cli import main
    from rankstack.training.pipeline import DistillConfig

    with pytest.raises(RankstackError, match="student kind"):
        DistillConfig(corpus="dl19", student_kind="nope")
    cfg = DistillConfig(corpus="dl19")
    assert (cfg.student, cfg.loss, cfg.generator, cfg.max_length) == ("minilm-l6", "listnet", "smollm2-135m", 128)
    llm = DistillConfig(corpus="dl19", student_kind="llm")
    assert (llm.student, llm.loss, llm.generator) == ("smollm2-135m", "listwise", "smollm2-135m")
    assert main(["train", "distill", "--corpus", "dl19", "--loss", "listnet", "--student-kind", "llm",
                 "--out", "/nonexistent/x"]) != 0
    dense = DistillConfig(corpus="dl19", student_kind="dense")
    assert (dense.student, dense.loss, dense.learning_rate) == ("minilm-l6", "listnet", 2e-5)
    with pytest.raises(RankstackError, match="listwise distribution"):
        DistillConfig(corpus="dl19", student_kind="dense", loss="lambda")
