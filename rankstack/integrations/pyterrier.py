"""PyTerrier: rankstack rerankers and first stages as ``pt.Transformer``s.

    import pyterrier as pt
    from rankstack.integrations.pyterrier import RankstackReranker, RankstackRetriever
    ds = rankstack.load_dataset("vaswani")
    bm25 = RankstackRetriever(BM25Retriever.from_corpus(ds.corpus), k=100, corpus=ds.corpus)  # no Java
    dense = RankstackReranker(rankstack.load_reranker("dense", model="minilm-l6"))
    pt.Experiment([bm25, bm25 % 20 >> dense], topics, qrels, ["nDCG@10"], names=["BM25", "BM25 >> dense"])

``RankstackReranker`` takes a result frame (``qid``, ``query``, ``docno``, and ``text``, or a
``corpus`` to look the text up) and returns it with the reranker's ``score`` and ``rank``, best
first per query, cut to ``top_n``; every other column is kept. All queries of the frame go to
``rerank_run`` at once, so the engine batches them (a ``RemoteReranker`` sends them concurrently).
Scores are the reranker's raw scores: the same values ``rankstack rerank`` writes to its run.
"""

from __future__ import annotations

import pandas as pd
import pyterrier as pt

from rankstack.data.corpus import DocStore, InMemoryDocStore
from rankstack.errors import RankstackError
from rankstack.types import Doc, Query, Ranking, Run, ScoredDoc

RESULT_COLUMNS = ["qid", "query", "docno", "score", "rank"]


class RankstackReranker(pt.Transformer):
    """A rankstack reranker over a PyTerrier result frame (see the module docstring).

    Args:
        reranker: any rankstack reranker, or a ``RemoteReranker``.
        text_field: the column holding the passage text.
        corpus: a rankstack ``DocStore`` to read texts from when the frame has no ``text_field``.
        top_n: keep this many per query (all if None).
        instruction: the task instruction of every query (a frame's ``instruction`` column wins).
    """

    def __init__(self, reranker, text_field: str = "text", corpus: DocStore | None = None, top_n: int | None = None,
                 instruction: str | None = None):
        self.reranker, self.text_field, self.corpus, self.top_n = reranker, text_field, corpus, top_n
        self.instruction = instruction

    def __repr__(self) -> str:
        return f"RankstackReranker({self.reranker!r})"

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Rerank a result frame (PyTerrier's transformer entry point).

        Args:
            inp: a frame with ``qid``, ``query``, ``docno`` and the text column (or ``corpus=``);
                ``rank`` or ``score`` give the first-stage order.

        Returns:
            The frame reranked: the input columns plus the new ``score`` and ``rank`` (0-based), best
            first per query, ``top_n`` per query when set.

        Raises:
            RankstackError: a missing column.
        """
        need = ["qid", "query", "docno"] + ([] if self.corpus is not None else [self.text_field])
        missing = [c for c in need if c not in inp.columns]
        if missing:
            raise RankstackError(f"RankstackReranker: the frame has no {missing} column(s) (it has {list(inp.columns)})"
                                 + ("; give corpus= to look texts up" if self.text_field in missing else ""))
        if inp.empty:
            return inp.assign(score=pd.Series(dtype=float), rank=pd.Series(dtype=int))
        frame = inp.reset_index(drop=True)
        if "rank" in frame.columns:  # first-stage order within each query
            frame = frame.sort_values(["qid", "rank"], kind="stable")
        elif "score" in frame.columns:
            frame = frame.sort_values(["qid", "score"], ascending=[True, False], kind="stable")
        run, queries, docs = Run(name="pyterrier"), {}, {}
        for qid, group in frame.groupby("qid", sort=False):
            qid = str(qid)
            own = group["instruction"].iloc[0] if "instruction" in group.columns else None
            queries[qid] = Query(qid, str(group["query"].iloc[0]), own if isinstance(own, str) else self.instruction)
            docnos = [str(d) for d in group["docno"]]
            if "score" in group.columns:
                run[qid] = Ranking(qid, [ScoredDoc(d, float(s)) for d, s in zip(docnos, group["score"])])
            else:
                run[qid] = Ranking.from_order(qid, docnos)
            if self.corpus is None:
                docs.update((d, Doc(d, str(t))) for d, t in zip(docnos, group[self.text_field]))
        corpus = self.corpus if self.corpus is not None else InMemoryDocStore(docs.values(), source="the frame")
        depth = max(len(r.docs) for r in run.values())
        out = self.reranker.rerank_run(run, queries, corpus, depth=depth)
        rows = [(qid, d.docid, d.score, r) for qid, ranking in out.items() for r, d in enumerate(ranking.docs)
                if self.top_n is None or r < self.top_n]
        scored = pd.DataFrame(rows, columns=["qid", "docno", "score", "rank"])
        rest = frame.drop(columns=[c for c in ("score", "rank") if c in frame.columns])
        rest = rest.assign(qid=rest["qid"].astype(str), docno=rest["docno"].astype(str))
        return scored.merge(rest, on=["qid", "docno"], how="left")[list(rest.columns) + ["score", "rank"]]


class RankstackRetriever(pt.Transformer):
    """Any rankstack first stage (``retrieve(queries, k) -> Run``: bm25s BM25, Lucene, dense,
    fusion) as a PyTerrier transformer over a topics frame (``qid``, ``query``).

    Args:
        retriever: the rankstack retriever.
        k: documents per query.
        corpus: a ``DocStore``: the result frame gets each passage's ``text``.
    """

    def __init__(self, retriever, k: int = 1000, corpus: DocStore | None = None):
        self.retriever, self.k, self.corpus = retriever, k, corpus

    def __repr__(self) -> str:
        return f"RankstackRetriever({type(self.retriever).__name__}, k={self.k})"

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Retrieve for a topics frame (PyTerrier's transformer entry point).

        Args:
            inp: a frame with ``qid`` and ``query``.

        Returns:
            A result frame: ``qid``, ``query``, ``docno``, ``score``, ``rank`` (and ``text`` with a corpus).

        Raises:
            RankstackError: a missing column.
        """
        missing = [c for c in ("qid", "query") if c not in inp.columns]
        if missing:
            raise RankstackError(f"RankstackRetriever: the topics frame has no {missing} column(s)")
        queries = {str(q): Query(str(q), str(t)) for q, t in zip(inp["qid"], inp["query"])}
        columns = RESULT_COLUMNS + (["text"] if self.corpus is not None else [])
        if not queries:
            return pd.DataFrame(columns=columns)
        run = self.retriever.retrieve(queries, self.k)
        rows = []
        for qid, q in queries.items():
            ranking = run.get(qid, Ranking(qid, []))
            texts = [d.full_text for d in self.corpus.get_many(ranking.docids)] if self.corpus is not None else None
            for r, d in enumerate(ranking.docs):
                rows.append((qid, q.text, d.docid, d.score, r) + ((texts[r],) if texts is not None else ()))
        return pd.DataFrame(rows, columns=columns)
