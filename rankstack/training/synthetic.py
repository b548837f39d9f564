"""Synthetic training queries (InPars, InPars-v2, Promptagator; METHODS.md section 10).

1. :func:`generate_queries`: sample passages from the target corpus (seeded); an LLM writes a
   query for each from a few-shot prompt in InPars' style, given as chat turns (three examples
   written for rankstack, taken from no test collection; :func:`query_prompt`). Sampled decoding;
   outputs are cleaned to one line, empty ones dropped, duplicates dropped, and a query that
   copies its passage verbatim is dropped. Every drop is counted; a generator that yields
   nothing usable is an error, never an empty file.
2. :func:`candidate_runs` retrieves BM25 candidates for every synthetic query and lets a teacher
   rank them; :func:`consistency_filter` keeps a query only if its source passage is in the
   teacher's top ``keep_top`` (InPars-v2 / Promptagator / GroupRank style). The keep-rate is
   reported.

The source passage becomes a pseudo-positive (pseudo-qrels, grade 1); the teacher's order over
the candidates is the distillation target (:mod:`rankstack.training.teacher`).

Generation goes through :func:`rankstack.rerankers.base.execute_requests`, so it is batched,
cached in the SQLite score cache and resumes where an interrupted run stopped.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from rankstack.errors import RankstackError
from rankstack.rerankers.backends.base import Prompt, SamplingParams
from rankstack.rerankers.base import GenerateRequest, execute_requests
from rankstack.types import Doc, Qrels, Query, Run

log = logging.getLogger(__name__)

#: Few-shot examples (passage, query), written for rankstack; not from any test collection.
FEW_SHOT: tuple[tuple[str, str], ...] = (
    ("The koala is a tree-dwelling marsupial native to eastern Australia. It feeds almost entirely on "
     "eucalyptus leaves, which are low in nutrients, and sleeps up to 20 hours a day to save energy.",
     "why do koalas sleep so much"),
    ("To renew a passport by mail, fill in the renewal form, attach a recent photo and your old passport, "
     "and include the fee. Processing usually takes six to eight weeks.",
     "how long does passport renewal by mail take"),
    ("Vitamin D helps the body absorb calcium. Low levels can cause weak bones; sunlight, fatty fish and "
     "fortified milk are common sources.",
     "what does vitamin d do for bones"),
)

INSTRUCTION = "Write a search query for this document."

#: version of the prompt below (part of the cache fingerprint)
PROMPT_VERSION = "inpars-chat-1"
#: how the hf backend samples them (part of the cache fingerprint: another sampler draws differently)
SAMPLER = "shared-prefix-1"


def query_prompt(passage: str, examples: Sequence[tuple[str, str]] = FEW_SHOT) -> Prompt:
    """InPars' few-shot "Document: ... Relevant Query: ..." prompt as chat turns: each example is a
    user turn (instruction + document) answered by an assistant turn (its query); the passage is
    the last user turn. A chat model then answers with a query, where the examples pasted into
    one message made SmolLM2-135M talk about "the document" (40 DL19 passages, seed 3: 26 of 40
    kept by the consistency filter as chat turns, 12 of 40 with a zero-shot instruction)."""
    turns: list[tuple[str, str]] = []
    for p, q in examples:
        turns += [("user", f"{INSTRUCTION}\nDocument: {p}"), ("assistant", q)]
    return Prompt.chat(f"{INSTRUCTION}\nDocument: {passage}", history=turns)


_PREFIX = re.compile(r"^\s*(?:(?:example\s*\d+\s*:)|(?:relevant\s+)?query\s*:|q\s*:)\s*", re.I)
_WORD = re.compile(r"\w+")


def clean_query(text: str) -> str | None:
    """The query in a generation: its first non-empty line, without a ``Relevant Query:``-style
    label, quotes or list marks; ``None`` when nothing with two or more words is left."""
    for line in (text or "").splitlines():
        line = _PREFIX.sub("", line.strip()).strip().strip("\"'`*").strip()
        line = re.sub(r"^[-•\d.)\s]+(?=\w)", "", line) if re.match(r"^[-•]|\d+[.)]\s", line) else line
        if line:
            line = re.sub(r"\s+", " ", line)
            return line if len(_WORD.findall(line)) >= 2 and len(line) <= 300 else None
    return None


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def copies_passage(query: str, passage: str, min_words: int = 4, share: float = 0.8) -> bool:
    """True when the query is (nearly) a verbatim piece of the passage: its words appear there as
    one contiguous run covering at least ``share`` of them (queries of ``min_words`` words or
    more; a shorter query is a copy only if it is a whole sentence of the passage)."""
    q, p = _words(query), _words(passage)
    if not q:
        return False
    if len(q) < min_words:
        return any(_words(s) == q for s in re.split(r"[.!?\n]+", passage))
    best, pos = 0, {}
    for i, w in enumerate(p):
        pos.setdefault(w, []).append(i)
    for j in range(len(q)):
        for i in pos.get(q[j], ()):
            n = 0
            while j + n < len(q) and i + n < len(p) and q[j + n] == p[i + n]:
                n += 1
            best = max(best, n)
    return best >= share * len(q)


def normalise(query: str) -> str:
    """The key duplicates are found by: lowercase words."""
    return " ".join(_words(query))


@dataclass
class SyntheticQueries:
    """Generated queries and where they came from: ``queries`` (qid -> Query), ``source`` (qid ->
    the passage's docid), ``stats`` (sampled, generated, empty, duplicate, copies, kept)."""

    queries: dict[str, Query]
    source: dict[str, str]
    stats: Counter = field(default_factory=Counter)
    dropped: list[tuple[str, str, str]] = field(default_factory=list)  # (docid, text, reason)

    def qrels(self) -> Qrels:
        """Pseudo-qrels: each query's source passage is relevant (grade 1)."""
        return {q: {d: 1} for q, d in self.source.items()}

    def subset(self, qids) -> SyntheticQueries:
        keep = [q for q in qids if q in self.queries]
        return SyntheticQueries({q: self.queries[q] for q in keep}, {q: self.source[q] for q in keep},
                                Counter(self.stats), list(self.dropped))


def sample_passages(corpus, n: int, seed: int = 0, min_words: int = 12, exclude: set[str] | None = None) -> list[Doc]:
    """``n`` passages drawn without replacement (seeded) from those with at least ``min_words`` words."""
    docs = [d for d in corpus if len(_words(d.full_text)) >= min_words and d.docid not in (exclude or ())]
    if not docs:
        raise RankstackError("the corpus holds no passage to write queries for "
                             f"(empty, or none with at least {min_words} words)")
    if n > len(docs):
        log.warning("asked for %d passages, the corpus has %d usable ones: using all", n, len(docs))
    return random.Random(seed).sample(docs, min(n, len(docs)))


def generate_queries(corpus, backend, n: int = 100, *, seed: int = 0, samples: int = 1, temperature: float = 0.7,
                     top_p: float = 0.95, max_new_tokens: int = 32, max_passage_tokens: int = 160,
                     examples: Sequence[tuple[str, str]] = FEW_SHOT, cache=None, chunk_size: int = 32,
                     progress: bool = True, qid_prefix: str = "syn", exclude: set[str] | None = None,
                     keep: int = 1) -> SyntheticQueries:
    """Write queries for ``n`` sampled passages with ``backend``: ``samples`` draws each (one
    prefill shared by the draws on the ``hf`` backend), of which the first ``keep`` usable, new,
    non-copying ones are kept. ``cache``: a :class:`ScoreCache` (resume, no repeats)."""
    if n <= 0:
        raise RankstackError(f"n must be > 0, got {n}")
    if not 1 <= keep <= samples:
        raise RankstackError(f"keep must be in 1..samples ({samples}), got {keep}")
    passages = sample_passages(corpus, n, seed=seed, exclude=exclude)
    texts = [backend.truncate(d.full_text, max_passage_tokens) if max_passage_tokens else d.full_text for d in passages]
    params = SamplingParams(n=samples, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                            stop=("\n",), seed=seed)
    requests = [GenerateRequest(query_prompt(t, examples), params) for t in texts]
    fingerprint = f"synthetic:{PROMPT_VERSION}:{SAMPLER}:{backend.fingerprint()}"
    stats: Counter = Counter(sampled=len(passages))
    with tqdm(total=len(requests), desc="generate queries", unit="passage", disable=not progress, leave=False) as bar:
        outs = execute_requests(requests, backend_generate(backend, stats=stats), cache=cache, fingerprint=fingerprint,
                                chunk_size=chunk_size, stats=stats, bar=bar, owners=[d.docid for d in passages])
    out = SyntheticQueries({}, {}, stats)
    seen: set[str] = set()
    for doc, text, comps in zip(passages, texts, outs):
        reason, kept = "empty", 0
        for c in comps:
            stats["generated"] += 1
            q = clean_query(c.text)
            if q is None:
                reason = "empty"
                continue
            key = normalise(q)
            if key in seen:
                reason = "duplicate"
                continue
            if copies_passage(q, text):
                reason = "copies_passage"
                continue
            seen.add(key)
            qid = f"{qid_prefix}{len(out.queries) + 1}"
            out.queries[qid] = Query(qid, q)
            out.source[qid] = doc.docid
            kept += 1
            if kept >= keep:
                break
        if not kept:
            stats[f"dropped_{reason}"] += 1
            out.dropped.append((doc.docid, comps[-1].text if comps else "", reason))
    stats["kept"] = len(out.queries)
    log.info("synthetic queries: %s", dict(stats))
    if not out.queries:
        raise RankstackError(f"the generator ({backend.fingerprint()}) wrote no usable query for {len(passages)} "
                             f"passages ({dict(stats)}); e.g. {out.dropped[0][1]!r}")
    return out


def backend_generate(backend, batch_size: int | None = None, stats: Counter | None = None):
    """``run`` for :func:`execute_requests`: one batch of generate requests on ``backend``. On the
    ``hf`` backend the few-shot prefix every query prompt shares runs once per batch, the ``n``
    samples of a prompt share its prefill and a row stops at its newline
    (:class:`~rankstack.rerankers.backends.shared_prefix_generate.SharedPrefixGenerator`); other
    backends (an OpenAI-compatible server) get the requests as they are. ``stats`` (if given)
    counts the tokens the model ran: ``prefill_tokens`` and ``decoded_tokens``."""
    from rankstack.rerankers.backends.hf import HFBackend

    if isinstance(backend, HFBackend):
        from rankstack.rerankers.backends.shared_prefix_generate import SharedPrefixGenerator

        gen = SharedPrefixGenerator(backend.model, backend.tokenizer, batch_size=batch_size or 32,
                                    device=str(backend.device))

        def run_fast(reqs):
            before = dict(gen.tokens)
            out = gen.generate(backend.encode_many([r.prompt for r in reqs]), reqs[0].params)
            if stats is not None:
                stats["prefill_tokens"] += sum(gen.tokens[k] - before[k] for k in ("prefix", "suffix"))
                stats["decoded_tokens"] += gen.tokens["decoded"] - before["decoded"]
            return out

        return run_fast

    def run(reqs):
        return backend.generate([r.prompt for r in reqs], reqs[0].params)

    return run


# --- the consistency filter ---------------------------------------------------------------------


@dataclass
class FilterResult:
    """What :func:`consistency_filter` keeps: the queries, their candidates and the teacher's run."""

    kept: SyntheticQueries
    candidates: Run
    teacher: Run
    stats: Counter

    @property
    def keep_rate(self) -> float:
        return self.stats["kept"] / max(1, self.stats["queries"])


def candidate_runs(synthetic: SyntheticQueries, retriever, teacher, corpus, depth: int = 30) -> tuple[Run, Run]:
    """The first stage's top ``depth`` for every synthetic query and the teacher's run over them."""
    from rankstack.training.teacher import load_teacher

    if not synthetic.queries:
        raise RankstackError("no synthetic queries to retrieve for")
    cands = retriever.retrieve(synthetic.queries, k=depth)
    return cands, load_teacher(teacher).rank(cands, synthetic.queries, corpus, depth=depth)


def consistency_filter(synthetic: SyntheticQueries, candidates: Run, teacher: Run, keep_top: int = 3) -> FilterResult:
    """Keep the queries whose source passage the ``teacher`` run ranks in its top ``keep_top`` among
    the ``candidates`` (see :func:`candidate_runs`); a source the first stage did not retrieve
    is dropped too. Both reasons are counted in ``stats``."""
    if keep_top < 1:
        raise RankstackError(f"keep_top must be >= 1, got {keep_top}")
    stats: Counter = Counter(queries=len(synthetic.queries))
    keep = []
    for qid in synthetic.queries:
        src = synthetic.source[qid]
        if qid not in candidates or src not in candidates[qid].docids:
            stats["dropped_source_not_retrieved"] += 1
        elif qid not in teacher:
            stats["dropped_no_teacher_ranking"] += 1
        elif src in teacher[qid].docids[:keep_top]:
            keep.append(qid)
        else:
            stats["dropped_teacher_disagrees"] += 1
    stats["kept"] = len(keep)
    if not keep:
        raise RankstackError(f"the consistency filter kept none of {len(synthetic.queries)} queries ({dict(stats)})")
    kept = synthetic.subset(keep)
    kept.stats = Counter({**synthetic.stats, **{f"filter_{k}": v for k, v in stats.items()}})
    log.info("consistency filter (top %d): kept %d of %d", keep_top, len(keep), len(synthetic.queries))
    return FilterResult(kept, Run((candidates[q] for q in keep), name=candidates.name),
                        Run((teacher[q] for q in keep), name=teacher.name), stats)


def write_synthetic(s: SyntheticQueries, topics_path, qrels_path, sources_path=None) -> None:
    """Topics TSV (``qid<TAB>query``), pseudo-qrels (``qid 0 docid 1``) and, optionally, a TSV of
    every dropped generation with its reason."""
    from rankstack.data.trec import write_qrels, write_topics

    write_topics(s.queries, topics_path, "tsv")
    write_qrels(s.qrels(), qrels_path)
    if sources_path:
        with open(sources_path, "w", encoding="utf-8") as f:
            for docid, text, reason in s.dropped:
                f.write(f"{docid}\t{reason}\t{' '.join(text.split())}\n")


def read_synthetic(topics_path, qrels_path) -> SyntheticQueries:
    from rankstack.data.trec import read_qrels, read_topics

    queries = read_topics(topics_path, "tsv")
    qrels = read_qrels(qrels_path)
    source = {q: next(iter(j)) for q, j in qrels.items() if j}
    return SyntheticQueries({q: queries[q] for q in source}, source)

