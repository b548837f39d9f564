"""Latency of a 5-document request as the query grows (16 to 16,000 characters), on a real
``rankstack serve`` (SmolLM2-135M pointwise yes/no, fp32): the server's query limits (256 tokens
by default, cut) against the code of another checkout (``--code /path``: e.g. the main branch
before the limits existed, which scored every prompt with the whole query).

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/serve_long_query.py --threads 1 --label after
    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/serve_long_query.py --threads 1 --label before \\
        --code ../main --append

Each length: one warm-up request, then ``--repeats`` requests; the median and the max latency,
the status, and the first document's relevance score (the cut query scores differently).
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
from serve_load import HERE

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--label", default="after")
    ap.add_argument("--code", default=None, help="serve this checkout's rankstack (default: this one)")
    ap.add_argument("--append", action="store_true", help="add to the results file instead of replacing it")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "serve_long_query.txt"))
    args = ap.parse_args(argv)

    from rankstack.serve.process import ServerProcess

    q0, base, filler, docs = inputs()
    code = os.path.abspath(args.code or os.path.dirname(HERE))
    env = {"PYTHONPATH": os.pathsep.join([code, HERE])}
    os.chdir(code)  # `python -m` puts the working folder first on the path: the served code is `code`'s
    server_args = ["--reranker", "pointwise", "--model", "smollm2-135m", "--method", "yesno", "--dtype", "float32",
                   "--threads", str(args.threads), "--timeout-s", "600"]
    load0 = os.getloadavg()
    rows = []
    with ServerProcess(server_args, env=env) as srv:
        for n in LENGTHS:
            body = {"query": (base + " " + filler)[:n], "documents": docs, "return_documents": False}
            post(srv.url, body)  # warm-up
            runs = [post(srv.url, body) for _ in range(args.repeats)]
            lat = [t for _, t, _ in runs]
            status, _, out = runs[-1]
            top = out["results"][0]["relevance_score"] if status == 200 else out.get("error", {}).get("type")
            rows.append((n, status, statistics.median(lat), max(lat), top))
            print(rows[-1], file=sys.stderr, flush=True)
    load1 = os.getloadavg()
    lines = [
        "# " + command_line(),
        f"label: {args.label}; code served: {code}",
        f"server: rankstack serve {' '.join(server_args)}",
        f"model smollm2-135m pointwise yesno (fp32, hf backend); data DL19 query {q0} followed by other "
        "DL19 passages' text up to each length; its 5 BM25 passages",
        f"hardware: {describe()}; load average at start {load0[0]:.2f}, at end {load1[0]:.2f}",
        "",
        f"{'query chars':>11} {'status':>6} {'median s':>9} {'max s':>7}  top relevance_score",
    ]
    lines += [f"{n:>11} {s:>6} {med:>9.3f} {mx:>7.3f}  {top}" for n, s, med, mx, top in rows]
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "a" if args.append else "w") as f:
        f.write(("\n" if args.append else "") + text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
