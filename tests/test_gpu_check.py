"""benchmarks/gpu_check.py end to end on the CPU (``--tiny``): the same code path the GPU run takes
(model from a config, hf backend, pointwise and FIRST timing, FLOP counting), in seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_tiny_runs_end_to_end(tmp_path, data_dir):
    out = tmp_path / "gpu_check.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--tiny", "--queries", "3",
                        "--depth", "4", "--windows", "2", "--out", str(out)],
                       env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    text = out.read_text()
    assert text.splitlines()[0].endswith("gpu_check.py --tiny --queries 3 --depth 4 --windows 2 --out " + str(out))
    assert "data: DL19 BM25, 3 queries" in text and "random weights" in text
    # backend, method, then: prompts, docs, seconds, docs/s, tokens/s, TFLOP/s, MFU
    rows = {ln[10:38].strip(): ln[38:].split() for ln in text.splitlines() if ln.startswith("hf ")}
    point, first = rows["pointwise yes/no"], rows["FIRST windows (2 x 20)"]
    assert point[:2] == ["12", "12"] and first[:2] == ["2", "40"]  # 3 x 4 pointwise docs, 2 windows of 20
    for row in (point, first):
        assert float(row[3]) > 0 and float(row[4]) > 0 and float(row[5]) > 0 and row[6] == "n/a"
    assert "vllm" not in text  # CPU: the vLLM part does not run
