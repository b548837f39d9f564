"""Runs of any size: the block-by-block run reader, reranking in blocks, the output written block
by block, and resume after ``kill -9`` (a real ``rankstack rerank`` process, the real dense
MiniLM reranker, the real DL19 run)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rankstack.cli import main
from rankstack.data.trec import iter_run, read_run, run_groups, write_run
from rankstack.errors import FormatError
from rankstack.rerankers import load_reranker
from rankstack.rerankers.cache import ScoreCache
from rankstack.rerankers.stream import RunJob, RunSource, marker_path, rerank_to_file
from rankstack.types import Run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def encoder():
    from rankstack.retrieval.dense import load_encoder

    return load_encoder("minilm-l6")


@pytest.fixture(scope="module")
def run6(dl19):
    return Run({q: dl19.run[q].top(12) for q in sorted(dl19.run)[:6]}, name="bm25")


def _close(a: Run, b: Run, tol: float = 1e-5) -> None:
    assert list(a) == list(b)
    for q in a:
        assert a[q].docids == b[q].docids, q
        assert max(abs(x.score - y.score) for x, y in zip(a[q], b[q])) < tol


# --- the run reader ------------------------------------------------------------------------------
def test_streamed_run_equals_read_run_and_splits_at_query_offsets(data_dir):
    path = data_dir / "dl19" / "bm25.trec"
    whole = read_run(path)
    assert Run(iter_run(path)) == whole and list(Run(iter_run(path))) == list(whole)
    groups = list(run_groups(path))
    assert [g.qid for g in groups] == list(whole) and groups[0].start == 0 and groups[0].first_line == 1
    assert all(a.end == b.start for a, b in zip(groups, groups[1:]))
    middle = Run(iter_run(path, start=groups[5].start, end=groups[9].start))  # a block read by offsets
    assert list(middle) == list(whole)[5:9] and all(middle[q] == whole[q] for q in middle)


def test_ungrouped_run_is_refused_with_its_line_and_the_fix(tmp_path):
    p = tmp_path / "mixed.trec"
    p.write_text("q1 Q0 a 1 3.0 t\nq1 Q0 b 2 2.0 t\nq2 Q0 c 1 5.0 t\nq1 Q0 d 3 1.0 t\n")
    with pytest.raises(FormatError, match=r"mixed.trec:4: query 'q1' comes back.*sort -s -k1,1"):
        list(iter_run(p))
    assert list(read_run(p)) == ["q1", "q2"]  # read whole, an ungrouped file is fine
    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 a 1 3.0 t\nq1 Q0 a 2 2.0 t\n")
    with pytest.raises(FormatError, match=r"bad.trec:2: docid 'a' appears twice"):
        list(iter_run(bad))


# --- reranking in blocks ---------------------------------------------------------------------------
def test_blocks_give_the_same_run_as_one_pass(encoder, dl19, run6, tmp_path):
    rr = load_reranker("dense", model="minilm-l6", encoder=encoder, cache=False, progress=False)
    one = rr.rerank_run(run6, dl19.queries, dl19.corpus, depth=10)
    assert one.metadata["queries"] == 6 and one.metadata["docs"] == 60
    blocks = rr.rerank_run(run6, dl19.queries, dl19.corpus, depth=10, block_queries=4)
    _close(blocks, one)
    assert blocks.metadata["requests"] == one.metadata["requests"] == 6 * 11  # 2 blocks, same requests
    path = tmp_path / "in.trec"
    write_run(run6, path)
    from_file = rr.rerank_run(str(path), dl19.queries, dl19.corpus, depth=10, block_queries=5)
    _close(from_file, one)
    assert all(from_file[q].docids[10:] == run6[q].docids[10:] for q in run6)  # the tail below


def test_rerank_run_to_file_appends_blocks_and_resumes_from_the_output(encoder, dl19, run6, tmp_path):
    cache = str(tmp_path / "c.sqlite")
    rr = load_reranker("dense", model="minilm-l6", encoder=encoder, cache=cache, progress=False)
    out = tmp_path / "out.trec"
    md = rr.rerank_run_to_file(run6, dl19.queries, dl19.corpus, out, depth=10, block_queries=2)
    assert md["queries"] == 6 and md["resumed_queries"] == 0 and md["docs"] == 60
    assert not os.path.exists(marker_path(out))  # finished: no resume marker left
    done = read_run(out)
    assert list(done) == list(run6) and done.name == "dense"

    # a run killed after two blocks and a torn line: the marker is there, the output ends mid-query
    text = out.read_text().splitlines(keepends=True)
    out.write_text("".join(text[: 2 * 2 * 12] + text[48:53]) + text[53][:9])
    job = RunJob(RunSource(run6), dl19.queries, dl19.corpus, 10, 2, reranker=rr, progress=False)
    ident = {"identity": rr.fingerprint(), "depth": 10, "tag": "dense", "input": RunSource(run6).identity()}
    Path(marker_path(out)).write_text(__import__("json").dumps(ident))
    md2 = rerank_to_file(job, out, identity=rr.fingerprint(), tag="dense")
    assert md2["resumed_queries"] == 4 and md2["queries"] == 2  # the torn fifth query is redone
    assert md2["model_requests"] == 0 and md2["cache_hits"] == 2 * 11  # all from the cache
    assert out.read_text() == "".join(text)  # byte for byte the uninterrupted output

    # another depth is another command: the output starts over
    Path(marker_path(out)).write_text(__import__("json").dumps(ident))
    md3 = rr.rerank_run_to_file(run6, dl19.queries, dl19.corpus, out, depth=5, block_queries=2)
    assert md3["resumed_queries"] == 0 and md3["queries"] == 6
    assert read_run(out)[list(run6)[0]].docids[5:] == run6[list(run6)[0]].docids[5:]


@pytest.mark.slow
def test_cli_killed_with_sigkill_resumes_to_the_uninterrupted_output(tmp_path, capsys, dl19):
    """``rankstack rerank`` (dense MiniLM, DL19 top-20, blocks of 4 queries) killed with SIGKILL
    once a block is in the output, run again: the final file holds the uninterrupted run's
    rankings, and no request was answered by the model twice."""
    cache = tmp_path / "kill.sqlite"
    argv = ["rerank", "--run", "dl19", "--queries", "dl19", "--corpus", "dl19", "--reranker", "dense",
            "--model", "minilm-l6", "--depth", "20", "--block-queries", "4", "--queries-limit", "24", "--threads", "1",
            "--no-progress"]
    out = tmp_path / "killed.trec"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "rankstack.cli", *argv, "--out", str(out), "--cache", str(cache)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lines = 0
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        lines = out.read_text().count("\n") if out.exists() else 0
        if lines >= 4 * 100:  # one block of 4 queries (100 candidates each) written
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = out.read_text().count("\n")
    assert 400 <= written < 2400 and os.path.exists(marker_path(out))
    scored_before = ScoreCache(str(cache)).count()

    capsys.readouterr()
    assert main([*argv, "--out", str(out), "--cache", str(cache)]) == 0
    summary = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("queries ")][0]
    assert not os.path.exists(marker_path(out))
    fields = summary.split()
    resumed, calls = int(fields[fields.index("resumed") + 1]), int(fields[fields.index("calls") + 1])
    assert resumed * 100 == written // 100 * 100 >= 400  # whole queries kept, a torn one redone
    ref_out = tmp_path / "ref.trec"
    assert main([*argv, "--out", str(ref_out), "--cache", str(tmp_path / "ref.sqlite")]) == 0
    _close(read_run(out), read_run(ref_out))
    distinct = ScoreCache(str(tmp_path / "ref.sqlite")).count()  # every distinct request, computed once
    assert 0 < scored_before and scored_before + calls == distinct == ScoreCache(str(cache)).count()


def test_cli_block_and_resume_summary(tmp_path, capsys, data_dir):
    argv = ["rerank", "--run", "dl19", "--queries", "dl19", "--corpus", "dl19", "--reranker", "dense",
            "--model", "minilm-l6", "--depth", "3", "--queries-limit", "3", "--block-queries", "2",
            "--cache", str(tmp_path / "c.sqlite"), "--no-progress", "--out", str(tmp_path / "o.trec")]
    assert main(argv) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("queries ")][0]
    assert "queries 3  resumed 0  docs scored 9" in line
    assert main(argv[:-2] + ["--out", str(tmp_path / "o2.trec"), "--block-queries", "0"]) == 2
    assert "--block-queries must be > 0" in capsys.readouterr().err


def test_output_cannot_be_the_input(dl19, encoder, tmp_path):
    from rankstack.errors import RankstackError

    path = tmp_path / "in.trec"
    write_run(Run({q: dl19.run[q].top(3) for q in sorted(dl19.run)[:2]}), path)
    before = path.read_text()
    rr = load_reranker("dense", model="minilm-l6", encoder=encoder, cache=False, progress=False)
    with pytest.raises(RankstackError, match="is the input run"):
        rr.rerank_run_to_file(str(path), dl19.queries, dl19.corpus, path, depth=2)
    assert path.read_text() == before
