"""Memory and resume of ``rankstack rerank`` on synthetic runs of any size (dense MiniLM reranker).

1. **Files** (outside the repository, ``--dir``, default /tmp/rankstack-stream): for N queries,
   a topics TSV (each query a distinct 4-8 word span of a random DL19 passage) and a TREC run of
   20 candidates per query drawn from the DL19 corpus (4,297 passages), grouped by query.
2. **Memory**: ``rankstack rerank --reranker dense --model minilm-l6 --depth 20`` as a child
   process per size (its own fresh cache), peak RSS from ``wait4`` (the child's ``ru_maxrss``).
3. **Resume** (``--resume-queries N``): one uninterrupted run; one run killed with SIGKILL once
   about half its queries are in the output, then the same command again. Compared: the two
   final files, and the model calls (every distinct request must be computed once: the rows the
   killed run committed + the calls of the restarted run = the uninterrupted run's calls).

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/stream_memory.py --sizes 10000 100000 --resume-queries 10000
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time

from _common import Report  # also sets the offline env defaults
from rankstack.hardware import describe  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_files(d: str, n: int, seed: int = 0) -> tuple[str, str]:
    """``queries-N.tsv`` and ``run-N.trec`` under ``d`` (made once per size)."""
    from rankstack.data import load_dataset

    topics, run = os.path.join(d, f"queries-{n}.tsv"), os.path.join(d, f"run-{n}.trec")
    if os.path.exists(topics) and os.path.exists(run):
        return topics, run
    corpus = list(load_dataset("dl19").corpus)
    rng = random.Random(seed)
    with open(topics + ".tmp", "w") as ft, open(run + ".tmp", "w") as fr:
        for i in range(n):
            words = rng.choice(corpus).text.split()
            k = rng.randint(4, 8)
            s = rng.randrange(max(1, len(words) - k))
            text = " ".join(words[s: s + k]).replace("\t", " ")
            ft.write(f"syn{i}\t{text} {i}\n")  # the index keeps every query text distinct
            for rank, doc in enumerate(rng.sample(corpus, 20), 1):
                fr.write(f"syn{i} Q0 {doc.docid} {rank} {100.0 - rank} synthetic\n")
    os.replace(topics + ".tmp", topics)
    os.replace(run + ".tmp", run)
    return topics, run


def rerank_cmd(run: str, topics: str, out: str, cache: str, threads: int) -> list[str]:
    return [sys.executable, "-m", "rankstack.cli", "-v", "rerank", "--run", run, "--queries", topics,
            "--corpus", "dl19", "--reranker", "dense", "--model", "minilm-l6", "--depth", "20", "--out", out,
            "--cache", cache, "--threads", str(threads), "--no-progress"]


def run_child(cmd: list[str], log: str, kill_at_lines: int | None = None, out: str | None = None):
    """(peak RSS MiB, wall s, stdout text, killed?) of one child process."""
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        killed = False
        if kill_at_lines:
            while proc.poll() is None:
                if os.path.exists(out) and _lines(out) >= kill_at_lines:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed = True
                    break
                time.sleep(0.2)
        stdout = proc.stdout.read()
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if not killed and proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}): {' '.join(cmd)}; see {log}")
    return ru.ru_maxrss / 1024, time.perf_counter() - t0, stdout, killed


def _lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 20), b""))


def summary(stdout: str) -> dict:
    """The numbers of ``rankstack rerank``'s summary line."""
    line = [ln for ln in stdout.splitlines() if ln.startswith("queries ")][-1]
    return {k: float(re.search(re.escape(k) + r" ([\d.]+)", line).group(1))
            for k in ("queries", "resumed", "docs scored", "requests", "model calls", "cache hits")}


def cache_rows(path: str) -> int:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT COUNT(*) FROM outputs").fetchone()[0]
    finally:
        con.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    ap.add_argument("--resume-queries", type=int, default=10000, help="0: skip the resume check")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dir", default="/tmp/rankstack-stream")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "stream_memory.txt"))
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    say = Report(args.out)

    say(f"model: all-MiniLM-L6-v2 (dense reranker, minilm-l6), depth 20, default blocks (20000 / 20 = 1000 "
        f"queries), {args.threads} torch threads; data: synthetic runs of N queries x 20 candidates drawn from the "
        f"4,297 DL19 passages, query texts distinct 4-8 word spans of DL19 passages; files under {args.dir}")
    say(f"hardware: {describe()}; load average at start {os.getloadavg()[0]:.1f} "
        f"(other helpers may be editing code; heavy jobs share one CPU lock)")
    say("")
    say(f"{'queries':>8}  {'candidates':>10}  {'run file MB':>11}  {'peak RSS MiB':>12}  {'wall s':>7}  {'docs/s':>7}  "
        f"{'model calls':>11}  {'cache hits':>10}")
    for n in args.sizes:
        topics, run = make_files(args.dir, n)
        out, cache = os.path.join(args.dir, f"out-{n}.trec"), os.path.join(args.dir, f"cache-{n}.sqlite")
        for p in (out, cache, out + ".resume.json"):
            if os.path.exists(p):
                os.remove(p)
        rss, wall, stdout, _ = run_child(rerank_cmd(run, topics, out, cache, args.threads),
                                         os.path.join(args.dir, f"log-{n}.txt"))
        s = summary(stdout)
        say(f"{n:8d}  {20 * n:10d}  {os.path.getsize(run) / 2**20:11.1f}  {rss:12.0f}  {wall:7.0f}  "
            f"{20 * n / wall:7.0f}  {int(s['model calls']):11d}  {int(s['cache hits']):10d}")

    if args.resume_queries:
        n = args.resume_queries
        topics, run = make_files(args.dir, n)
        ref_out, ref_cache = os.path.join(args.dir, f"ref-{n}.trec"), os.path.join(args.dir, f"ref-{n}.sqlite")
        out, cache = os.path.join(args.dir, f"resume-{n}.trec"), os.path.join(args.dir, f"resume-{n}.sqlite")
        for p in (ref_out, ref_cache, out, cache, out + ".resume.json", ref_out + ".resume.json"):
            if os.path.exists(p):
                os.remove(p)
        _, _, ref_stdout, _ = run_child(rerank_cmd(run, topics, ref_out, ref_cache, args.threads),
                                        os.path.join(args.dir, f"log-ref-{n}.txt"))
        cmd = rerank_cmd(run, topics, out, cache, args.threads)
        _, wall1, _, killed = run_child(cmd, os.path.join(args.dir, f"log-killed-{n}.txt"),
                                        kill_at_lines=n * 20 // 2, out=out)
        kept = _lines(out)
        rows_before = cache_rows(cache)
        _, wall2, stdout2, _ = run_child(cmd, os.path.join(args.dir, f"log-resumed-{n}.txt"))
        s_ref, s2 = summary(ref_stdout), summary(stdout2)
        from rankstack.data.trec import read_run

        a, b = read_run(ref_out), read_run(out)
        same_order = list(a) == list(b) and all(a[q].docids == b[q].docids for q in a)
        diff = max(abs(x.score - y.score) for q in a for x, y in zip(a[q], b[q]))
        with open(ref_out, "rb") as f1, open(out, "rb") as f2:
            identical = f1.read() == f2.read()
        blocks = [ln for ln in open(os.path.join(args.dir, f"log-killed-{n}.txt")) if " block " in ln]
        say("")
        say(f"resume, {n} queries: killed with SIGKILL after {wall1:.0f} s ({'yes' if killed else 'NO: it finished'}) "
            f"with {kept} lines ({kept // 20} queries, {len(blocks)} blocks logged) in the output and "
            f"{rows_before} model outputs committed to the cache")
        say(f"  restarted: resumed {int(s2['resumed'])} queries, reranked {int(s2['queries'])} in {wall2:.0f} s: "
            f"model calls {int(s2['model calls'])}, cache hits {int(s2['cache hits'])}")
        say(f"  uninterrupted run: model calls {int(s_ref['model calls'])}; killed + restarted: "
            f"{rows_before} + {int(s2['model calls'])} = {rows_before + int(s2['model calls'])} "
            f"(cache rows after: {cache_rows(cache)}, uninterrupted: {cache_rows(ref_cache)})")
        say(f"  final file vs uninterrupted: byte-identical {identical}; same queries, docids and order {same_order}; "
            f"max |score diff| {diff:.2e}")
    say(f"load average at end {os.getloadavg()[0]:.1f}")
    say.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
