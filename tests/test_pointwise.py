"""Pointwise rerankers on the real SmolLM2-135M-Instruct (and the tiny model for generation).

The zero-shot 135M model barely discriminates (METHODS.md): the hand-picked pairs below are
grade-3 DL19 passages against the grade-3 passage of another query, where it does get the
order right, by a margin (0.18 to 0.89 log-odds) far beyond the ~1e-4 by which fp32 kernels differ
between CPUs; on e.g. 'who is robert gray' it does not (not asserted).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from rankstack.errors import RankstackError
from rankstack.rerankers import load_reranker
from rankstack.rerankers.backends.base import Completion
from rankstack.rerankers.engine import rerank_queries
from rankstack.rerankers.pointwise import DIGITS, NO_FORMS, YES_FORMS, PointwiseReranker, erank_score
from rankstack.types import Doc, Query

from _scripted import ScriptedBackend

# query -> (relevant grade-3 passage, off-topic passage: grade 3 for another query)
PAIRS = {"1110199": ("8160524", "128984"),  # wifi vs bluetooth | hydrogen liquid temperature
         "1129237": ("128984", "1289489"),  # hydrogen liquid temperature | exons definition
         "183378": ("1289489", "3641634")}  # exons definition | robert gray


MIN_MARGIN = 0.1  # log-odds

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pair(dl19, q):
    good, bad = PAIRS[q]
    return dl19.queries[q], [dl19.corpus.get(good), dl19.corpus.get(bad)]


@pytest.mark.parametrize("method,qids", [("yesno", ["1110199", "1129237"]),
                                         ("prorank", ["1110199", "1129237"])])
def test_relevant_passage_outscores_irrelevant(smollm2, dl19, method, qids):
    rr = load_reranker("pointwise", backend=smollm2, method=method, cache=False, progress=False, max_doc_tokens=64)
    assert isinstance(rr, PointwiseReranker) and rr.method == method
    for q in qids:
        query, docs = _pair(dl19, q)
        s = rr.rerank(query, docs).scores()
        # a margin far outside the kernels' noise (fp32 scores move by ~1e-4 between batch layouts and CPU
        # instruction sets), so the order holds on any CPU; measured: yes/no 0.89 and 0.18, ProRank 0.65 and 0.33
        assert s[PAIRS[q][0]] - s[PAIRS[q][1]] > MIN_MARGIN, (q, s)


def test_scores_identical_across_batch_sizes_and_padding(smollm2, dl19):
    q = "1110199"
    docs = dl19.corpus.get_many(dl19.run[q].docids[:4])
    rr = PointwiseReranker(smollm2, cache=False, progress=False, max_doc_tokens=32)
    prompts = [rr.prompt(dl19.queries[q], rr.prepare_doc(d)) for d in docs]
    cands = YES_FORMS + NO_FORMS
    bs, reuse = smollm2.batch_size, smollm2.prefix_reuse
    try:
        smollm2.batch_size, smollm2.prefix_reuse = 1, False
        ref = np.stack([smollm2.next_token_logprobs([p], cands)[0] for p in prompts])
        smollm2.batch_size = 3  # left padding, length-sorted
        padded = smollm2.next_token_logprobs(prompts, cands)
        smollm2.batch_size, smollm2.prefix_reuse = 8, True  # one batch against the query's prefix KV
        shared = smollm2.next_token_logprobs(prompts, cands)
    finally:
        smollm2.batch_size, smollm2.prefix_reuse = bs, reuse
    assert np.abs(padded - ref).max() < 1e-4 and np.abs(shared - ref).max() < 1e-4
    scores = rr.rerank(dl19.queries[q], docs[:2]).scores()
    for d, row in zip(docs[:2], ref):  # the reranker's score is the logsumexp yes/no log-odds
        want = np.logaddexp.reduce(row[:4].astype(np.float64)) - np.logaddexp.reduce(row[4:].astype(np.float64))
        assert scores[d.docid] == pytest.approx(want, abs=1e-4)


def test_score10_two_token_ten(smollm2, dl19):
    q = "1129237"
    query, docs = _pair(dl19, q)
    docs = docs[:1]
    exact = PointwiseReranker(smollm2, method="score10", cache=False, progress=False, max_doc_tokens=24)
    approx = PointwiseReranker(smollm2, method="score10", ten="approx", cache=False, progress=False, max_doc_tokens=24)
    p = exact.prompt(query, exact.prepare_doc(docs[0]))
    ids = smollm2.encode(replace(p, assistant_prefix=p.assistant_prefix + "1"))
    assert smollm2.tokenizer.convert_ids_to_tokens(ids[-3:]) == ["answer", ">", "1"]  # '1' is its own token
    digits = smollm2.next_token_logprobs([p], DIGITS)[0].astype(np.float64)
    q0 = math.exp(smollm2.next_token_logprobs([replace(p, assistant_prefix=p.assistant_prefix + "1")], ("0",))[0, 0])
    pk = np.exp(digits)
    want = (np.dot(np.arange(10), pk) + pk[1] * q0 * 9) / pk.sum()
    ranked, stats = rerank_queries(exact, {query.qid: query}, {query.qid: docs})
    got_exact = ranked[query.qid].scores()
    got_approx = approx.rerank(query, docs).scores()
    assert got_exact[docs[0].docid] == pytest.approx(want, abs=1e-3)
    assert got_approx[docs[0].docid] == pytest.approx(np.dot(np.arange(10), pk) / pk.sum(), abs=1e-3)
    for d in docs:
        assert 0 <= got_approx[d.docid] <= got_exact[d.docid] <= 10
    assert stats.counts["score10_two_token"] == 1


def test_erank_score():
    def comp(tokens, lps):
        return Completion("".join(t.replace("Ġ", " ") for t in tokens), lps, tokens)

    c = comp(["<", "think", ">", "Ġok", "</", "think", "><", "answer", ">", "7", "</", "answer", ">"],
             [-0.1] * 9 + [-0.5, -0.1, -0.1, -0.1])
    s, status = erank_score(c)
    assert status == "ok" and s == pytest.approx(7 * math.exp(-0.5))
    c10 = comp(["<", "answer", ">", "Ġ", "1", "0", "Ġ", "</", "answer", ">"], [0, 0, 0, 0, -0.2, -0.3, 0, 0, 0, 0])
    assert erank_score(c10) == (pytest.approx(10 * math.exp(-0.5)), "ok")  # both digit tokens count
    assert erank_score(Completion("<think>hmm</think> no answer"))[1] == "fallback"
    assert erank_score(Completion("<think>x</think><answer>12</answer>", [], []))[0] == 10.0  # clamped, Pr unknown
    assert erank_score(Completion("<think>x</think><answer>12</answer>", [], []))[1] == "clamped"
    assert erank_score(Completion("<answer>4</answer>", [], []))[1] == "no_logprob"


def test_erank_generation_falls_back_and_counts(tiny_lm, dl19):
    from rankstack.rerankers.backends.hf import HFBackend

    model, tok = tiny_lm
    be = HFBackend(model="tiny-llama", model_obj=model, tokenizer=tok, batch_size=4)
    rr = PointwiseReranker(be, method="erank", max_new_tokens=4, cache=False, progress=False, max_doc_tokens=16)
    q = Query("q", "what is a flea")
    out, stats = rerank_queries(rr, {"q": q}, {"q": [Doc("0", "Fleas are insects."), Doc("1", "Bananas are yellow.")]})
    assert out["q"].scores() == {"0": 0.0, "1": 0.0}  # a random model writes no <answer>: score 0, counted
    assert stats.parse_counts == {"parse_fallback": 2} and stats.generated_tokens > 0


def overlap_judge(prompt):
    """An ERank-format answer from the prompt itself: n = query words found in the document (at most
    10), written as ``<think>..</think><answer>n</answer>`` with its digit tokens at log-prob -0.25 each."""
    user = prompt.messages[-1][1]
    query = user.split("Here is the query: ")[1].split("\n")[0].lower().split()
    doc = set(user.split("Here is the document: ")[1].split("\n")[0].lower().split())
    n = min(10, sum(w in doc for w in query))
    pieces = ["<", "think", ">", "Ġcounted", "</", "think", "><", "answer", ">", *str(n), "</", "answer", ">"]
    lps = [-0.1] * 9 + [-0.25] * len(str(n)) + [-0.1] * 3
    return Completion("".join(p.replace("Ġ", " ") for p in pieces), lps, pieces)


def test_erank_success_path_scores_n_times_its_probability():
    """ERank through the engine on parseable output: score = n x Pr(n), Pr the product of the score's
    digit-token probabilities (two tokens for 10), nothing counted as a fallback."""
    docs = ["a flea is an insect", "cars have wheels", "what is a flea? a flea is what this is about",
            "is a flea what it is"]
    rr = PointwiseReranker(ScriptedBackend(overlap_judge), method="erank", cache=False, progress=False)
    q = Query("q", "what is a flea")
    out, stats = rerank_queries(rr, {"q": q}, {"q": [Doc(str(i), t) for i, t in enumerate(docs)]})
    r = out["q"]
    want = {"0": 3 * math.exp(-0.25), "1": 0.0, "2": 4 * math.exp(-0.25), "3": 4 * math.exp(-0.25)}
    assert r.scores() == pytest.approx(want)
    assert r.docids[:2] == ["2", "3"] and r.docids[-1] == "1"  # ties keep input order
    assert stats.parse_counts == {}
    ten = PointwiseReranker(ScriptedBackend(overlap_judge), method="erank", cache=False, progress=False)
    q = " ".join(f"w{i}" for i in range(12))
    assert ten.rerank(q, [q]).scores()["0"] == pytest.approx(10 * math.exp(-0.5))  # "1", "0": both digits


def test_options_and_errors(smollm2):
    with pytest.raises(RankstackError):
        PointwiseReranker(smollm2, method="pairwise")
    with pytest.raises(RankstackError):
        PointwiseReranker(smollm2, method="score10", ten="three")
    rr = PointwiseReranker(smollm2, instruction="Is it relevant? Yes or No.", system="")
    p = rr.prompt(Query("q", "q"), Doc("d", "text"))
    assert dict(p.messages)["user"].endswith("Is it relevant? Yes or No.") and "system" not in dict(p.messages)
    assert smollm2.render(p).startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    pr = PointwiseReranker(smollm2, method="prorank").prompt(Query("q", "q"), Doc("d", "text"))
    assert smollm2.render(pr).endswith("Relevance:<|im_end|>\n<|im_start|>assistant\n")
    with pytest.raises(RankstackError):
        load_reranker("nonexistent")
