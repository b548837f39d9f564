"""Reranking on a Ray cluster: Ray Data, one row per query, an actor per model replica.

    from rankstack.rerankers.ray_engine import RayEngine
    rr = load_reranker("pointwise", model="Qwen/Qwen2.5-7B-Instruct", backend="vllm")
    rr.rerank_run_to_file("msmarco-dev.bm25.trec", queries, corpus, "out.trec", depth=100,
                          engine=RayEngine(address="auto", workers=8, gpus_per_worker=1))

    rankstack rerank ... --ray auto --workers 8 --gpus-per-worker 1

The pipeline (needs ``pip install 'rankstack[ray]'``):

1. **rows**: one per query, holding all its candidates (qid, query text, docids, first-stage
   scores), so a listwise, setwise or groupwise program keeps its windows together. A run file
   is not read by the driver: it is cut into blocks of queries by byte offsets, and a Ray task
   per block (``flat_map``) reads that block's lines on whatever node runs it.
2. **map_batches over an actor class** (:class:`RerankActor`, a fixed pool of ``workers``
   actors, ``gpus_per_worker``/``cpus_per_worker`` each): each actor builds the reranker once
   (from the reranker's ``factory``, recorded by ``load_reranker``) and runs the ordinary engine
   on its batch of queries (``block_queries`` a batch): the same prompts, batching, parsing and
   cache as one process, so the same scores.
3. **results stream back in input order** (``preserve_order``) and are appended to the output
   run block by block; a restarted job resumes from the output file as a local one does.

**Failures.** Ray Data restarts a dead actor and retries its batch (actor pools run with
``max_restarts=-1, max_task_retries=-1``); a batch's queries are written only once it comes
back whole, so a killed worker costs the batch it held, never a query in the output.

**Cache policy: each actor opens the reranker's own SQLite cache path on the node it runs on.**
On one machine that is one shared file (SQLite in WAL mode serialises the commits of several
processes; each actor commits chunk by chunk, as a single process does), so a retried batch or
a restarted job takes every output already computed by any actor. On a cluster each node keeps
its own file at that path: SQLite over a network filesystem is not safe, and the output file,
not the cache, is what a restarted distributed job resumes from (the driver writes it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from rankstack.data.trec import run_groups
from rankstack.errors import RankstackError
from rankstack.rerankers.engine import EngineStats, rerank_rankings
from rankstack.rerankers.stream import RunJob, default_block_queries
from rankstack.types import Query, Ranking, ScoredDoc

log = logging.getLogger(__name__)


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (the data extra: pyarrow, pandas)
    except ImportError as e:
        raise RankstackError(f"the Ray engine needs Ray Data: pip install 'rankstack[ray]' (import failed: {e})") from e
    return ray


class RerankActor:
    """A Ray Data actor: builds the reranker once, then reranks batches of query rows
    (:func:`rankstack.rerankers.engine.rerank_rankings`).

    Args:
        factory: builds the reranker.
        corpus: the passages' texts.
        depth: candidates reranked per query.
        threads: torch threads of this actor.
    """

    def __init__(self, factory, corpus, depth: int, threads: int | None = None):
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.reranker = factory()
        self.reranker.progress = False
        self.corpus = corpus
        self.depth = depth

    def __call__(self, batch: dict) -> dict:
        qids = [str(q) for q in batch["qid"]]
        rankings = [Ranking(q, [ScoredDoc(str(d), float(s)) for d, s in zip(ds, ss)])
                    for q, ds, ss in zip(qids, batch["docids"], batch["scores"])]
        queries = {q: Query(q, str(t)) for q, t in zip(qids, batch["text"])}
        ranked, stats = rerank_rankings(self.reranker, rankings, queries, self.corpus, self.depth)
        stats = json.dumps(stats.as_dict())
        return {"qid": qids, "docids": [r.docids for r in ranked], "scores": [[d.score for d in r] for r in ranked],
                "stats": [stats] + [""] * (len(ranked) - 1)}


def read_block(item: dict) -> list[dict]:
    """A Ray task: the query rows of one block of a run file.

    Args:
        item: ``{"path", "start", "end", "texts"}`` (byte offsets ``[start, end)``, the queries' texts).

    Returns:
        One row per query: qid, text, docids, scores.
    """
    rows = []
    for g, text in zip(run_groups(item["path"], item["start"], item["end"]), item["texts"]):
        r = g.ranking(item["path"])
        rows.append({"qid": r.qid, "text": text, "docids": r.docids, "scores": [d.score for d in r]})
    return rows


def _row(ranking: Ranking, queries) -> dict:
    if ranking.qid not in queries:
        raise RankstackError(f"query {ranking.qid!r} of the run has no text in the queries given")
    return {"qid": ranking.qid, "text": queries[ranking.qid].text, "docids": ranking.docids,
            "scores": [d.score for d in ranking]}


def file_blocks(path: str, start: int, limit: int | None, n: int, queries) -> list[dict]:
    """Cut a run file into blocks of ``n`` queries by byte offsets (one pass over the qids; each block
    carries its queries' texts, so tasks need no topics file).

    Args:
        path: the run file.
        start: the byte offset to start at.
        limit: the number of queries at most (None: all).
        n: queries per block.
        queries: ``{qid: Query}``.

    Returns:
        The blocks (``{"path", "start", "end", "texts"}``).

    Raises:
        RankstackError: a query without text.
    """
    blocks: list[dict] = []
    cur: dict | None = None
    for i, g in enumerate(run_groups(path, start)):
        if limit is not None and i >= limit:
            break
        if g.qid not in queries:
            raise RankstackError(f"query {g.qid!r} of the run has no text in the queries given")
        if cur is None or len(cur["texts"]) >= n:
            cur = {"path": path, "start": g.start, "end": g.end, "texts": []}
            blocks.append(cur)
        cur["texts"].append(queries[g.qid].text)
        cur["end"] = g.end
    return blocks


class RayEngine:
    """Runs a rerank job on Ray (see the module docstring).

    Args:
        address: None starts (or joins, with ``RAY_ADDRESS`` set) a cluster on this machine,
            ``"auto"`` joins the running cluster, ``"ray://host:10001"`` or ``"host:6379"`` a given
            one; ignored when Ray is already initialised.
        workers: actors (model replicas).
        gpus_per_worker: each actor's GPUs.
        cpus_per_worker: each actor's CPUs (its torch threads).
        init_options: more ``ray.init`` keywords (``num_cpus``, ``object_store_memory``,
            ``include_dashboard``, ``runtime_env``).
        factory: how an actor builds the reranker (default: the reranker's own ``factory`` from
            ``load_reranker``).

    Raises:
        RankstackError: ``workers`` < 1.
    """

    def __init__(self, address: str | None = None, workers: int = 1, gpus_per_worker: float = 0.0,
                 cpus_per_worker: float = 1.0, init_options: dict[str, Any] | None = None, factory=None):
        if workers < 1:
            raise RankstackError(f"workers must be >= 1, got {workers}")
        self.address = address
        self.workers = int(workers)
        self.gpus_per_worker = float(gpus_per_worker)
        self.cpus_per_worker = float(cpus_per_worker)
        self.init_options = dict(init_options or {})
        self.factory = factory

    def _init(self, ray) -> None:
        if ray.is_initialized():
            return
        opts = {"include_dashboard": False, "logging_level": logging.WARNING, **self.init_options}
        ray.init(address=self.address, **opts)

    def run(self, job: RunJob) -> Iterator[tuple[list[Ranking], EngineStats]]:
        """Rerank ``job`` on the cluster, a batch of ``block_queries`` queries per actor call.

        Args:
            job: the run to rerank (its reranker's ``factory``, or this engine's, builds each
                actor's copy).

        Yields:
            ``(rankings, stats)`` per batch, in input order.

        Raises:
            RankstackError: Ray is not installed, or no factory to build the reranker with.
        """
        ray = _import_ray()
        factory = self.factory or job.factory or getattr(job.reranker, "factory", None)
        if factory is None:
            raise RankstackError("RayEngine: each actor builds its own reranker; build this one with load_reranker(...) "
                                 "or give RayEngine(factory=...) (a picklable callable that returns it)")
        self._init(ray)
        n = job.block_queries or default_block_queries(job.depth)
        src = job.source
        ctx = ray.data.DataContext.get_current()  # a dataset copies the context it is made under
        saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
        ctx.execution_options.preserve_order = True  # the output run keeps the input's query order
        ctx.enable_progress_bars = job.progress
        try:
            if src.path:
                items = file_blocks(src.path, src.start, src.limit, n, job.queries)
                ds = ray.data.from_items(items, override_num_blocks=max(1, len(items))).flat_map(read_block, num_cpus=0)
            else:
                rows = [_row(r, job.queries) for r in src.rankings()]
                ds = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // n)))
            pool = ray.data.ActorPoolStrategy(size=self.workers)  # a fixed pool (``concurrency=`` is deprecated)
            ds = ds.map_batches(RerankActor, batch_size=n, compute=pool, num_cpus=self.cpus_per_worker,
                                num_gpus=self.gpus_per_worker or None, batch_format="default",
                                fn_constructor_kwargs={"factory": factory, "corpus": job.corpus, "depth": job.depth,
                                                       "threads": max(1, int(self.cpus_per_worker))})
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                ranked, stats = [], EngineStats()
                for row in batch.to_pylist():
                    ranked.append(Ranking(row["qid"], [ScoredDoc(d, s) for d, s in zip(row["docids"], row["scores"])]))
                    if row["stats"]:
                        stats.merge(EngineStats.from_dict(json.loads(row["stats"])))
                yield ranked, stats
        finally:
            ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
