"""Load test of ``rankstack serve`` on loopback: throughput and latency at 1, 8 and 32 clients.

Each request is one DL19 query with 20 of its BM25 passages (request i: query i mod 43,
passages 20*(i div 43 mod 5) .. +20 of its top-100), sent to ``POST /v1/rerank``; the server
runs SmolLM2-135M pointwise yes/no (``--reranker pointwise --method yesno``) on the hf backend
(``--reranker dense --model minilm-l6``: the MiniLM bi-encoder instead).
Each level sends a fixed number of requests from C client threads (keep-alive connections,
each sending its next request when the previous is answered), then stops. Reported per level:
docs/s (documents answered / wall time), p50/p95/p99 latency, requests merged per engine pass
(from ``/metrics``), and every status received (all must be 200: none lost). The ratio is the
throughput at the largest level over the sequential single-client level.

``--engines torch,onnx-int8`` (dense, cross_encoder): the same levels on one server per engine,
and the docs/s ratio of each engine to the first at each level.

``--control`` adds the largest level on a second server with ``--max-batch-docs`` = one request,
so requests are never merged: it separates the gain of merging from that of concurrency.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/serve_load.py --levels 1,8,32 --requests 12,32,64
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time

from _common import command_line  # also sets the offline env defaults
from rankstack.hardware import describe  # noqa: E402

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
#: the server child imports this checkout's rankstack (and benchmarks/ modules)
CHILD_ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [os.path.dirname(HERE), HERE, os.environ.get("PYTHONPATH")]))}


def build_requests(n_docs: int, n: int) -> list[dict]:
    from rankstack.data import load_dataset

    ds = load_dataset("dl19")
    qids = sorted(ds.run)
    out = []
    for i in range(n):
        q = qids[i % len(qids)]
        block = (i // len(qids)) % max(1, 100 // n_docs)
        ids = ds.run[q].docids[block * n_docs: (block + 1) * n_docs]
        out.append({"query": ds.queries[q].text, "documents": [d.text for d in ds.corpus.get_many(ids)],
                    "return_documents": False})
    return out


def metric(url: str, name: str, key: str | None = None) -> float:
    """One sample of the server's Prometheus text (0 when absent); ``key``: the server's API key."""
    host, port = url.removeprefix("http://").split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    c.request("GET", "/metrics", headers={"Authorization": f"Bearer {key}"} if key else {})
    resp = c.getresponse()
    text = resp.read().decode()
    c.close()
    if resp.status != 200:
        raise RuntimeError(f"GET /metrics answered {resp.status}: {text[:200]}")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def run_level(url: str, requests: list[dict], clients: int) -> dict:
    host, port = url.removeprefix("http://").split(":")
    lock = threading.Lock()
    nxt = {"i": 0}
    lat, statuses = [], {}

    def connect():
        return http.client.HTTPConnection(host, int(port), timeout=3600)

    def client():
        conn = connect()
        while True:
            with lock:
                i = nxt["i"]
                nxt["i"] += 1
            if i >= len(requests):
                break
            body = json.dumps(requests[i]).encode()
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/v1/rerank", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                status = r.status
                if status == 200 and len(json.loads(data)["results"]) != len(requests[i]["documents"]):
                    status = "short answer"
            except (OSError, http.client.HTTPException) as e:
                status = type(e).__name__
                conn.close()
                conn = connect()
            dt = time.perf_counter() - t0
            with lock:
                lat.append(dt)
                statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    passes0, merged0 = metric(url, "rankstack_batch_requests_count"), metric(url, "rankstack_batch_requests_sum")
    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    passes = metric(url, "rankstack_batch_requests_count") - passes0
    merged = metric(url, "rankstack_batch_requests_sum") - merged0
    docs = sum(len(r["documents"]) for r in requests)
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    return {"clients": clients, "requests": len(requests), "docs": docs, "wall": wall, "docs_s": docs / wall,
            "p50": p50, "p95": p95, "p99": p99, "per_pass": merged / max(passes, 1), "passes": int(passes),
            "statuses": statuses}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reranker", default="pointwise", help="pointwise (hf backend) or dense")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--method", default="yesno")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16, help="hf backend: prompts per forward pass")
    ap.add_argument("--docs", type=int, default=20, help="passages per request")
    ap.add_argument("--levels", default="1,8,32", help="concurrent clients per level")
    ap.add_argument("--requests", default="12,32,64", help="requests sent per level (one number, or one per level)")
    ap.add_argument("--max-wait-ms", type=float, default=10.0)
    ap.add_argument("--max-batch-docs", type=int, default=640)
    ap.add_argument("--engines", default=None,
                    help="dense/cross_encoder: engines side by side, one server each, e.g. torch,onnx-int8 "
                         "(--backend-option engine=...); default the reranker's own")
    ap.add_argument("--control", action="store_true", help="also the largest level with merging off")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "serve_load.txt"))
    args = ap.parse_args(argv)

    from rankstack.serve.process import ServerProcess

    levels = [int(x) for x in args.levels.split(",")]
    counts = [int(x) for x in args.requests.split(",")]
    counts = counts * len(levels) if len(counts) == 1 else counts
    reqs = build_requests(args.docs, max(counts) + 1)
    load0 = os.getloadavg()
    common = ["--reranker", args.reranker, "--model", args.model, "--threads", str(args.threads),
              "--batch-size", str(args.batch_size), "--timeout-s", "3600", "--max-wait-ms", str(args.max_wait_ms),
              "--max-queue-docs", str(100 * args.max_batch_docs)]
    if args.reranker == "pointwise":
        common += ["--method", args.method, "--dtype", args.dtype]
    what = (f"{args.reranker} {args.method}, hf backend dtype {args.dtype}" if args.reranker == "pointwise"
            else args.reranker)
    rows = []
    engines = args.engines.split(",") if args.engines else [None]
    for engine in engines:
        opt = ["--backend-option", f"engine={engine}"] if engine else []
        with ServerProcess(common + opt + ["--max-batch-docs", str(args.max_batch_docs)], env=CHILD_ENV) as srv:
            run_level(srv.url, reqs[-1:], 1)  # warm-up (allocator, kernels, an engine's export), not counted
            for c, n in zip(levels, counts):
                rows.append((engine or "merged", run_level(srv.url, reqs[:n], c)))
                print(rows[-1], file=sys.stderr, flush=True)
    if args.control:
        with ServerProcess(common + ["--max-batch-docs", str(args.docs)], env=CHILD_ENV) as srv:
            run_level(srv.url, reqs[-1:], 1)
            rows.append(("not merged", run_level(srv.url, reqs[:counts[-1]], levels[-1])))
            print(rows[-1], file=sys.stderr, flush=True)
    load1 = os.getloadavg()

    base = rows[0][1]["docs_s"]  # the first server's single client: "x seq" of every row is against it
    lines = [
        "# " + command_line(),
        f"model {args.model} {what}, threads {args.threads}, "
        f"batch size {args.batch_size}; server --max-wait-ms {args.max_wait_ms:g} --max-batch-docs {args.max_batch_docs}; "
        "no score cache" + (f"; engines (one server each, --backend-option engine=...): {args.engines}"
                            if args.engines else ""),
        f"data DL19: each request one query + {args.docs} of its BM25 top-100 passages, POST /v1/rerank on loopback",
        f"hardware: {describe()}; client threads in the same machine",
        f"load average (1/5/15 min) at start {load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f}, "
        f"at end {load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f}",
        "",
        f"{'server':<11} {'clients':>7} {'requests':>8} {'docs':>5} {'wall s':>7} {'docs/s':>7} {'x seq':>6} "
        f"{'p50 s':>7} {'p95 s':>7} {'p99 s':>7} {'req/pass':>8}  statuses",
    ]
    for kind, r in rows:
        lines.append(f"{kind:<11} {r['clients']:>7} {r['requests']:>8} {r['docs']:>5} {r['wall']:>7.1f} "
                     f"{r['docs_s']:>7.2f} {r['docs_s'] / base:>6.2f} {r['p50']:>7.2f} {r['p95']:>7.2f} "
                     f"{r['p99']:>7.2f} {r['per_pass']:>8.1f}  {r['statuses']}")
    top = [r for kind, r in rows if kind == (engines[0] or "merged")][-1]
    lines += ["", f"ratio: {top['clients']} clients merged / 1 client sequential = {top['docs_s'] / base:.2f}x "
                  f"(goal >= 3x); every request answered: "
                  f"{all(set(r['statuses']) == {200} for _, r in rows)}"]
    if len(engines) > 1:
        by = {(kind, r["clients"]): r["docs_s"] for kind, r in rows}
        for e in engines[1:]:
            lines.append(f"{e} / {engines[0]} docs/s: " + ", ".join(
                f"{c} client{'s' * (c > 1)} {by[(e, c)] / by[(engines[0], c)]:.2f}x" for c in levels))
    write_result(args.out, lines)
    return 0


def write_result(path: str, lines: list[str]) -> None:
    """The results file (its first line the command) and the same text on stdout."""
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
