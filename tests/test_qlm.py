"""Query likelihood (``pointwise``, ``method="qlm"``): teacher-forced continuation log-probs in the
hf backend (checked against a plain forward pass), the reranker on the real SmolLM2, the engine's
cache, and the clear errors of backends that cannot score a continuation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rankstack.errors import RankstackError
from rankstack.rerankers import load_reranker
from rankstack.rerankers.backends import BackendError, Prompt, load_backend
from rankstack.rerankers.backends.hf import HFBackend
from rankstack.rerankers.base import LikelihoodRequest
from rankstack.rerankers.engine import rerank_queries
from rankstack.rerankers.pointwise import PointwiseReranker
from rankstack.rerankers.prompts.pointwise import QLM
from rankstack.types import Doc, Query, Ranking, Run

PASSAGES = ["Paris is the capital and largest city of France.", "Bees make honey from flower nectar.",
            "Bees make honey from flower nectar.",  # a duplicate: the shared prefix must stop before the query
            "Influenza brings fever, cough and aching muscles for about a week.", "x"]
QUERIES = ["what is the capital of france", "how do bees make honey", "flu symptoms", "q"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tiny_lm):
    model, tok = tiny_lm
    return HFBackend(model="tiny-llama", model_obj=model, tokenizer=tok, batch_size=4)


def _pairs():
    prompts = [QLM.render(document=p) for p in PASSAGES for _ in QUERIES]
    return prompts, [q for _ in PASSAGES for q in QUERIES]


def _plain(be: HFBackend, prompt: Prompt, cont: str) -> np.ndarray:
    """One sequence, one forward pass through the whole model, log-softmax over the full logits."""
    head = be.encode(prompt)
    tail = be.tokenizer(cont, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        lp = torch.log_softmax(be.model(torch.tensor([head + tail])).logits[0].float(), -1)
    return np.array([float(lp[len(head) - 1 + j, t]) for j, t in enumerate(tail)])


def test_continuation_logprobs_equal_a_plain_forward_pass(tiny):
    prompts, conts = _pairs()
    want = [_plain(tiny, p, c) for p, c in zip(prompts, conts)]
    try:
        for bs in (1, 3, 16):
            for reuse in (False, True):
                tiny.batch_size, tiny.prefix_reuse = bs, reuse
                got = tiny.continuation_logprobs(prompts, conts)
                assert [len(g) for g in got] == [len(w) for w in want]
                assert max(np.abs(g - w).max() for g, w in zip(got, want)) < 1e-4, (bs, reuse)
    finally:
        tiny.batch_size, tiny.prefix_reuse = 4, True
    encoded = [tiny.encode(p) + tiny.tokenizer(c, add_special_tokens=False)["input_ids"] for p, c in zip(prompts, conts)]
    limits = [len(tiny.encode(p)) - 1 for p in prompts]
    shared = [(idx, n) for idx, n in tiny._plan(encoded, limits) if n]
    assert shared and all(n <= min(limits[i] for i in idx) for idx, n in shared)  # never a query token
    assert all(g.dtype == np.float32 and np.all(g < 0) for g in got)
    empty = tiny.continuation_logprobs(prompts[:2], ["", conts[1]])
    assert empty[0].shape == (0,) and np.allclose(empty[1], want[1], atol=1e-4)


def test_qlm_prefers_the_passage_the_query_was_asked_about(smollm2, dl19):
    """Grade-3 passages against the grade-3 passage of another query: SmolLM2's per-token margins
    were 1.7, 2.6 and 4.9 nats (wide: any CPU keeps the order)."""
    rr = load_reranker("pointwise", backend=smollm2, method="qlm", cache=False, progress=False, max_doc_tokens=64)
    for q, (good, bad) in {"1110199": ("8160524", "128984"), "1129237": ("128984", "1289489"),
                           "183378": ("1289489", "3641634")}.items():
        r = rr.rerank(dl19.queries[q], [dl19.corpus.get(bad), dl19.corpus.get(good)])
        assert r.docids[0] == good, (q, r)
        assert -20 < r.docs[1].score < r.docs[0].score < 0  # mean log-probs per token
    text = smollm2.render(rr.prompt(dl19.queries["1110199"], Doc("d", "PASSAGE")))
    assert text.endswith("Passage: PASSAGE\nPlease write a question based on this passage.<|im_end|>\n"
                         "<|im_start|>assistant\n")


def test_qlm_score_is_the_mean_query_token_logprob_and_is_cached(tiny, tmp_path):
    rr = PointwiseReranker(tiny, method="qlm", cache=str(tmp_path / "c.sqlite"), progress=False)
    docs = [Doc(f"d{i}", p) for i, p in enumerate(PASSAGES[:4])]
    q = Query("q1", QUERIES[1])
    run = Run(name="first")
    run["q1"] = Ranking.from_order("q1", [d.docid for d in docs])
    corpus = {d.docid: d for d in docs}

    class Store(dict):
        def get_many(self, ids):
            return [self[i] for i in ids]

    out = rr.rerank_run(run, {"q1": q}, Store(corpus), depth=4)
    assert out.metadata["model_requests"] == 3 and out.metadata["cache_hits"] == 0  # d1, d2: one request
    want = {d.docid: float(np.mean(_plain(tiny, rr.prompt(q, d), q.text))) for d in docs}
    got = out["q1"].scores()
    assert all(abs(got[k] - want[k]) < 1e-4 for k in want)
    assert got["d1"] == got["d2"]  # identical passages score identically
    again = rr.rerank_run(run, {"q1": q}, Store(corpus), depth=4)
    assert again.metadata["model_requests"] == 0 and again.metadata["cache_hits"] == 4
    assert again["q1"].scores() == got
    out, stats = rerank_queries(rr, {"q2": Query("q2", "")}, {"q2": docs[:2]})
    assert stats.counts["qlm_empty_query"] == 2 and [d.score for d in out["q2"].docs] == [0.0, 0.0]
    assert LikelihoodRequest(rr.prompt(q, docs[0]), "a").key() != LikelihoodRequest(rr.prompt(q, docs[0]), "b").key()


def test_qlm_instruction_is_an_option_and_in_the_fingerprint(tiny):
    a = PointwiseReranker(tiny, method="qlm", cache=False)
    b = PointwiseReranker(tiny, method="qlm", instruction="Write a search query for this passage.", cache=False)
    assert a.fingerprint() != b.fingerprint()
    assert "Write a search query for this passage." in b.prompt(Query("q", "x"), Doc("d", "p")).messages[-1][1]
    with pytest.raises(RankstackError):
        PointwiseReranker(tiny, method="qml")


def test_backends_without_continuation_scoring_say_so():
    be = load_backend("openai", model="m", base_url="http://127.0.0.1:9/v1", max_retries=0, progress=False)
    with pytest.raises(BackendError, match="tokenizer"):  # chat mode: the prompt is not rendered here
        be.continuation_logprobs([Prompt.chat("Passage: p")], ["q"])
    with pytest.raises(BackendError):
        be.continuation_logprobs([Prompt.chat("a"), Prompt.chat("b")], ["q"])
