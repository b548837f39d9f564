"""The few types every part of rankstack speaks.

``Query`` and ``Doc`` go in, ``Ranking`` (one query) and ``Run`` (many queries)
come out. Nothing else crosses module borders.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rankstack.errors import RankstackError

#: Graded judgements: qid -> docid -> grade.
Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class Query:
    """A query; ``instruction`` (optional) is a per-query task instruction (Qwen3-Reranker /
    mxbai style, "Given a web search query, retrieve relevant passages ..."): each reranker puts
    it where its prompt has room for one (:meth:`rankstack.rerankers.base.Reranker.instruct`)."""

    qid: str
    text: str
    instruction: str | None = None


@dataclass(frozen=True)
class Doc:
    docid: str
    text: str
    title: str | None = None

    @property
    def full_text(self) -> str:
        """Title and body joined, the text rerankers show a model."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(frozen=True)
class ScoredDoc:
    docid: str
    score: float


@dataclass
class Ranking:
    """One query's ordered candidates, best first.

    The order given is kept as is (a TREC file's ranks, a reranker's decision);
    use :meth:`from_scores` to build one sorted by score.
    """

    qid: str
    docs: list[ScoredDoc] = field(default_factory=list)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for d in self.docs:
            if d.docid in seen:
                raise RankstackError(f"query {self.qid}: docid {d.docid!r} appears twice in one ranking")
            seen.add(d.docid)

    @classmethod
    def from_scores(cls, qid: str, scores: Mapping[str, float] | Iterable[tuple[str, float]]) -> Ranking:
        """Sort by score, descending; ties keep the order given (stable).

        Args:
            qid: the query id.
            scores: ``{docid: score}`` or ``(docid, score)`` pairs.

        Returns:
            The ranking, best first.
        """
        items = list(scores.items() if isinstance(scores, Mapping) else scores)
        items.sort(key=lambda x: -x[1])
        return cls(qid, [ScoredDoc(d, float(s)) for d, s in items])

    @classmethod
    def from_order(cls, qid: str, docids: Iterable[str]) -> Ranking:
        """A ranking from an order alone: scores n, n-1, ..., 1.

        Args:
            qid: the query id.
            docids: the documents, best first.

        Returns:
            The ranking in that order.
        """
        ids = list(docids)
        n = len(ids)
        return cls(qid, [ScoredDoc(d, float(n - i)) for i, d in enumerate(ids)])

    @property
    def docids(self) -> list[str]:
        return [d.docid for d in self.docs]

    def scores(self) -> dict[str, float]:
        """The scores by docid.

        Returns:
            ``{docid: score}``.
        """
        return {d.docid: d.score for d in self.docs}

    def top(self, k: int | None) -> Ranking:
        """The first ``k`` documents.

        Args:
            k: how many (None: all).

        Returns:
            A new ranking.
        """
        return Ranking(self.qid, list(self.docs if k is None else self.docs[:k]))

    def append_below(self, docids: Iterable[str]) -> Ranking:
        """The unreranked tail of a run put below the ranked documents.

        Args:
            docids: documents to append, in the order given.

        Returns:
            A new ranking: these documents, then ``docids`` scored below the lowest score
            (``low - 1``, ``low - 2``, ...).
        """
        low = min((d.score for d in self.docs), default=0.0)
        return Ranking(self.qid, self.docs + [ScoredDoc(d, low - 1.0 - i) for i, d in enumerate(docids)])

    def __len__(self) -> int:
        return len(self.docs)

    def __iter__(self) -> Iterator[ScoredDoc]:
        return iter(self.docs)

    def __getitem__(self, i):
        return self.docs[i]


class Run(dict):
    """``qid -> Ranking`` plus a name (the TREC tag) and free metadata.

    ``metadata`` carries what a reranker counted (parse repairs, fallbacks,
    cache hits, timings) so that the CLI and benchmarks can report it.

    Args:
        rankings: ``{qid: Ranking}`` or rankings (each under its own qid).
        name: the run's name (the TREC tag written in its file).
        metadata: free metadata (copied).
    """

    def __init__(self, rankings: Mapping[str, Ranking] | Iterable[Ranking] = (), name: str = "rankstack",
                 metadata: dict[str, Any] | None = None):
        super().__init__()
        items = rankings.values() if isinstance(rankings, Mapping) else rankings
        for r in items:
            self[r.qid] = r
        self.name = name
        self.metadata: dict[str, Any] = dict(metadata or {})

    def __eq__(self, other) -> bool:  # equal rankings; name/metadata are labels
        return isinstance(other, dict) and dict.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]

    def top(self, k: int | None) -> Run:
        """Every ranking cut to ``k``.

        Args:
            k: documents per query (None: all).

        Returns:
            A new run with the same name and metadata.
        """
        return Run((r.top(k) for r in self.values()), name=self.name, metadata=self.metadata)

    # --- ir-measures ------------------------------------------------------------
    def to_ir_measures(self) -> Iterator:
        """The run as ir-measures ``ScoredDoc``s (where stored scores tie, rank-consistent scores keep
        this order, since ir-measures sorts by score).

        Returns:
            An iterator of ``ir_measures.ScoredDoc``.
        """
        import ir_measures

        for qid, ranking in self.items():
            n = len(ranking.docs)
            ties = _has_ties(ranking)  # once per ranking (per doc made this quadratic)
            for i, d in enumerate(ranking.docs):
                # ir-measures (like trec_eval) sorts by score; rank-consistent
                # scores keep our order even where the stored scores tie.
                yield ir_measures.ScoredDoc(qid, d.docid, float(n - i) if ties else d.score)

    @classmethod
    def from_ir_measures(cls, scored_docs: Iterable, name: str = "rankstack") -> Run:
        """A run from ir-measures ``ScoredDoc``s (or anything with ``query_id``, ``doc_id``, ``score``).

        Args:
            scored_docs: the scored documents, any order.
            name: the run's name.

        Returns:
            The run, each query sorted by score.
        """
        by_q: dict[str, list[tuple[str, float]]] = {}
        for sd in scored_docs:
            by_q.setdefault(str(sd.query_id), []).append((str(sd.doc_id), float(sd.score)))
        return cls((Ranking.from_scores(q, items) for q, items in by_q.items()), name=name)


def _has_ties(ranking: Ranking) -> bool:
    s = [d.score for d in ranking.docs]
    return any(a <= b for a, b in zip(s, s[1:]))
