"""FIRST: identifier tokens per tokenizer, one forward pass per window, letter logits, ties."""

from __future__ import annotations

import string
from collections import Counter

import numpy as np
import pytest

from rankstack.errors import RankstackError
from rankstack.rerankers.backends.hf import HFBackend
from rankstack.rerankers.base import LogprobRequest
from rankstack.rerankers.engine import rerank_queries
from rankstack.rerankers.first import FirstReranker, identifier_paths, plan_requests
from rankstack.types import Doc, Query, Run

LETTERS = list(string.ascii_uppercase[:20])


def _paths_for(tok, base_text):
    return identifier_paths(lambda t: tok(t, add_special_tokens=False)["input_ids"], lambda i: tok.decode([i]),
                            base_text, LETTERS)


def test_smollm2_tokenizer_splits_brackets_so_we_append_bracket_and_read_letters(tiny_lm):
    model, tok = tiny_lm  # SmolLM2's tokenizer
    be = HFBackend(model_obj=model, tokenizer=tok)
    rr = FirstReranker(be, cache=False)
    prefix, plan, paths = rr.identifier_plan(20)
    assert paths == [("[", c) for c in LETTERS]
    assert prefix == "[" and plan == {"": LETTERS}  # one request, one forward pass per window


@pytest.fixture(scope="module")
def merged_tokenizer():
    """A byte-level BPE tokenizer with a Qwen2.5-style pre-tokenizer (a punctuation mark may join the
    letters after it), trained so that '[A'..'[T' merge except '[O' and '[Q' — Qwen2.5's case."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+"),
                             behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    merged = [c for c in LETTERS if c not in "OQ"]
    corpus = ["\n".join(f"[{c}] passage" for c in merged)] * 200 + ["passage about the query O Q"] * 5
    trainer = trainers.BpeTrainer(vocab_size=400, min_frequency=2, special_tokens=["<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>", pad_token="<eos>")


def test_merged_tokenizer_scores_merged_tokens_and_splits_only_where_the_tokenizer_does(merged_tokenizer):
    paths = _paths_for(merged_tokenizer, "assistant:\n")
    assert paths[0] == ("[A",) and paths[LETTERS.index("O")] == ("[", "O") and paths[LETTERS.index("Q")] == ("[", "Q")
    prefix, plan = plan_requests(paths)
    assert prefix == ""  # nothing appended: '[A' is produced as one token
    assert plan[""][:3] == ["[A", "[B", "[C"] and "[" in plan[""] and plan["["] == ["O", "Q"]


def test_merged_tokenizer_end_to_end_exact_scores(merged_tokenizer):
    """With a merged tokenizer a window costs two requests (prefix '' and '['); the score of a split
    letter is log p('[') + log p('O' | '['), of a merged one log p('[A')."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(merged_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096)
    be = HFBackend(model_obj=LlamaForCausalLM(cfg).eval(), tokenizer=merged_tokenizer)
    rr = FirstReranker(be, window=20, max_passage_tokens=None, cache=False, progress=False)
    docs = [Doc(str(i), f"passage {i}") for i in range(20)]
    stats = Counter()
    reqs = rr.window_requests(Query("q", "query"), docs, stats)
    assert [r.prompt.assistant_prefix for r in reqs] == ["", "["]
    rows = [rr.execute([r])[0] for r in reqs]  # the engine groups requests by candidate set
    order = rr.window_order(rows, 20, stats)
    a = be.next_token_logprobs([reqs[0].prompt], ["[A", "["])[0]
    o = be.next_token_logprobs([reqs[1].prompt], ["O"])[0]
    scores = {0: a[0], LETTERS.index("O"): a[1] + o[0]}
    assert (order.index(0) < order.index(14)) == (scores[0] > scores[14])
    assert sorted(order) == list(range(20))


def test_real_smollm2_window_is_one_forward_pass_of_letter_logits(smollm2, dl19):
    """Scores are the logits of 'A'..'T' after the chat template + '[' (checked against the raw model)."""
    import torch

    qid = sorted(dl19.run)[0]
    rr = FirstReranker(smollm2, max_passage_tokens=8, cache=False, progress=False)
    docs = [rr.prepare_doc(d) for d in dl19.corpus.get_many(dl19.run[qid].top(20).docids)]
    stats = Counter()
    reqs = rr.window_requests(dl19.queries[qid], docs, stats)
    assert len(reqs) == 1 and isinstance(reqs[0], LogprobRequest)
    assert reqs[0].prompt.assistant_prefix == "[" and reqs[0].candidates == tuple(LETTERS)
    order = rr.window_order(rr.execute(reqs), 20, stats)
    tok = smollm2.tokenizer
    text = smollm2.render(reqs[0].prompt)
    assert text.endswith("<|im_start|>assistant\n[")
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        logits = smollm2.model(input_ids=ids).logits[0, -1].float()
    letter_ids = [tok.convert_tokens_to_ids(c) for c in LETTERS]
    expected = sorted(range(20), key=lambda j: -float(logits[letter_ids[j]]))
    raw = np.array([float(logits[i]) for i in letter_ids])
    # same order up to float noise between batched/unbatched kernels: compare where scores differ clearly
    for a, b in zip(order, order[1:]):
        assert raw[a] >= raw[b] - 1e-3
    assert raw[order[0]] >= raw.max() - 1e-3
    if raw[expected[0]] - raw[expected[1]] > 1e-2:  # a clear winner (measured: 0.81 nats) is the same one
        assert order[0] == expected[0]


def test_ties_keep_window_order(tiny_lm):
    model, tok = tiny_lm
    rr = FirstReranker(HFBackend(model_obj=model, tokenizer=tok), window=5, step=5, cache=False)
    assert rr.window_order([[0.0, -1.0, 0.0, -1.0, 0.5]], 5, Counter()) == [4, 0, 2, 1, 3]
    stats = Counter()
    assert rr.window_order([[float("-inf")] * 5], 5, stats) == [0, 1, 2, 3, 4]
    assert stats["first_unscored_letters"] == 5


def test_sliding_window_batches_across_queries(tiny_lm, dl19):
    model, tok = tiny_lm

    class Counting(HFBackend):
        def next_token_logprobs(self, prompts, candidates):
            self.sizes.append(len(prompts))
            return super().next_token_logprobs(prompts, candidates)

    be = Counting(model_obj=model, tokenizer=tok)
    be.sizes = []
    qids = sorted(dl19.run)[:4]
    rr = FirstReranker(be, top_k=30, max_passage_tokens=10, cache=False, progress=False)
    out = rr.rerank_run(Run({q: dl19.run[q] for q in qids}), dl19.queries, dl19.corpus, depth=100)
    assert be.sizes == [4, 4]  # windows (10, 30) then (0, 20), one per query in each call
    assert out.metadata["windows"] == 8 and out.metadata["model_requests"] == 8
    for q in qids:
        assert sorted(out[q].docids) == sorted(dl19.run[q].docids) and out[q].docids[30:] == dl19.run[q].docids[30:]


def test_shuffled_passes_aggregate_by_mean_reciprocal_rank(tiny_lm):
    model, tok = tiny_lm
    be = HFBackend(model_obj=model, tokenizer=tok)
    docs = [Doc(str(i), f"text {i}") for i in range(10)]
    rr = FirstReranker(be, window=4, step=2, passes=4, shuffle=True, seed=3, cache=False, progress=False)
    out, stats = rerank_queries(rr, {"q": Query("q", "x")}, {"q": docs})
    r = out["q"]
    assert stats.counts["windows"] == 4 * 4
    assert sorted(r.docids) == sorted(d.docid for d in docs)
    assert abs(sum(d.score for d in r.docs) - sum(1 / k for k in range(1, 11))) < 1e-9  # MRR sums per pass
    assert rr.rerank(Query("q", "x"), docs).docids == r.docids  # seeded: the same shuffles again
    other = FirstReranker(be, window=4, step=2, passes=4, shuffle=True, seed=4, cache=False, progress=False)
    assert other.rerank(Query("q", "x"), docs).docids != r.docids


def test_backend_without_logprobs_is_refused_clearly(tiny_lm):
    model, tok = tiny_lm

    class NoLogprobs(HFBackend):
        name = "openai"
        supports_logprobs = False

    with pytest.raises(RankstackError, match="log-probabilities"):
        FirstReranker(NoLogprobs(model_obj=model, tokenizer=tok))
    with pytest.raises(RankstackError, match="at most 26"):
        FirstReranker(window=27, step=10)


def test_window_prompt_measured_by_fit_is_the_prompt_run_so_it_is_tokenized_once(tiny_lm, dl19):
    from rankstack.rerankers.backends.base import token_memo

    model, tok = tiny_lm
    be = HFBackend(model_obj=model, tokenizer=tok, max_length=700)  # small context: fit_prompt must cut passages
    rr = FirstReranker(be, window=20, step=10, cache=False, progress=False)
    qid = sorted(dl19.run)[0]
    docs = [rr.prepare_doc(dl19.corpus.get(d.docid)) for d in dl19.run[qid].docs[:20]]
    stats = Counter()
    reqs = rr.window_requests(dl19.queries[qid], docs, stats)
    assert stats["prompt_shrunk"] == 1
    memo = token_memo(be)
    before = memo.misses
    ids = be.encode_many([r.prompt for r in reqs])
    assert memo.misses - before == len(reqs) - 1  # the first request's prompt is the measured one: no new tokenization
    fresh = [tok(be.render(r.prompt), add_special_tokens=False)["input_ids"] for r in reqs]
    assert ids == fresh  # the memo hands the model exactly what tokenizing again would
    assert len(ids[0]) <= be.context_length - rr.output_budget(20)
