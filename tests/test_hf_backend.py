"""The hf backend: prefix families, batching/padding invariance, fp32 head, generation, LoRA folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rankstack.rerankers.backends.base import Prompt, SamplingParams
from rankstack.rerankers.backends.hf import HFBackend, _common_prefix_len

SYSTEM = "You judge search results. Read the query and the passage."
QUERIES = ["what is the capital of france", "how do bees make honey", "symptoms of the flu"]
PASSAGES = ["Paris.", "Bees collect nectar and store it in wax cells where it thickens into honey over weeks.",
            "Influenza brings fever, cough, sore throat and aching muscles.", "The Eiffel tower is tall.",
            "Honey is sweet and sticky; it keeps for years in a sealed jar because of its low water content."]


def _prompts():
    return [Prompt.chat(f"Query: {q}\nPassage: {p}\n\nRelevant? Answer Yes or No.", system=SYSTEM)
            for q in QUERIES for p in PASSAGES]


@pytest.fixture(scope="module")
def tiny(tiny_lm):
    model, tok = tiny_lm
    return HFBackend(model="tiny-llama", model_obj=model, tokenizer=tok, batch_size=4)


def test_plan_groups_prompts_by_query_prefix(tiny):
    enc = tiny.encode_many(_prompts())
    plan = tiny._plan(enc)
    assert sorted(i for idx, _ in plan for i in idx) == list(range(15))
    shared = [(idx, n) for idx, n in plan if n]
    assert sum(len(idx) for idx, _ in shared) == 15  # every prompt runs against its query's prefix
    for idx, n in shared:
        assert len({i // len(PASSAGES) for i in idx}) == 1  # one query per batch
        q = idx[0] // len(PASSAGES)
        family = [enc[i] for i in range(q * len(PASSAGES), (q + 1) * len(PASSAGES))]
        assert n == _common_prefix_len(family) >= 25  # system prompt + query, all of it
        lens = [len(enc[i]) for i in idx]
        assert lens == sorted(lens) and len(idx) <= 4
    tiny.prefix_reuse = False
    try:
        assert all(n == 0 for _, n in tiny._plan(enc))
    finally:
        tiny.prefix_reuse = True


def test_prefix_reuse_and_padding_do_not_change_scores(tiny):
    prompts = _prompts()
    cands = ("yes", "no", " Yes", "1")
    tiny.batch_size, tiny.prefix_reuse = 1, False
    try:
        ref = np.stack([tiny.next_token_logprobs([p], cands)[0] for p in prompts])  # one prompt, no padding
        for bs in (3, 16):
            tiny.batch_size, tiny.prefix_reuse = bs, False
            padded = tiny.next_token_logprobs(prompts, cands)
            tiny.prefix_reuse = True
            shared = tiny.next_token_logprobs(prompts, cands)
            assert np.abs(padded - ref).max() < 1e-4
            assert np.abs(shared - ref).max() < 1e-4
    finally:
        tiny.batch_size, tiny.prefix_reuse = 4, True
    assert ref.dtype == np.float32 and np.all(ref < 0)


def test_full_vocab_logprobs_are_a_distribution(tiny):
    full = tiny.next_token_logprobs_full(_prompts()[:5])
    assert full.shape == (5, tiny.model.config.vocab_size)
    assert np.allclose(np.exp(full.astype(np.float64)).sum(1), 1.0, atol=1e-3)
    pick = tiny.next_token_logprobs(_prompts()[:5], ("yes",))
    assert np.allclose(full[:, tiny.token_id("yes")], pick[:, 0], atol=1e-5)


def test_candidate_must_be_one_token(tiny):
    from rankstack.rerankers.backends.base import BackendError

    with pytest.raises(BackendError):
        tiny.next_token_logprobs(_prompts()[:1], ("10",))  # '1' '0' in SmolLM2's tokenizer


def test_bf16_decoder_keeps_fp32_head(tiny_lm):
    model, tok = tiny_lm
    import copy

    m16 = copy.deepcopy(model).to(torch.bfloat16)
    be16 = HFBackend(model="tiny-llama", model_obj=m16, tokenizer=tok, batch_size=4)
    be32 = HFBackend(model="tiny-llama", model_obj=model, tokenizer=tok, batch_size=4)
    assert be16.fingerprint() != be32.fingerprint()  # different weights, different cache identity
    a = be16.next_token_logprobs(_prompts(), ("yes", "no"))
    b = be32.next_token_logprobs(_prompts(), ("yes", "no"))
    assert a.dtype == np.float32 and np.abs(a - b).max() < 0.1
    assert be16._head_w.dtype == torch.float32
    diffs = a[:, 0] - a[:, 1]
    assert len(set(np.round(diffs, 6))) == len(diffs)  # no bf16 rounding ties


def test_generate_greedy_is_deterministic_and_consistent(tiny):
    prompts = _prompts()[:2]
    out = tiny.generate(prompts, SamplingParams(max_new_tokens=6))
    again = tiny.generate(prompts[::-1], SamplingParams(max_new_tokens=6))[::-1]
    assert [c[0].text for c in out] == [c[0].text for c in again]
    for comps in out:
        c = comps[0]
        assert len(c.token_logprobs) == len(c.tokens) <= 6 and all(lp <= 0 for lp in c.token_logprobs)
    sampled = tiny.generate(prompts[:1], SamplingParams(n=3, temperature=1.0, max_new_tokens=2, seed=1))
    assert len(sampled[0]) == 3


def test_lora_adapter_folder_loads_merged(tiny_lm, tmp_path):
    """A peft adapter folder as ``model=``: the base it names is loaded and the adapter merged."""
    from peft import LoraConfig, get_peft_model

    from rankstack.models import is_lora_adapter, load_causal_lm

    model, tok = tiny_lm
    base_dir = tmp_path / "base"
    model.save_pretrained(base_dir)
    tok.save_pretrained(base_dir)
    torch.manual_seed(1)
    peft_model = get_peft_model(load_causal_lm(str(base_dir))[0],
                                LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    assert is_lora_adapter(str(adapter)) and not is_lora_adapter(str(base_dir))

    ids = tok("Query: bees\nPassage: honey", return_tensors="pt")
    with torch.inference_mode():
        want = peft_model(**ids).logits[0, -1]
        base_out = model(**ids).logits[0, -1]
    merged, tok2 = load_causal_lm(str(adapter))
    with torch.inference_mode():
        got = merged(**ids).logits[0, -1]
    assert torch.allclose(got, want, atol=1e-4) and not torch.allclose(got, base_out, atol=1e-3)
    be = HFBackend(model=str(adapter), batch_size=2)
    assert str(adapter) in be.fingerprint() and be.next_token_logprobs(_prompts()[:2], ("yes",)).shape == (2, 1)


def test_auto_dtype_follows_the_cpu_flags(tiny_lm, tmp_path, monkeypatch):
    """dtype="auto" on CPU: bf16 where the CPU has avx512_bf16 or amx_bf16, fp32 elsewhere; a model object
    passed in keeps its own dtype."""
    from rankstack import hardware

    assert hardware.cpu_flags() == hardware._cpuinfo()[1] and isinstance(hardware.describe(), str)
    for flags, want in ((["avx2", "fma"], "float32"), (["avx2", "avx512f", "avx512_bf16"], "bfloat16"),
                        (["amx_bf16", "amx_tile"], "bfloat16"), ([], "float32")):
        monkeypatch.setattr(hardware, "_cpuinfo", lambda flags=flags: ("test CPU", frozenset(flags)))
        assert hardware.default_cpu_dtype() == want
    model, tok = tiny_lm
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    monkeypatch.setattr(hardware, "_cpuinfo", lambda: ("test CPU", frozenset({"avx512_bf16"})))
    be = HFBackend(model=str(tmp_path / "m"), device="cpu")
    assert be.dtype == torch.bfloat16 and next(be.model.parameters()).dtype == torch.bfloat16
    assert be.fingerprint().endswith(":bfloat16")
    monkeypatch.setattr(hardware, "_cpuinfo", lambda: ("test CPU", frozenset({"avx2"})))
    assert HFBackend(model=str(tmp_path / "m"), device="cpu").dtype == torch.float32
    assert HFBackend(model=str(tmp_path / "m"), device="cpu", dtype="bfloat16").dtype == torch.bfloat16
    assert HFBackend(model="tiny", model_obj=model, tokenizer=tok).dtype == torch.float32  # as the object is


def test_token_budget_cuts_batches_without_changing_scores(tiny):
    prompts, cands = _prompts(), ("yes", "no")
    enc = tiny.encode_many(prompts)
    ref = tiny.next_token_logprobs(prompts, cands)
    tiny.batch_size, tiny.max_batch_tokens = 64, 160
    try:
        plan = tiny._plan(enc)
        assert sorted(i for idx, _ in plan for i in idx) == list(range(len(prompts)))
        for idx, n in plan:  # padded width (plus the prefix attended to) x prompts within the budget
            assert len(idx) == 1 or max(len(enc[i]) - n for i in idx) * len(idx) + n * len(idx) <= 160
        assert max(len(idx) for idx, _ in plan) > 1 and len(plan) > len(QUERIES)
        got = tiny.next_token_logprobs(prompts, cands)
    finally:
        tiny.batch_size, tiny.max_batch_tokens = 4, None
    assert np.abs(got - ref).max() < 1e-4


def test_sdpa_attention_and_forward_counts(tiny):
    from collections import Counter

    assert tiny.model.config._attn_implementation == "sdpa"
    assert tiny.batch_size == 4 and tiny.max_batch_tokens is None  # CPU defaults (no token budget)
    prompts = _prompts()
    enc = tiny.encode_many(prompts)
    tiny.prefix_reuse = False
    try:
        before = Counter(tiny.stats)
        tiny.next_token_logprobs(prompts, ("yes",))
        d = Counter(tiny.stats)
        d.subtract(before)
    finally:
        tiny.prefix_reuse = True
    assert d["forward_tokens"] == sum(map(len, enc))  # every token once, padding apart
    assert d["padded_tokens"] >= d["forward_tokens"]
    assert d["attention_pairs"] == sum(len(x) * (len(x) + 1) // 2 for x in enc)
    before = Counter(tiny.stats)
    tiny.next_token_logprobs(prompts, ("yes",))
    shared = Counter(tiny.stats)
    shared.subtract(before)
    saved_tokens = saved_pairs = 0  # each query's prefix runs once instead of once per prompt
    last = None
    for idx, n in tiny._plan(enc):
        if n:
            saved_tokens += len(idx) * n
            saved_pairs += len(idx) * n * (n + 1) // 2
            if enc[idx[0]][:n] != last:
                last = enc[idx[0]][:n]
                saved_tokens -= n
                saved_pairs -= n * (n + 1) // 2
    assert saved_tokens > 0
    assert d["forward_tokens"] - shared["forward_tokens"] == saved_tokens
    assert d["attention_pairs"] - shared["attention_pairs"] == saved_pairs


def test_generate_trims_the_stop_string_tokens(smollm2):
    from rankstack.rerankers.backends.base import tokens_for_text

    tok = smollm2.tokenizer
    dec = lambda ids: tok.decode(ids, skip_special_tokens=True)  # noqa: E731
    ids = tok("The answer is 7</answer> and more", add_special_tokens=False)["input_ids"]
    k = tokens_for_text(dec, ids + [tok.eos_token_id], "The answer is 7")
    assert dec(ids[:k]) == "The answer is 7" and k < len(ids)
    assert tokens_for_text(dec, ids + [tok.eos_token_id], dec(ids)) == len(ids)  # end-of-sequence dropped
    out = smollm2.generate([Prompt.chat("Count from 1 to 9, separated by commas.")],
                           SamplingParams(max_new_tokens=24, stop=("5",)))[0][0]
    assert "5" not in out.text and len(out.tokens) == len(out.token_logprobs)
    assert tok.convert_tokens_to_string(out.tokens).startswith(out.text) and "5" not in tok.convert_tokens_to_string(out.tokens)


def test_generation_batches_respect_the_token_budget(tiny):
    lengths = [30, 10, 50, 20, 40]
    p = SamplingParams(n=2, temperature=1.0, max_new_tokens=20)
    assert tiny._generate_batches(lengths, p) == [(0, [1, 3]), (2, [0, 4]), (4, [2])]  # 4 sequences a batch
    tiny.max_batch_tokens = 170
    try:
        batches = tiny._generate_batches(lengths, p)
    finally:
        tiny.max_batch_tokens = None
    assert [i for _, b in batches for i in b] == [1, 3, 0, 4, 2]
    assert [off for off, _ in batches] == [0, 2, 3, 4]  # offsets (the seeds) follow the sorted order
    for _, b in batches:  # KV tokens: (prompt width + new tokens) x sequences
        assert len(b) == 1 or (max(lengths[i] for i in b) + 20) * len(b) * 2 <= 170


def test_token_memo_tokenizes_each_text_once_keeps_order_and_stays_bounded():
    from rankstack.rerankers.backends.base import TokenMemo

    calls = []

    def tokenize(keys):
        calls.append(list(keys))
        return [[len(k)] * len(k) for k in keys]

    memo = TokenMemo(capacity=2)
    assert memo.lookup(["ab", "c", "ab"], tokenize) == [[2, 2], [1], [2, 2]]
    assert calls == [["ab", "c"]]  # one batch, duplicates once
    got = memo.lookup(["c"], tokenize)
    got.append(99)  # callers get their own lists
    assert memo.lookup(["c"], tokenize) == [[1]] and len(calls) == 1
    memo.lookup(["xyz"], tokenize)  # evicts the least recently used ("ab")
    memo.lookup(["ab"], tokenize)
    assert calls[-1] == ["ab"] and memo.misses == 4 and memo.hits == 3
    off = TokenMemo(capacity=0)
    off.lookup(["a"], tokenize)
    off.lookup(["a"], tokenize)
    assert off.misses == 2  # capacity 0: the old behaviour, every lookup tokenizes


def test_count_then_truncate_tokenizes_a_passage_once(tiny):
    from rankstack.rerankers.backends.base import token_memo

    text = PASSAGES[4] + " " + PASSAGES[1]
    memo = token_memo(tiny)
    before = memo.misses
    n = tiny.count_tokens(text)
    cut = tiny.truncate(text, n // 2)
    assert memo.misses - before == 1
    ids = tiny.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert cut == tiny.tokenizer.decode(ids[: n // 2], skip_special_tokens=True) and n == len(ids)
    assert tiny.truncate(text, n) == text
