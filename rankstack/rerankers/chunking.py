"""Long documents: split a document longer than a cap into overlapping chunks and aggregate.

    rr = load_reranker("dense", model="minilm-l6", chunk_tokens=128, chunk_stride=64, aggregate="max")
    rankstack rerank --reranker dense --chunk-tokens 128 --chunk-stride 64 --aggregate max ...

A document whose body is longer than ``chunk_tokens`` tokens (of the reranker's own tokenizer)
becomes windows of ``chunk_tokens`` tokens starting every ``chunk_stride`` tokens (default half
a window: MaxP's 50% overlap), the last window ending at the document's end; a title is put in
front of every chunk. Chunk texts are cut from the original text at token offsets (nothing
decoded back).

**Pointwise-style rerankers** (``chunk_mode = "aggregate"``: pointwise incl. QLM, dense,
cross-encoder, MVP) score every chunk as a passage and give the document an aggregate of its
chunk scores: ``max`` (default, MaxP: the best passage decides, Dai & Callan 2019), ``first``
(FirstP: only the first chunk is scored), ``mean`` or ``sum``. MVP's anchors see the chunks of
the candidates as its candidate set.

**Listwise-style rerankers** (``chunk_mode = "best_chunk"``: FIRST, listwise, setwise,
groupwise, rubric) cannot give a window several pieces of one document without changing what
they compare, so each document enters its windows as its one best chunk, chosen by BM25 between
the query and the chunks of that query's candidates. The first stage's score is one number per
document and cannot tell its chunks apart; BM25 costs no model call, runs the same whatever the
reranker's backend, and picks the passage where the query's terms are (the first chunk wins ties
and chunks that share no term with the query).

Nothing is cut silently: the engine counts, into the run's metadata, ``docs_chunked`` (documents
split), ``chunks`` (passages scored or chosen among), ``docs_truncated`` (documents cut without
chunking, by ``max_doc_tokens`` or by the encoder's own length limit) and ``chunks_truncated``
(chunks still longer than what the model reads).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict

import numpy as np

from rankstack.data.passages import (AGGREGATES, SEP, Chunking, aggregate, count_tokens, split_doc, split_text,
                                     token_spans)
from rankstack.errors import RankstackError
from rankstack.types import Doc, Query, Ranking

__all__ = ["AGGREGATES", "Chunking", "aggregate", "best_chunks", "count_tokens", "cut_text", "query_program",
           "run_identity", "service_texts", "split_doc", "split_text", "token_spans"]


# --- what a reranker says about its passages (defaults for those that say nothing) ---------------
def tokenizer_of(rr):
    """The tokenizer chunks are counted in: the reranker's ``chunk_tokenizer()``, else its backend's (None: words)."""
    own = getattr(rr, "chunk_tokenizer", None)
    return own() if own else getattr(getattr(rr, "backend", None), "tokenizer", None)


def budget_of(rr, query: Query) -> int | None:
    """Tokens of a passage the model reads whole after ``prepare_doc``: ``passage_budget(query)`` of an
    encoder reranker (its own length limit); None for the others (``prepare_doc``'s cut is seen directly)."""
    own = getattr(rr, "passage_budget", None)
    return own(query) if own else None


def run_identity(rr) -> str:
    """What a resumed run file must have been made by: the fingerprint (which keys the cache: a chunk's
    answer does not depend on how chunk scores are combined) plus the chunking."""
    if rr.chunking is None:
        return rr.fingerprint()
    return rr.fingerprint() + ":" + hashlib.sha256(json.dumps(asdict(rr.chunking)).encode()).hexdigest()[:8]


# --- what the engine runs for one query -------------------------------------------------------
def query_program(rr, query: Query, docs: list[Doc], stats: Counter):
    """The engine's program for one query: documents cut (counted) or chunked, the reranker's own
    program over them, chunk scores aggregated back to documents."""
    ch = getattr(rr, "chunking", None)
    if ch is None:
        prepared = [rr.prepare_doc(d) for d in docs]
        _count_cut(rr, query, docs, prepared, stats, "docs_truncated")
        return rr.program(query, prepared, stats)
    tok = tokenizer_of(rr)
    pieces = [split_doc(d, tok, ch) for d in docs]
    stats["docs_chunked"] += sum(len(p) > 1 for p in pieces)
    if getattr(rr, "chunk_mode", "best_chunk") == "aggregate":
        return _aggregated(rr, query, docs, pieces, stats)
    best = best_chunks(query.text, pieces)
    stats["chunks"] += sum(len(p) for p in pieces)
    chosen = [Doc(d.docid, p[i]) for d, p, i in zip(docs, pieces, best)]
    prepared = [rr.prepare_doc(d) for d in chosen]
    _count_cut(rr, query, chosen, prepared, stats, "chunks_truncated")
    return rr.program(query, prepared, stats)


def _aggregated(rr, query: Query, docs: list[Doc], pieces: list[list[str]], stats: Counter):
    how = rr.chunking.aggregate
    chunk_docs = [Doc(f"{d.docid}{SEP}{i}", t) for d, ps in zip(docs, pieces)
                  for i, t in enumerate(ps[:1] if how == "first" else ps)]
    stats["chunks"] += len(chunk_docs)
    prepared = [rr.prepare_doc(d) for d in chunk_docs]
    _count_cut(rr, query, chunk_docs, prepared, stats, "chunks_truncated")
    ranking = yield from rr.program(query, prepared, stats)
    per_doc: dict[str, list[tuple[int, float]]] = {}
    for sd in ranking.docs:
        docid, _, idx = sd.docid.rpartition(SEP)
        per_doc.setdefault(docid, []).append((int(idx), sd.score))
    scores = []
    for d in docs:
        got = [s for _, s in sorted(per_doc.get(d.docid, []))]
        if not got:
            raise RankstackError(f"{rr.name}: no score came back for any chunk of {d.docid!r}")
        scores.append((d.docid, aggregate(got, how)))
    return Ranking.from_scores(query.qid, scores)


def _count_cut(rr, query: Query, given: list[Doc], prepared: list[Doc], stats: Counter, key: str) -> None:
    """Count passages the model does not read whole: cut by ``prepare_doc``, or longer than the
    reranker's ``passage_budget`` (an encoder's own limit)."""
    cut = [p.text != g.full_text for g, p in zip(given, prepared)]
    budget = budget_of(rr, query)
    if budget is not None:
        rest = [i for i, c in enumerate(cut) if not c]
        lengths = count_tokens(tokenizer_of(rr), [prepared[i].text for i in rest]) if rest else []
        for i, n in zip(rest, lengths):
            cut[i] = n > budget
    n_cut = sum(cut)
    if n_cut:
        stats[key] += n_cut


def best_chunks(query: str, pieces: list[list[str]]) -> list[int]:
    """Per document, the index of its chunk with the highest BM25 score for ``query`` (bm25s over
    this query's chunks; 0 for ties and when no chunk shares a term with the query)."""
    if all(len(p) == 1 for p in pieces):
        return [0] * len(pieces)
    import bm25s

    flat = [t for p in pieces for t in p]
    model = bm25s.BM25()
    model.index(bm25s.tokenize(flat, stopwords="en", show_progress=False), show_progress=False)
    qtok = bm25s.tokenize([query], stopwords="en", show_progress=False, return_ids=False)[0]
    known = [t for t in qtok if t in model.vocab_dict]
    scores = model.get_scores(known) if known else np.zeros(len(flat))
    out, pos = [], 0
    for p in pieces:
        row = np.asarray(scores[pos: pos + len(p)])
        out.append(int(np.argmax(row)) if row.size and row.max() > 0 else 0)
        pos += len(p)
    return out


# --- the service's per-document caps -----------------------------------------------------------
def cut_text(tokenizer, text: str, tokens: int) -> str:
    """``text`` up to the end of its ``tokens``-th token (cut at an offset: nothing decoded back)."""
    spans = token_spans(tokenizer, text)
    return text if len(spans) <= tokens else text[: spans[tokens - 1][1]]


def service_texts(rr, query: str, texts: list[str], max_tokens_per_doc: int | None = None,
                  truncate: bool | None = None) -> tuple[list[str], int]:
    """What a rerank request's per-document cap means for ``rr`` (the server's reranker): the texts to
    rank and how many were cut.

    - Cohere ``max_tokens_per_doc=N``: every document is cut to its first N tokens, as Cohere documents
      it; what remains is then chunked if the server runs with ``--chunk-tokens``, else cut at the
      model's own cap (and counted as truncated by the engine).
    - TEI ``truncate=true``: cut to what the model reads in one pass (``--chunk-tokens`` when
      chunking, else the model's passage budget): no chunks. ``truncate=false``/absent: documents
      go whole, chunked when the server chunks (TEI would refuse a too-long input; a chunking server
      scores it).
    """
    tok = tokenizer_of(rr)
    cap = max_tokens_per_doc
    if truncate:
        budget = rr.chunking.tokens if rr.chunking is not None else (
            budget_of(rr, Query("q", query)) or getattr(rr, "max_doc_tokens", None))
        cap = budget if cap is None or budget is None else min(cap, budget)
    if cap is None:
        return list(texts), 0
    out = [cut_text(tok, t, cap) for t in texts]
    return out, sum(a != b for a, b in zip(out, texts))
