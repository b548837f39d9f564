"""Latency of a 5-document request as the query grows (16 to 16,000 characters), on two real
``rankstack serve`` processes side by side (SmolLM2-135M pointwise yes/no, fp32): "before", the
code of another checkout (``--before ../main``: the main branch before the query limits, which
scored every prompt with the whole query), and "after", this checkout (a query cut to 256 tokens
by default). Requests alternate between the two servers, so both see the same machine load (this
machine is shared).

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/serve_long_query.py --threads 1 --before ../main

Each length and server: one warm-up request, then ``--repeats`` requests; the median and the max
latency, the status, and the first document's relevance score (the cut query scores differently).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.error
import urllib.request

from _common import command_line  # also sets the offline env defaults
from rankstack.hardware import describe  # noqa: E402
from serve_load import HERE, write_result

LENGTHS = (16, 1_000, 4_000, 16_000)


def post(url: str, body: dict) -> tuple[int, float, dict]:
    req = urllib.request.Request(url + "/v1/rerank", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            out = json.loads(r.read())
            return r.status, time.perf_counter() - t0, out
    except urllib.error.HTTPError as e:
        return e.code, time.perf_counter() - t0, json.loads(e.read())


def inputs() -> tuple[str, str, str, list[str]]:
    """DL19's first query, the text that lengthens it (other queries' passages: a document pasted
    as a query), and its 5 BM25 passages."""
    from rankstack.data import load_dataset

    ds = load_dataset("dl19")
    qids = sorted(ds.run)
    filler = " ".join(d.text for q in qids[1:40] for d in ds.corpus.get_many(ds.run[q].docids[:3]))
    return qids[0], ds.queries[qids[0]].text, filler, [d.text for d in ds.corpus.get_many(ds.run[qids[0]].docids[:5])]


def serve(code: str, server_args: list[str]):
    from rankstack.serve.process import ServerProcess

    os.chdir(code)  # `python -m` puts the working folder first on the path: the served code is `code`'s
    return ServerProcess(server_args, env={"PYTHONPATH": os.pathsep.join([code, HERE])}).start()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--before", required=True, help="the checkout whose rankstack is served as 'before'")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "serve_long_query.txt"))
    args = ap.parse_args(argv)

    q0, base, filler, docs = inputs()
    codes = {"before": os.path.abspath(args.before), "after": os.path.dirname(HERE)}
    server_args = ["--reranker", "pointwise", "--model", "smollm2-135m", "--method", "yesno", "--dtype", "float32",
                   "--threads", str(args.threads), "--timeout-s", "600"]
    load0 = os.getloadavg()
    servers = {label: serve(code, server_args) for label, code in codes.items()}
    rows = []
    try:
        for n in LENGTHS:
            body = {"query": (base + " " + filler)[:n], "documents": docs, "return_documents": False}
            runs: dict[str, list] = {label: [] for label in servers}
            for label, srv in servers.items():
                post(srv.url, body)  # warm-up
            for _ in range(args.repeats):
                for label, srv in servers.items():
                    runs[label].append(post(srv.url, body))
            for label, got in runs.items():
                lat = [t for _, t, _ in got]
                status, _, out = got[-1]
                top = out["results"][0]["relevance_score"] if status == 200 else out.get("error", {}).get("type")
                rows.append((label, n, status, statistics.median(lat), max(lat), top))
                print(rows[-1], file=sys.stderr, flush=True)
    finally:
        for srv in servers.values():
            srv.stop()
    load1 = os.getloadavg()
    lines = [
        "# " + command_line(),
        "code served: " + "; ".join(f"{label} {code}" for label, code in codes.items()),
        f"server (both): rankstack serve {' '.join(server_args)}",
        f"model smollm2-135m pointwise yesno (fp32, hf backend); data DL19 query {q0} followed by other "
        "DL19 passages' text up to each length; its 5 BM25 passages",
        f"hardware: {describe()}; load average at start {load0[0]:.2f}, at end {load1[0]:.2f}",
        "",
        f"{'code':<7} {'query chars':>11} {'status':>6} {'median s':>9} {'max s':>7}  top relevance_score",
    ]
    lines += [f"{lb:<7} {n:>11} {s:>6} {med:>9.3f} {mx:>7.3f}  {top}" for lb, n, s, med, mx, top in rows]
    write_result(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
