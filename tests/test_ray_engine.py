"""Reranking on Ray: a real local cluster (2 CPUs, a small object store, no dashboard), Ray Data
with one row per query, two actors each loading the real dense MiniLM reranker, DL19 top-10 (all
43 queries). Same rankings as one process; a worker killed with SIGKILL mid-run still gives the
whole run. Each Ray run starts two fresh actors (torch, transformers, the model) and the 2 cores
are shared, so the depth is kept small: the checks are about the engine, not the model."""

from __future__ import annotations

import os
import signal

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from rankstack.data.trec import read_run  # noqa: E402
from rankstack.rerankers import load_reranker  # noqa: E402
from rankstack.rerankers.ray_engine import RayEngine  # noqa: E402
from rankstack.rerankers.stream import RunJob, RunSource  # noqa: E402
from rankstack.types import Run  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
DEPTH = 10


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ray.init(num_cpus=2, object_store_memory=160 * 2**20, include_dashboard=False, log_to_driver=False,
             _temp_dir=str(tmp_path_factory.mktemp("ray")), logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def top(dl19):
    return dl19.run.top(DEPTH)


@pytest.fixture(scope="module")
def reference(one_torch_thread, dl19, top):
    rr = load_reranker("dense", model="minilm-l6", cache=False, progress=False)
    return rr.rerank_run(top, dl19.queries, dl19.corpus, depth=DEPTH)


def _same(a: Run, b: Run) -> None:
    assert list(a) == list(b)  # the input's query order
    for q in a:
        assert a[q].docids == b[q].docids, q
        assert max(abs(x.score - y.score) for x, y in zip(a[q], b[q])) < 1e-5


def _actor_pids() -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["cmdline"])
            if any("RerankActor" in part for part in (p.info["cmdline"] or []))]


def test_ray_run_equals_one_process_in_memory_and_from_a_file(cluster, dl19, top, reference, tmp_path):
    rr = load_reranker("dense", model="minilm-l6", cache=False, progress=False)
    engine = RayEngine(workers=2, cpus_per_worker=1)
    on_ray = rr.rerank_run(top, dl19.queries, dl19.corpus, depth=DEPTH, block_queries=5, engine=engine)
    _same(on_ray, reference)
    assert on_ray.metadata["queries"] == 43 and on_ray.metadata["requests"] == 43 * (DEPTH + 1)  # counts come back
    out = tmp_path / "ray.trec"
    path = dl19.corpus_path.parent / "bm25.trec"  # the file itself, read in blocks by Ray tasks
    md = rr.rerank_run_to_file(str(path), dl19.queries, dl19.corpus, out, depth=DEPTH, block_queries=6, engine=engine)
    assert md["queries"] == 43
    _same(read_run(out).top(DEPTH), reference)  # the tail below the top DEPTH keeps BM25's order


def test_killed_worker_still_gives_the_whole_identical_run(cluster, dl19, top, reference, tmp_path):
    rr = load_reranker("dense", model="minilm-l6", cache=str(tmp_path / "shared.sqlite"), progress=False)
    job = RunJob(RunSource(top), dl19.queries, dl19.corpus, DEPTH, 2, reranker=rr, progress=False)
    got: dict = {}
    killed = None
    for ranked, _ in RayEngine(workers=2, cpus_per_worker=1).run(job):
        for r in ranked:
            got[r.qid] = r
        if killed is None:  # the first batch is back: kill one actor while both hold batches
            pids = _actor_pids()
            assert len(pids) == 2, pids
            killed, before = pids[0], len(got)
            os.kill(killed, signal.SIGKILL)
    assert killed is not None and before < 43 / 2  # killed early in the run
    _same(Run(got.values()), reference)


def test_cli_ray_flags(cluster, dl19, reference, tmp_path, capsys):
    from rankstack.cli import main

    out = tmp_path / "cli.trec"
    argv = ["rerank", "--run", "dl19", "--queries", "dl19", "--corpus", "dl19", "--reranker", "dense",
            "--model", "minilm-l6", "--depth", str(DEPTH), "--queries-limit", "10", "--block-queries", "3", "--no-cache",
            "--no-progress", "--ray", "--workers", "2", "--cpus-per-worker", "1", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "(Ray, 2 workers)" in text and f"queries 10  resumed 0  docs scored {10 * DEPTH}" in text
    got = read_run(out)
    _same(got.top(DEPTH), Run(reference[q] for q in got))
    assert list(got) == list(reference)[:10]
