"""CPU runtimes for encoder rerankers (rankstack.rerankers.runtimes) on the real all-MiniLM-L6-v2:
int8 ONNX within tolerance of torch, the export made once and reused, clear errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rankstack.errors import RankstackError
from rankstack.rerankers import load_reranker
from rankstack.rerankers import runtimes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def export_cache(tmp_path_factory):
    """A cache root of this module's own, so the first load really exports."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("rankstack-cache")
    mp.setenv("RANKSTACK_CACHE", str(root))
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def int8(export_cache):
    return load_reranker("dense", model="minilm-l6", engine="onnx-int8", cache=False, progress=False)


@pytest.fixture(scope="module")
def fp32():
    return load_reranker("dense", model="minilm-l6", cache=False, progress=False)


def test_int8_scores_stay_within_tolerance_of_torch_on_real_minilm(int8, fp32, dl19):
    qid = sorted(dl19.run)[0]
    docs = dl19.corpus.get_many(dl19.run[qid].top(20).docids)
    want = fp32.rerank(dl19.queries[qid], docs).scores()
    got = int8.rerank(dl19.queries[qid], docs).scores()
    diff = max(abs(got[d] - want[d]) for d in want)
    assert 0 < diff < 0.05  # int8 really ran (not torch), and stays close: recorded 0.01-0.02 on AVX2
    rep = int8.engine_report
    assert rep["engine"] == "onnx-int8" and rep["rel_diff"] <= rep["tolerance"]
    assert int8.fingerprint() != fp32.fingerprint()  # int8 scores never answer a torch run from the cache
    top = sorted(want, key=want.get, reverse=True)[:5]
    assert len(set(top) & set(sorted(got, key=got.get, reverse=True)[:10])) >= 4


def test_the_export_is_made_once_and_reused(int8, export_cache):
    from pathlib import Path

    first = int8.engine_report
    path = Path(first["path"])
    assert first["export"] == "created" and path.is_file() and export_cache in path.parents
    mtime = path.stat().st_mtime_ns
    again = load_reranker("dense", model="minilm-l6", engine="onnx-int8", cache=False, progress=False)
    assert again.engine_report["export"] == "cached" and again.engine_report["path"] == str(path)
    assert path.stat().st_mtime_ns == mtime
    assert again.rerank("lobster roll", ["a lobster sandwich", "rates"]).scores() == \
        int8.rerank("lobster roll", ["a lobster sandwich", "rates"]).scores()


def test_past_the_tolerance_it_refuses_or_warns(int8, caplog):
    with pytest.raises(RankstackError, match="over engine_tolerance"):
        load_reranker("dense", model="minilm-l6", engine="onnx-int8", engine_tolerance=1e-9, cache=False,
                      progress=False)
    with caplog.at_level(logging.WARNING, logger="rankstack.rerankers.runtimes"):
        rr = load_reranker("dense", model="minilm-l6", engine="onnx-int8", engine_tolerance=1e-9,
                           engine_check="warn", cache=False, progress=False)
    assert "over engine_tolerance" in caplog.text and rr.engine_report["rel_diff"] > 1e-9


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    """A tiny config-built BERT with a score head and MiniLM's tokenizer, saved as a model folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rankstack.models import ALIASES

    tok = AutoTokenizer.from_pretrained(ALIASES["minilm-l6"]())
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, num_labels=1)
    folder = tmp_path_factory.mktemp("tiny-ce")
    BertForSequenceClassification(cfg).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def test_the_cross_encoder_exports_its_logits(export_cache, tiny_cross_encoder):
    torch_ce = load_reranker("cross_encoder", model=tiny_cross_encoder, cache=False, progress=False)
    onnx_ce = load_reranker("cross_encoder", model=tiny_cross_encoder, engine="onnx", cache=False, progress=False)
    pairs = ["a lobster roll is a sandwich", "the bank raised rates", "maine lobster on a bun"]
    a, b = torch_ce.rerank("lobster roll", pairs).scores(), onnx_ce.rerank("lobster roll", pairs).scores()
    assert np.allclose([a[k] for k in a], [b[k] for k in a], atol=1e-4)
    assert onnx_ce.engine_report["max_abs_diff"] < 1e-4


def test_an_unknown_engine_or_a_missing_runtime_names_the_extra(monkeypatch):
    with pytest.raises(RankstackError, match=r"unknown engine 'tensorrt'.*rankstack\[cpu\]"):
        load_reranker("dense", model="minilm-l6", engine="tensorrt", cache=False, progress=False)
    real = runtimes.importlib.util.find_spec
    monkeypatch.setattr(runtimes.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(RankstackError, match=r"needs onnxruntime, which is not installed: pip install 'rankstack\[cpu\]'"):
        runtimes.check_engine("onnx-int8")


def test_the_cli_passes_the_engine_as_a_backend_option():
    import argparse

    from rankstack.rerankers.commands import add_reranker_args, reranker_spec

    p = argparse.ArgumentParser()
    add_reranker_args(p)
    args = p.parse_args(["--reranker", "dense", "--model", "minilm-l6", "--backend-option", "engine=onnx-int8",
                         "--backend-option", "engine_tolerance=0.2", "--chunk-tokens", "128"])
    pos, options = reranker_spec(args)
    assert pos == ("dense", "minilm-l6")
    assert options["engine"] == "onnx-int8" and options["engine_tolerance"] == 0.2 and options["chunk_tokens"] == 128
