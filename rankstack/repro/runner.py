"""Run reproduction conditions: each command once, in a subprocess, its number checked.

A command is a bash script run from the repository root with ``$WORK`` set to an empty folder
of its own; ``rankstack`` and ``python`` in it are this interpreter (the rankstack being
checked, whatever ``PATH`` holds). Conditions that share a command (several rows of one table)
run it once and each read their number from its output.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rankstack.repro.conditions import Condition, find_number

log = logging.getLogger(__name__)
OK, FAIL, ERROR, SKIP = "ok", "FAIL", "error", "skip"


@dataclass
class Outcome:
    """What running one condition gave: ``measured`` is the number as the command printed it
    (None when it printed none), ``status`` one of ok / FAIL / error / skip, ``detail`` why."""

    condition: Condition
    status: str
    measured: str | None = None
    detail: str = ""
    seconds: float | None = None

    @property
    def failed(self) -> bool:
        return self.status in (FAIL, ERROR)

    @property
    def delta(self) -> float | None:
        return None if self.measured is None else float(self.measured) - self.condition.expected


def machine_kind() -> str:
    """The CPU kind conditions name: ``avx512_bf16``, ``avx512``, ``avx2`` or ``other``."""
    from rankstack.hardware import cpu_flags, has_bf16

    flags = cpu_flags()
    return "avx512_bf16" if has_bf16() else "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"


def default_root() -> Path:
    """The checkout rankstack runs from when it has ``benchmarks/`` (an editable install), else the
    current folder."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "benchmarks").is_dir() else Path.cwd()


def _shims(folder: Path) -> None:
    for name, target in (("python", f'exec "{sys.executable}" "$@"'),
                         ("rankstack", f'exec "{sys.executable}" -m rankstack.cli "$@"')):
        p = folder / name
        p.write_text(f"#!/bin/sh\n{target}\n")
        p.chmod(0o755)


def run_command(command: str, root: Path, work: Path, timeout: float | None = None) -> tuple[int, str, float]:
    """``command`` run by bash in ``root`` with ``$WORK=work``; returns (exit status, stdout and
    stderr together, seconds). A command past ``timeout`` seconds is killed (status 124)."""
    bin_dir = work / ".bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    _shims(bin_dir)
    env = {**os.environ, "WORK": str(work), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    t0 = time.perf_counter()
    try:
        p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", command], cwd=root, env=env, timeout=timeout,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        return p.returncode, p.stdout, time.perf_counter() - t0
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return 124, out + f"\n(killed after {timeout:g} s)", time.perf_counter() - t0


def check(cond: Condition, output: str, kind: str) -> Outcome:
    """The condition's number read from ``output`` and checked against expected +- its tolerance
    on a machine of ``kind``."""
    raw = find_number(output, cond.pattern, cond.after)
    if raw is None:
        return Outcome(cond, ERROR, detail=f"the output has no match for {cond.pattern!r}")
    tol = cond.tolerance_on(kind)
    out = Outcome(cond, OK, raw)
    if abs(out.delta) > tol + 1e-12:
        out.status, out.detail = FAIL, f"|delta| > tolerance {tol:g}"
    return out


def missing_requirements(cond: Condition) -> list[str]:
    return [m for m in cond.requires if importlib.util.find_spec(m) is None]


def run_conditions(conditions: list[Condition], root: Path | None = None, timeout: float | None = None,
                   keep: Path | None = None, on_command=None) -> list[Outcome]:
    """Run ``conditions`` (each distinct command once, in the file's order) and check each.

    Args:
        conditions: what to run (:func:`~rankstack.repro.conditions.load_conditions`, ``select``).
        root: the folder commands run in and results files are relative to (default: :func:`default_root`).
        timeout: seconds one command may take (default: no limit).
        keep: a folder to keep each command's ``$WORK`` and ``output.txt`` in (default: a temporary one).
        on_command: called as ``on_command(i, n, condition)`` before the i-th of n distinct commands runs.

    Returns:
        One :class:`Outcome` per condition, in the order given.
    """
    root = Path(root) if root is not None else default_root()
    kind = machine_kind()
    base = Path(keep) if keep is not None else Path(tempfile.mkdtemp(prefix="rankstack-repro-"))
    done: dict[str, tuple[int, str, float]] = {}
    n_commands = len({c.command for c in conditions if not missing_requirements(c)})
    outcomes = []
    try:
        for cond in conditions:
            missing = missing_requirements(cond)
            if missing:
                outcomes.append(Outcome(cond, SKIP, detail=f"needs {', '.join(missing)}"))
                continue
            if cond.command not in done:
                work = base / f"cmd{len(done) + 1}"
                log.info("repro: running %s (for %s)", cond.command.splitlines()[0], cond.id)
                if on_command is not None:
                    on_command(len(done) + 1, n_commands, cond)
                done[cond.command] = run_command(cond.command, root, work, timeout)
                (work / "output.txt").write_text(done[cond.command][1], encoding="utf-8")
            rc, output, secs = done[cond.command]
            if rc != 0:
                tail = " | ".join(output.strip().splitlines()[-3:])
                tail = tail if len(tail) <= 160 else "..." + tail[-157:]
                outcomes.append(Outcome(cond, ERROR, detail=f"command exited {rc}: {tail}", seconds=secs))
                continue
            outcome = check(cond, output, kind)
            outcome.seconds = secs
            outcomes.append(outcome)
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return outcomes
