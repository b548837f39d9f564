"""Threads chosen from the free cores (rankstack.hardware), and the fallback share of a run
(rankstack.eval.fallbacks) as the CLI summary, the demo and the report show it."""

from __future__ import annotations

import json
import os

import pytest

from rankstack import hardware
from rankstack.eval.fallbacks import fallback_share, fallback_warning


@pytest.fixture
def fresh_choice():
    hardware.default_threads.cache_clear()
    yield
    hardware.default_threads.cache_clear()


def test_usable_cores_and_cpu_sample():
    n = hardware.usable_cores()
    assert 1 <= n <= (os.cpu_count() or 1)
    assert 0.0 <= hardware.busy_cores(0.1) <= n + 0.01


@pytest.mark.parametrize("busy,want", [(0.0, 2), (0.1, 2), (0.75, 1), (0.85, 1), (1.0, 1), (1.9, 1), (6.0, 1)])
def test_default_threads_leaves_busy_cores_alone(busy, want, fresh_choice, monkeypatch):
    monkeypatch.delenv("RANKSTACK_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(hardware, "usable_cores", lambda: 2)
    monkeypatch.setattr(hardware, "busy_cores", lambda interval=0.3: busy)
    assert hardware.default_threads() == want
    assert hardware.threads_note(want, auto=True) == f"threads {want} (auto: 2 cores, {busy:.1f} busy at start)"


def test_threads_env_overrides(fresh_choice, monkeypatch):
    monkeypatch.setenv("RANKSTACK_THREADS", "3")
    assert hardware.default_threads() == 3
    hardware.default_threads.cache_clear()
    monkeypatch.delenv("RANKSTACK_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "64")
    assert hardware.default_threads() == hardware.usable_cores()  # never more than the cores


def test_fallback_share_per_method():
    erank = {"template": "pointwise.erank@1", "requests": 3, "parse_fallback": 3}
    fs = fallback_share(erank)
    assert (fs.method, fs.fell_back, fs.outputs, fs.share) == ("pointwise.erank@1", 3, 3, 1.0)
    w = fallback_warning(erank)
    assert w.startswith("pointwise.erank@1: 3 of 3 model outputs (100%) fell back (parse_fallback 3)")
    rubric = {"reranker": "RubricReranker(hf:x, {})", "requests": 100, "trajectories": 200, "parse_failed": 61,
              "parse_repaired": 37}
    assert fallback_share(rubric).outputs == 200 and fallback_share(rubric).method == "RubricReranker"
    assert "61 of 200 model outputs (30%)" in fallback_warning(rubric)  # repairs are not fallbacks
    assert fallback_warning({"groups": 20, "parse_failed_groups": 4, "requests": 20}) is None  # 20%: not over
    assert fallback_share({"requests": 10}).share == 0.0 and fallback_warning({"requests": 10}) is None
    assert fallback_share(None) is None and fallback_share({"wall_seconds": 1.0}) is None


def test_report_marks_a_run_that_fell_back(tmp_path, data_dir, caplog):
    import rankstack
    from rankstack.data.trec import read_run, write_run, write_run_metadata

    run = read_run(data_dir / "dl19/bm25.trec")
    path = tmp_path / "erank.trec"
    write_run(run, path)
    write_run_metadata(path, {"template": "pointwise.erank@1", "requests": 430, "model_requests": 430,
                              "parse_fallback": 401, "docs": 430, "wall_seconds": 100.0, "depth": 10})
    with caplog.at_level("WARNING"):
        html = rankstack.report({"BM25": "dl19", "erank": str(path)}, "dl19")
    assert '<td class="num fellback">401 of 430 (93%): parse_fallback 401</td>' in html
    assert "erank: pointwise.erank@1: 401 of 430 model outputs (93%) fell back" in html
    assert any("401 of 430" in r.getMessage() for r in caplog.records)
    assert json.loads((tmp_path / "erank.trec.meta.json").read_text())["parse_fallback"] == 401
