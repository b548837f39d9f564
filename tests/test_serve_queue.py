"""The service's queue limit: past ``max_queue_docs`` waiting documents a request is refused with
503 and ``Retry-After`` (a real ``rankstack serve`` process, the real dense MiniLM reranker), and
the batcher's own rule behind it (a real reranker whose model pass waits on an event)."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from rankstack.rerankers import Reranker
from rankstack.rerankers.engine import PairRequest
from rankstack.serve.batcher import Batcher, Closed, QueueFull
from rankstack.serve.process import ServerProcess
from rankstack.serve.schemas import RerankJob
from rankstack.types import Ranking

ROOT = Path(__file__).resolve().parents[1]


class Gated(Reranker):
    """Scores a passage by its length; each model pass waits until ``gate`` is set."""

    name = "gated"

    def __init__(self):
        super().__init__(cache=False, progress=False)
        self.gate, self.started = threading.Event(), threading.Event()

    def program(self, query, docs, counts: Counter):
        scores = yield [PairRequest(query.text, d.text) for d in docs]
        return Ranking.from_scores(query.qid, [(d.docid, s) for d, s in zip(docs, scores)])

    def execute(self, requests):
        self.started.set()
        assert self.gate.wait(30)
        return [float(len(r.passage)) for r in requests]


def test_batcher_refuses_past_the_queue_limit_and_serves_what_it_took():
    rr = Gated()
    b = Batcher(rr, max_batch_docs=2, max_wait_ms=0, max_queue_docs=4)
    try:
        running = b.submit(RerankJob("q", ["a", "bbb"]))
        assert rr.started.wait(10)  # the worker holds this pass; the queue is empty again
        big = b.submit(RerankJob("q", ["x"] * 6))  # alone in the queue: accepted even over the limit
        with pytest.raises(QueueFull, match="6 documents are waiting .limit 4."):
            b.submit(RerankJob("q", ["y"]))
        assert b.queued_docs == 6
        rr.gate.set()
        assert running.future.result(10).index == [1, 0]  # "bbb" is longer
        assert len(big.future.result(10).index) == 6
        assert b.queued_docs == 0
        b.submit(RerankJob("q", ["z"])).future.result(10)  # room again
    finally:
        rr.gate.set()
        b.close(10)
    with pytest.raises(Closed):
        b.submit(RerankJob("q", ["z"]))


def _post(url: str, body: dict):
    """``(status, headers, JSON body)``; the headers answer case-insensitively."""
    req = urllib.request.Request(url + "/v1/rerank", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


def test_server_answers_503_with_retry_after_when_the_queue_is_full(tmp_path):
    srv = ServerProcess(["--reranker", "_fault_reranker:FaultyDense", "--model", "minilm-l6", "--threads", "1",
                         "--max-queue-docs", "4", "--max-batch-docs", "4", "--max-wait-ms", "0"],
                        env={"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")])},
                        log_path=tmp_path / "server.log").start()
    try:
        answers = {}

        def send(name, body):
            answers[name] = _post(srv.url, body)

        slow = threading.Thread(target=send, args=("slow", {"query": "SLEEP2 fleas", "documents": ["a", "b"]}))
        slow.start()
        time.sleep(0.8)  # the worker is inside the slow pass
        queued = threading.Thread(target=send, args=("queued", {"query": "fleas", "documents": ["c", "d", "e"]}))
        queued.start()
        time.sleep(0.4)  # 3 documents wait
        status, headers, body = _post(srv.url, {"query": "fleas", "documents": ["f", "g"]})
        assert status == 503 and headers.get("Retry-After") == "1", (status, dict(headers), body)
        assert body["error"]["type"] == "unavailable" and "limit 4" in body["error"]["message"]
        slow.join()
        queued.join()
        assert answers["slow"][0] == 200 and answers["queued"][0] == 200
        assert len(answers["queued"][2]["results"]) == 3
    finally:
        assert srv.stop() == 0, srv.log_tail()


def test_a_server_whose_libraries_print_to_stdout_starts_and_never_blocks_on_the_pipe(tmp_path):
    """A line before the URL (NNCF's progress bar at an openvino-int8 export) is skipped, and what is
    printed later (here 256 KB, four times a pipe's buffer) is drained to the log, not left to block."""
    srv = ServerProcess(["--reranker", "_fault_reranker:NoisyDense", "--model", "minilm-l6", "--threads", "1"],
                        env={"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")])},
                        log_path=tmp_path / "server.log", start_timeout=120).start()
    try:
        status, _, body = _post(srv.url, {"query": "PRINT256 fleas", "documents": ["Fleas are insects.", "Stocks fell."]})
        assert status == 200 and body["results"][0]["index"] == 0, body
        status, _, body = _post(srv.url, {"query": "what is a flea?", "documents": ["Stocks fell.", "Fleas bite."]})
        assert status == 200 and body["results"][0]["index"] == 1, body
    finally:
        srv.stop()
    assert "x" * 1023 in (tmp_path / "server.log").read_text()
