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

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rankstack.errors import RankstackError
from rankstack.types import Doc, Query, Ranking

AGGREGATES = ("max", "first", "mean", "sum")
_SEP = "\x1f"  # chunk docid = docid + _SEP + index (docids never hold control characters)
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Chunking:
    """``tokens`` per chunk, a new chunk every ``stride`` tokens, chunk scores combined by ``aggregate``."""

    tokens: int
    stride: int
    aggregate: str = "max"

    @classmethod
    def make(cls, tokens: int | None, stride: int | None = None, aggregate: str = "max") -> Chunking | None:
        """None without ``tokens``; a clear error for a bad value."""
        if aggregate not in AGGREGATES:
            raise RankstackError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
        if tokens is None:
            if stride is not None:
                raise RankstackError("chunk_stride needs chunk_tokens")
            return None
        tokens = int(tokens)
        stride = max(1, tokens // 2) if stride is None else int(stride)
        if tokens < 1:
            raise RankstackError(f"chunk_tokens must be >= 1, got {tokens}")
        if not 1 <= stride <= tokens:
            raise RankstackError(f"chunk_stride must be in 1..chunk_tokens ({tokens}), got {stride}")
        return cls(tokens, stride, aggregate)


def token_spans(tokenizer, text: str) -> list[tuple[int, int]]:
    """Character spans of ``text``'s tokens: the tokenizer's offsets (a fast tokenizer), else whitespace words."""
    if tokenizer is not None and getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
        return [(a, b) for a, b in enc["offset_mapping"] if b > a]
    return [m.span() for m in _WORD.finditer(text)]


def count_tokens(tokenizer, texts: Sequence[str]) -> list[int]:
    if tokenizer is None:
        return [len(_WORD.findall(t)) for t in texts]
    enc = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)
    return [len(ids) for ids in enc["input_ids"]]


def split_text(text: str, spans: list[tuple[int, int]], tokens: int, stride: int) -> list[str]:
    """Windows of ``tokens`` tokens every ``stride`` tokens; the last one ends at the end of ``text``."""
    n = len(spans)
    if n <= tokens:
        return [text]
    starts = list(range(0, n - tokens, stride)) + [n - tokens]
    return [text[spans[s][0]: spans[s + tokens - 1][1]] for s in starts]


def split_doc(doc: Doc, tokenizer, chunking: Chunking) -> list[str]:
    """The chunks of ``doc`` (its title in front of each); one chunk when it fits."""
    parts = split_text(doc.text, token_spans(tokenizer, doc.text), chunking.tokens, chunking.stride)
    return [f"{doc.title}\n{p}" if doc.title else p for p in parts]


def aggregate(scores: Sequence[float], how: str) -> float:
    if how == "max":
        return float(max(scores))
    if how == "first":
        return float(scores[0])
    if how == "mean":
        return float(np.mean(scores))
    return float(np.sum(scores))


# --- what the engine runs for one query -------------------------------------------------------
def query_program(rr, query: Query, docs: list[Doc], stats: Counter):
    """The engine's program for one query: documents cut (counted) or chunked, the reranker's own
    program over them, chunk scores aggregated back to documents."""
    ch = getattr(rr, "chunking", None)
    if ch is None:
        prepared = [rr.prepare_doc(d) for d in docs]
        _count_cut(rr, query, docs, prepared, stats, "docs_truncated")
        return rr.program(query, prepared, stats)
    tok = rr.chunk_tokenizer()
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
    chunk_docs = [Doc(f"{d.docid}{_SEP}{i}", t) for d, ps in zip(docs, pieces)
                  for i, t in enumerate(ps[:1] if how == "first" else ps)]
    stats["chunks"] += len(chunk_docs)
    prepared = [rr.prepare_doc(d) for d in chunk_docs]
    _count_cut(rr, query, chunk_docs, prepared, stats, "chunks_truncated")
    ranking = yield from rr.program(query, prepared, stats)
    per_doc: dict[str, list[tuple[int, float]]] = {}
    for sd in ranking.docs:
        docid, _, idx = sd.docid.rpartition(_SEP)
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
    budget = rr.passage_budget(query)
    if budget is not None:
        rest = [i for i, c in enumerate(cut) if not c]
        lengths = count_tokens(rr.chunk_tokenizer(), [prepared[i].text for i in rest]) if rest else []
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
