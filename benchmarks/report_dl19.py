"""The report's must-show: ``make demo``'s DL19 runs (BM25 and two SmolLM2 rerankers) on one page.

    flock /tmp/rankstack-cpu.lock .venv/bin/python benchmarks/report_dl19.py --runs out/demo_dl19 \
        --out out/report_dl19.html

1. ``rankstack demo --dataset dl19 --depth 10 --threads 2 --save-runs DIR`` (the ``make demo``
   command, leaving its runs behind; a fresh score cache in DIR, so the cost section shows real
   model calls); skipped with ``--reuse`` when DIR already holds the runs;
2. ``rankstack report BM25=DIR/BM25.trec pointwise=DIR/pointwise.trec first=DIR/first.trec --qrels dl19
   --queries dl19 --corpus dl19 -o OUT``;
3. the page opened in headless Chromium: console errors, requests, the summary table it shows,
   the SVG charts it lays out.
Writes ``benchmarks/results/report_dl19.txt`` (the HTML holds DL19 passage text: keep it out of the repo).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import _common  # noqa: F401  (sets the offline env defaults)
from rankstack.hardware import describe  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "report_dl19.txt"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="out/demo_dl19", help="folder for the demo's runs")
    ap.add_argument("--out", default="out/report_dl19.html")
    ap.add_argument("--reuse", action="store_true", help="use the runs already in --runs (no demo)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    from rankstack.cli import main as cli
    from rankstack.report.browser import check_page

    runs = Path(args.runs)
    py = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    env = f"PYTHONPATH={os.environ['PYTHONPATH']} " if os.environ.get("PYTHONPATH") else ""
    lines = [f"{env}flock /tmp/rankstack-cpu.lock {py} " + " ".join(["benchmarks/report_dl19.py"] + sys.argv[1:])]
    lines.append(f"data DL19 (43 judged queries, shipped BM25 top-10), model smollm2-135m (SmolLM2-135M-Instruct, fp32); "
                 f"hardware: {describe()}")
    demo_cmd = ["demo", "--dataset", "dl19", "--depth", "10", "--threads", str(args.threads), "--save-runs", str(runs)]
    if not args.reuse:
        runs.mkdir(parents=True, exist_ok=True)
        cache = runs / "score_cache.sqlite"
        cache.unlink(missing_ok=True)
        os.environ["RANKSTACK_RERANK_CACHE"] = str(cache)  # fresh: the cost section shows real model calls
        buf = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(buf):
            assert cli(demo_cmd) == 0
        lines.append(f"\n# step 1: rankstack {' '.join(demo_cmd)}   (fresh score cache; {time.perf_counter() - t0:.0f} s wall, "
                     f"model load included)")
        lines += buf.getvalue().rstrip().splitlines()
    report_cmd = ["report", *(f"{n}={runs / n}.trec" for n in ("BM25", "pointwise", "first")), "--qrels", "dl19",
                  "--queries", "dl19", "--corpus", "dl19", "-o", args.out]
    t0 = time.perf_counter()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli(report_cmd) == 0
    secs = time.perf_counter() - t0
    size = Path(args.out).stat().st_size
    html = Path(args.out).read_text(encoding="utf-8")
    n_queries = html.count('<details class="query"')
    lines.append(f"\n# step 2: rankstack {' '.join(report_cmd)}")
    lines.append(f"wrote {args.out}: {size:,} bytes ({size / 2**20:.2f} MiB; limit 1 MiB), {secs:.1f} s; "
                 f"{html.count('<svg')} SVG charts, {n_queries} query sections, "
                 f"{html.count('<script')} scripts")
    t0 = time.perf_counter()
    seen = check_page(args.out)
    lines.append(f"\n# step 3: headless Chromium ({_chromium_version()}), {time.perf_counter() - t0:.1f} s")
    lines.append(f"console errors: {len(seen.errors)} {seen.errors if seen.errors else ''}".rstrip())
    lines.append(f"requests besides the page: {len(seen.requests)}")
    lines.append("summary table as rendered:")
    lines += ["  " + " | ".join(row) for row in seen.dom["summary"]]
    lines.append("cost section as rendered:")
    lines += ["  " + " | ".join(row) for row in seen.dom["cost"]]
    lines.append(f"SVG charts laid out: {len(seen.dom['svgs'])}, sizes "
                 + ", ".join(f"{s['w']:.0f}x{s['h']:.0f} ({s['shapes']} shapes)" for s in seen.dom["svgs"]))
    lines.append(f"collapsible query sections: {seen.dom['queries']}")
    load = os.getloadavg()
    lines.append(f"\nload average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (other sessions wrote code meanwhile)")
    text = "\n".join(lines) + "\n"
    RESULTS.write_text(text)
    print(text)
    return 0 if not seen.errors and size < 2**20 else 1


def _chromium_version() -> str:
    from rankstack.report.browser import find_chromium

    try:
        return subprocess.run([find_chromium(), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError, TypeError):
        return "unknown version"


if __name__ == "__main__":
    sys.exit(main())
