"""MVP — multi-view, non-generative, order-invariant reranking (Na et al. 2025; METHODS.md section 8).

    rr = load_reranker("mvp", model="runs/mvp-dl19")        # a folder written by rankstack.training.mvp
    run = rr.rerank_run(ds.run, ds.queries, ds.corpus, depth=100)

The paper's model is a T5 Fusion-in-Decoder; this one is built on an encoder (the MiniLM of
``minilm-l6``, a 6-layer BERT, by default):

1. **Multi-view encoding.** Each (query, passage) is encoded on its own as
   ``[CLS] [VIEW0] .. [VIEW{m-1}] Query: q [SEP] Context: p [SEP]``: ``m`` learned view tokens
   (new vocabulary entries, initialised from ``[CLS]`` plus seeded noise) sit at the same
   positions in every input; their final hidden states are the candidate's view embeddings
   ``e_ik`` (``m`` = 4).
2. **Anchors.** An anchor module combines the view embeddings of *all* candidates into one
   anchor per view: ``m`` learned anchor queries attend (one pre-norm transformer decoder layer)
   over the set of all ``n x m`` view embeddings, each tagged with a learned view-type vector.
   No candidate positions enter it, so the anchors do not depend on the candidates' order.
3. **Scores.** ``s_i = mean_k(a_k . e_ik) / sqrt(d)`` (the ``1/sqrt(d)`` keeps the initial
   scores small: **[DEFAULT]**, not in the paper). One encoder pass per candidate, one anchor
   pass per query, no generation, no windows.

The encoder pass of each (query, passage) is the expensive part: the reranker sends it through
the engine as a :class:`ViewRequest` (keyed by the query and passage texts, batched across
queries, its ``m x d`` float32 result cached in SQLite), and computes the anchors and scores
per query from those views.

A model folder holds ``mvp_config.json`` (views, heads, max_length, the backbone it started
from), ``encoder/`` (the transformer and tokenizer with the view tokens, ``save_pretrained``)
and ``anchor.safetensors``. ``model=`` may also be a backbone (``minilm-l6``, a BERT folder):
a fresh, untrained MVP (seeded with ``seed``), for tests and as the start of training.
Training: :mod:`rankstack.training.mvp` (listwise KL to teacher ranks + orthogonality loss).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rankstack.errors import RankstackError
from rankstack.rerankers.base import EmbedRequest, Reranker
from rankstack.rerankers.runtimes import EncoderEngine
from rankstack.types import Doc, Query, Ranking

log = logging.getLogger(__name__)

CONFIG_NAME = "mvp_config.json"
ANCHOR_NAME = "anchor.safetensors"
FORMAT_VERSION = "1"


def view_tokens(m: int) -> list[str]:
    return [f"[VIEW{k}]" for k in range(m)]


class AnchorModule(nn.Module):
    """The order-invariant anchor module (see the module docstring): ``forward(e, mask) -> anchors``
    (B, m, d) from view embeddings ``e`` (B, n, m, d); ``mask`` (B, n) is True for real candidates."""

    def __init__(self, dim: int, views: int, heads: int = 4, dropout: float = 0.1):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(views, dim) * 0.02)
        self.view_type = nn.Parameter(torch.randn(views, dim) * 0.02)
        self.layer = nn.TransformerDecoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=dropout,
                                                batch_first=True, norm_first=True)

    def forward(self, e, mask=None):
        b, n, m, d = e.shape
        memory = (e + self.view_type).reshape(b, n * m, d)
        pad = None if mask is None else ~mask.bool().repeat_interleave(m, dim=1)
        tgt = self.queries.unsqueeze(0).expand(b, m, d)
        return self.layer(tgt, memory, memory_key_padding_mask=pad)


@dataclass(frozen=True)
class MVPConfig:
    views: int = 4
    heads: int = 4
    max_length: int = 256
    dropout: float = 0.1
    backbone: str = "minilm-l6"
    version: str = FORMAT_VERSION


class MVPModel(nn.Module):
    """Encoder with view tokens + anchor module. ``views(...)`` -> e (N, m, d);
    ``scores(e, mask)`` -> (B, n); ``forward(input_ids, attention_mask, cand_mask)`` for lists
    shaped (B, n, L) -> (scores (B, n), e (B, n, m, d))."""

    def __init__(self, encoder, tokenizer, config: MVPConfig, anchor=None):
        super().__init__()
        self.encoder, self.tokenizer, self.config = encoder, tokenizer, config
        dim = encoder.config.hidden_size
        self.anchor = anchor if anchor is not None else AnchorModule(dim, config.views, config.heads, config.dropout)
        self.view_ids = tokenizer.convert_tokens_to_ids(view_tokens(config.views))
        self.scale = 1.0 / math.sqrt(dim)

    # --- text -> tensors ---------------------------------------------------------------------
    def tokenize(self, queries: Sequence[str], passages: Sequence[str]):
        """One input per (query, passage): view tokens and the query, then the passage (cut first)."""
        vt = "".join(view_tokens(self.config.views))
        enc = self.tokenizer([f"{vt} Query: {q}" for q in queries], [f"Context: {p}" for p in passages],
                             truncation="only_second", max_length=self.config.max_length, padding=True,
                             return_tensors="pt")
        m = self.config.views
        got = enc["input_ids"][:, 1: 1 + m]
        if got.numel() and not bool((got == torch.tensor(self.view_ids)).all()):
            raise RankstackError("MVP: the view tokens are not at positions 1..m of the input (tokenizer?)")
        return enc

    # --- model --------------------------------------------------------------------------------
    def views(self, input_ids, attention_mask, token_type_ids=None):
        kw = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kw).last_hidden_state
        return h[:, 1: 1 + self.config.views]

    def scores(self, e, mask=None):
        """``e`` (B, n, m, d) -> scores (B, n); padded candidates get -inf."""
        a = self.anchor(e, mask)  # (B, m, d)
        s = torch.einsum("bnkd,bkd->bn", e, a) * (self.scale / e.shape[2])
        return s if mask is None else s.masked_fill(~mask.bool(), float("-inf"))

    def forward(self, input_ids, attention_mask, cand_mask, token_type_ids=None):
        b, n, length = input_ids.shape
        flat = cand_mask.reshape(-1).bool()
        kw = {}
        if token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids.reshape(b * n, length)[flat]
        e_real = self.views(input_ids.reshape(b * n, length)[flat], attention_mask.reshape(b * n, length)[flat],
                            **kw)
        e = e_real.new_zeros(b * n, *e_real.shape[1:])
        e[flat] = e_real
        e = e.reshape(b, n, *e_real.shape[1:])
        return self.scores(e, cand_mask), e

    # --- files -------------------------------------------------------------------------------
    def save_pretrained(self, path, extra: dict | None = None) -> Path:
        from safetensors.torch import save_file

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(out / "encoder")
        self.tokenizer.save_pretrained(out / "encoder")
        save_file({k: v.detach().contiguous().cpu() for k, v in self.anchor.state_dict().items()},
                  str(out / ANCHOR_NAME))
        cfg = {**self.config.__dict__, **({"training": extra} if extra else {})}
        (out / CONFIG_NAME).write_text(json.dumps(cfg, indent=2, default=str))
        return out


def is_mvp_folder(path) -> bool:
    return (Path(str(path)) / CONFIG_NAME).exists()


def load_mvp(spec: str = "minilm-l6", *, views: int = 4, heads: int = 4, max_length: int = 256,
             dropout: float = 0.1, seed: int = 0, device: str | None = None):
    """An MVP model: a saved folder (``mvp_config.json``), or a fresh one on a backbone (alias,
    BERT folder or hub id) with ``views`` view tokens and a seeded anchor module."""
    from transformers import AutoModel, AutoTokenizer

    if is_mvp_folder(spec):
        folder = Path(str(spec))
        raw = json.loads((folder / CONFIG_NAME).read_text())
        if str(raw.get("version")) != FORMAT_VERSION:
            raise RankstackError(f"{folder}/{CONFIG_NAME}: MVP format version {raw.get('version')!r}, this rankstack "
                                 f"reads {FORMAT_VERSION!r}")
        cfg = MVPConfig(**{k: raw[k] for k in MVPConfig.__dataclass_fields__ if k in raw})
        try:
            tok = AutoTokenizer.from_pretrained(folder / "encoder")
            enc = AutoModel.from_pretrained(folder / "encoder")
        except OSError as e:
            raise RankstackError(f"cannot load the MVP encoder in {folder}/encoder: {e}") from e
        from safetensors.torch import load_file

        model = MVPModel(enc, tok, cfg)
        model.anchor.load_state_dict(load_file(str(folder / ANCHOR_NAME)))
    else:
        from rankstack.models import ALIASES

        path = ALIASES[spec]() if spec in ALIASES else spec
        try:
            tok = AutoTokenizer.from_pretrained(path)
            enc = AutoModel.from_pretrained(path)
        except OSError as e:
            raise RankstackError(f"cannot load MVP backbone {spec!r}: {e} (give an MVP folder written by "
                                 "rankstack.training.mvp, an alias such as minilm-l6, or a BERT folder)") from e
        cfg = MVPConfig(views=views, heads=heads, max_length=max_length, dropout=dropout, backbone=str(spec))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            tok.add_special_tokens({"additional_special_tokens": view_tokens(views)})
            enc.resize_token_embeddings(len(tok), mean_resizing=False)
            emb = enc.get_input_embeddings().weight
            cls_vec = emb[tok.cls_token_id].detach().clone()
            with torch.no_grad():
                for tid in tok.convert_tokens_to_ids(view_tokens(views)):
                    emb[tid] = cls_vec + torch.randn_like(cls_vec) * 0.02
            model = MVPModel(enc, tok, cfg)
    if device:
        model.to(device)
    model.eval()
    return model


@dataclass(frozen=True)
class ViewRequest:
    """The view embeddings of one (query, passage) pair. Result: float32 (m, d), cached as flat
    float32 bytes (:class:`EmbedRequest`'s encoding; the reranker restores the shape)."""

    query: str
    passage: str

    def key(self) -> str:
        return "mvp\x1d" + self.query + "\x1d" + self.passage

    def group(self) -> tuple:
        return ("mvp",)

    to_json = staticmethod(EmbedRequest.to_json)
    from_json = staticmethod(EmbedRequest.from_json)


class MVPReranker(EncoderEngine, Reranker):
    """MVP over any candidate list (see the module docstring). Scores do not depend on the order
    of the candidates (the encoder sees each pair alone; the anchors see a set).

    Options: ``model`` (an MVP folder, or a backbone for an untrained model), ``batch_size``
    (pairs per encoder batch, 32), ``device``, ``threads`` (torch CPU threads), ``seed`` (an
    untrained model's initialisation), ``model_obj`` (an in-memory model, e.g. during training),
    ``engine`` (``torch``, ``onnx-int8``, ...: :mod:`rankstack.rerankers.runtimes`; the encoder's pass
    runs there, the anchor module stays in torch), ``engine_tolerance``, ``engine_check``,
    and the engine's ``fusion``, ``cache``, ``chunk_size``, ``progress``. Passages are cut by the
    tokenizer at the model's ``max_length`` (query first, passage truncated).
    """

    name = "mvp"
    prompt_version = FORMAT_VERSION
    uses_backend = False

    def __init__(self, model: str = "minilm-l6", *, batch_size: int = 32, device: str | None = None,
                 threads: int | None = None, seed: int = 0, model_obj=None, engine: str = "torch",
                 engine_tolerance: float | None = None, engine_check: str = "refuse", **options):
        from rankstack.models import weights_digest

        options.setdefault("max_doc_tokens", None)
        options.setdefault("chunk_size", 256)
        super().__init__(None, **options)
        if threads:
            torch.set_num_threads(int(threads))
        self.model_name = str(model)
        self.model = model_obj if model_obj is not None else load_mvp(self.model_name, seed=seed, device=device)
        if model_obj is None and not is_mvp_folder(self.model_name):
            log.warning("MVP on backbone %s is untrained (random anchors): train it with rankstack.training.mvp",
                        self.model_name)
        self.batch_size = int(batch_size)
        self.device = next(self.model.parameters()).device
        self.setup_engine(engine, lambda: self.model.encoder, lambda m: setattr(self.model, "encoder", m),
                          lambda: weights_digest(self.model.encoder), output="last_hidden_state",
                          tolerance=engine_tolerance, check=engine_check)

    def chunk_tokenizer(self):
        return self.model.tokenizer

    def passage_budget(self, query):
        """What :meth:`MVPModel.tokenize` leaves the passage: max_length less the specials, views,
        ``Query: q`` and ``Context:``."""
        tok = self.model.tokenizer
        used = len(tok(f"Query: {query.text}", add_special_tokens=False)["input_ids"]) + len(
            tok("Context:", add_special_tokens=False)["input_ids"])
        return self.model.config.max_length - 3 - self.model.config.views - used

    def _check_scores(self):
        from rankstack.rerankers.runtimes import CHECK_PAIRS

        views = self.execute([ViewRequest(q, p) for q, p in CHECK_PAIRS])
        return self.score_views(np.stack(views))

    def params(self):
        from rankstack.models import weights_digest

        return {"model": self.model_name, "views": self.model.config.views, "max_length": self.model.config.max_length,
                "weights": self._weights or weights_digest(self.model.encoder),
                "anchor": weights_digest(self.model.anchor, values=None),
                **self.engine_params()}

    def __repr__(self) -> str:
        return f"MVPReranker({self.model_name!r}, views={self.model.config.views})"

    def program(self, query: Query, docs: list[Doc], stats: Counter):
        views = yield [ViewRequest(query.text, d.text) for d in docs]
        m = self.model.config.views
        scores = self.score_views(np.stack([np.asarray(v).reshape(m, -1) for v in views]))
        return Ranking.from_scores(query.qid, [(d.docid, float(s)) for d, s in zip(docs, scores)])

    def score_views(self, views: np.ndarray) -> np.ndarray:
        """Scores of one query's candidates from their view embeddings (n, m, d)."""
        with torch.inference_mode():
            e = torch.from_numpy(np.ascontiguousarray(views)).to(self.device).unsqueeze(0)
            return self.model.scores(e)[0].float().cpu().numpy()

    def execute(self, requests: Sequence) -> list:
        if not all(isinstance(r, ViewRequest) for r in requests):
            raise RankstackError(f"{self.name}: can only run ViewRequests")
        out: list[np.ndarray] = [None] * len(requests)  # type: ignore[list-item]
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].query) + len(requests[i].passage))
        self.model.eval()
        for s in range(0, len(order), self.batch_size):
            idx = order[s: s + self.batch_size]
            enc = self.model.tokenize([requests[i].query for i in idx], [requests[i].passage for i in idx])
            enc = {k: v.to(self.device) for k, v in enc.items()}
            with torch.inference_mode():
                e = self.model.views(**enc).float().cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = e[j]
        return out
