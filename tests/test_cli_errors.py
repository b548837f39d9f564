"""Every command, given a folder, a missing file or a typo'd dataset name where it reads an input,
answers with exactly one line on stderr (no traceback) and exit code 1; a usage error exits 2;
Ctrl-C in ``rerank`` exits 130 saying how to resume. Run as a real process: what a user sees."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# each command with {INPUT} where it reads a run / topics / qrels / corpus; the other inputs are good
COMMANDS = {
    "eval run": ["eval", "{INPUT}", "--qrels", "dl19"],
    "eval qrels": ["eval", "dl19", "--qrels", "{INPUT}"],
    "report run": ["report", "{INPUT}", "--qrels", "dl19", "-o", "{TMP}/r.html"],
    "report corpus": ["report", "dl19", "--qrels", "dl19", "--corpus", "{INPUT}", "-o", "{TMP}/r.html"],
    "fuse": ["fuse", "dl19", "{INPUT}", "-o", "{TMP}/f.trec"],
    "convert run": ["convert", "run", "{INPUT}", "{TMP}/c.trec"],
    "convert topics": ["convert", "topics", "{INPUT}", "{TMP}/t.tsv"],
    "rerank run": ["rerank", "--run", "{INPUT}", "--queries", "dl19", "--corpus", "dl19", "--out", "{TMP}/o.trec"],
    "rerank queries": ["rerank", "--run", "dl19", "--queries", "{INPUT}", "--corpus", "dl19", "--out", "{TMP}/o.trec"],
    "rerank qrels": ["rerank", "--run", "dl19", "--queries", "dl19", "--corpus", "dl19", "--out", "{TMP}/o.trec",
                     "--qrels", "{INPUT}"],
    "retrieve queries": ["retrieve", "--corpus", "cacm", "--queries", "{INPUT}", "-o", "{TMP}/r.trec"],
    "index": ["index", "{INPUT}", "{TMP}/idx"],
    "train sft": ["train", "sft", "--dataset", "dl19", "--qrels", "{INPUT}", "-o", "{TMP}/m"],
    "train mvp": ["train", "mvp", "--queries", "dl19", "--run", "{INPUT}", "--corpus", "dl19",
                  "--teacher", "dense:minilm-l6", "-o", "{TMP}/m"],
    "train distill": ["train", "distill", "--corpus", "{INPUT}", "--out", "{TMP}/d"],
    "generate-queries": ["generate-queries", "{INPUT}", "-o", "{TMP}/q.tsv"],
}
# what the one line must say for each kind of bad input
BAD = {"folder": "is a folder", "missing": "no such file", "typo": "did you mean dl19"}
OTHER = [  # (argv, exit code, what the line says)
    (["fuse", "dl19", "dl19", "--depth", "0", "-o", "{TMP}/f0.trec"], 2, "--depth must be a positive integer"),
    (["rerank", "--run", "dl19", "--queries", "dl19", "--corpus", "dl19", "--out", "{TMP}/o.trec",
      "--model", "./my-model"], 1, "./my-model: the folder does not exist"),
    (["serve", "--model", "./my-model", "--port", "0"], 1, "the folder does not exist"),
    (["demo", "--dataset", "dl91"], 1, "unknown dataset 'dl91' (did you mean dl19?)"),
    (["rerank", "--run", "dl19", "--queries", "dl19", "--corpus", "dl19", "--out", "{TMP}"], 1, "is a folder"),
    (["eval", "dl19", "--qrels", "dl19", "-m", "nDCG@x"], 1, "unknown measure"),
    (["rerank", "--run", "dl19", "--queries", "dl19", "--corpus", "dl19", "--out", "{TMP}/o.trec",
      "--depth", "0"], 2, "--depth must be > 0"),
]

DRIVER = """
import io, json, logging, sys
from rankstack.cli import main
results = []
for argv in json.loads(sys.stdin.read()):
    err, old = io.StringIO(), sys.stderr
    sys.stderr = err
    for h in list(logging.root.handlers):  # a fresh process's logging for each command
        logging.root.removeHandler(h)
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    finally:
        sys.stderr = old
    results.append([rc, err.getvalue()])
print(json.dumps(results))
"""


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("RANKSTACK_QUICK", None)
    return env


def _fill(argv, tmp: Path, value: str = "") -> list[str]:
    return [a.replace("{INPUT}", value).replace("{TMP}", str(tmp)) for a in argv]


def test_each_command_bad_input_is_one_line(tmp_path, data_dir):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    inputs = {"folder": str(folder), "missing": str(tmp_path / "no-such-file.trec"), "typo": "dl91"}
    cases, labels = [], []
    for name, argv in COMMANDS.items():
        for kind, value in inputs.items():
            if (name, kind) in (("index", "folder"), ("train distill", "folder"), ("generate-queries", "folder"),
                                ("report corpus", "folder")):
                continue  # a corpus may be a folder of HTML pages: its own message below
            cases.append(_fill(argv, tmp_path, value))
            labels.append((name, kind, 1, BAD[kind]))
    for argv, code, text in OTHER:
        cases.append(_fill(argv, tmp_path))
        labels.append((" ".join(argv[:2]), "other", code, text))
    cases.append(["index", str(folder), str(tmp_path / "idx2")])
    labels.append(("index", "folder", 1, "holds no .html files"))
    proc = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps(cases), capture_output=True, text=True,
                          env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for (name, kind, code, text), (rc, err) in zip(labels, results):
        lines = err.splitlines()
        assert len(lines) == 1, (name, kind, err)
        assert rc == code and text in lines[0] and lines[0].startswith("rankstack "), (name, kind, rc, err)
        assert "Traceback" not in err and "Loading weights" not in err  # inputs checked before any model loads


def test_verbose_shows_the_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rankstack.cli", "-v", "eval", str(tmp_path), "--qrels", "dl19"],
                          capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 1 and "Traceback" in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith("rankstack eval: error: run ")


@pytest.mark.slow
def test_ctrl_c_in_rerank_says_how_to_resume(tmp_path, data_dir):
    """Ctrl-C after the first query: exit 130, one line saying how many queries are kept, and the
    output and its resume marker left for the rerun (resuming itself: tests/test_stream.py)."""
    from rankstack.data.trec import read_run
    from rankstack.rerankers.stream import marker_path

    out = tmp_path / "dense.trec"
    argv = [sys.executable, "-m", "rankstack.cli", "rerank", "--run", "dl19", "--queries", "dl19", "--corpus", "dl19",
            "--reranker", "dense", "--depth", "100", "--block-queries", "1", "--out", str(out), "--no-progress",
            "--no-cache", "--threads", "1"]  # 43 queries x 100 passages: minutes, interrupted after seconds
    # a job started in the background by a non-interactive shell (CI under nohup/&) inherits SIGINT
    # ignored, and Python then keeps it ignored: restore the default, as a terminal's Ctrl-C sees it
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while time.time() < deadline and (not out.exists() or not out.read_text().strip()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert lines == [lines[-1]] and "Traceback" not in err  # --no-progress: nothing but the one line
    assert lines[0].startswith("rankstack rerank: error: interrupted after ")
    assert lines[0].endswith("; rerun the same command to resume")
    done = int(lines[0].split("interrupted after ")[1].split()[0])
    assert 1 <= done < 43 and len(read_run(out)) == done and Path(marker_path(out)).exists()
