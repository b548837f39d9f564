"""What this machine's CPU can do, read once from the operating system.

The ``hf`` backend's ``dtype="auto"`` on CPU asks :func:`default_cpu_dtype`: bf16 where the CPU
has bf16 instructions (``avx512_bf16`` or ``amx_bf16``), where torch runs bf16 matrix products
natively, else fp32 (on AVX2-only CPUs torch emulates bf16, which runs slower than fp32).
``benchmarks/cpu_dtype.py`` measures both on the machine at hand and prints these flags.

:func:`default_threads` is the intra-op thread count every command (and the ``hf`` backend)
uses when none is given: the cores this process may run on (``os.sched_getaffinity``, a cgroup
CPU quota) less those busy at start (a 0.3 s sample of ``/proc/stat``, else the 1-minute load
average), at least 1 and never more than the cores. On a machine where other work runs, more
threads than free cores makes OpenMP's threads wait on each other (a 2-core machine beside one
busy process: 0.7 docs/s at 2 threads against 6 at 1); ``benchmarks/threads_contention.py``
measures it. ``RANKSTACK_THREADS`` (or ``OMP_NUM_THREADS``) set overrides the choice.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import platform
import time
from pathlib import Path

log = logging.getLogger(__name__)

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: flags worth printing beside a CPU benchmark (vector width and bf16/int8 support)
SHOWN_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni", "avx_vnni", "fma")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    model, flags = "", frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:  # not Linux: no flags known
        return platform.processor() or platform.machine(), flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
        if model and flags:
            break
    return model or platform.processor() or platform.machine(), flags


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    return _cpuinfo()[0]


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``); empty where the OS does not say."""
    return _cpuinfo()[1]


def has_bf16() -> bool:
    """Native bf16 matrix instructions (AVX512-BF16 or AMX-BF16)."""
    return any(f in cpu_flags() for f in BF16_FLAGS)


def default_cpu_dtype() -> str:
    """``"bfloat16"`` on CPUs with native bf16 instructions, else ``"float32"``."""
    return "bfloat16" if has_bf16() else "float32"


def describe() -> str:
    """One line for benchmark headers: model, logical CPUs, the flags that decide speed."""
    shown = [f for f in SHOWN_FLAGS if f in cpu_flags()]
    return f"{cpu_model()}, {os.cpu_count()} cpus, flags: {' '.join(shown) or 'unknown'}"


def peak_flops(dtype: str = "float32", cores: int | None = None) -> float | None:
    """An estimate of the CPU's peak FLOP/s for dense matrix products in ``dtype``: cores x clock
    (``cpu MHz`` of ``/proc/cpuinfo``) x FLOPs per cycle, assuming two FMA units per core of the
    widest vector the flags list (AVX-512: 16 fp32 lanes, AVX2: 8; bf16 dot products
    (``avx512_bf16``/AMX) double that for bf16). ``None`` where the OS does not say the clock."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
        mhz = next(float(line.split(":")[1]) for line in text.splitlines() if line.startswith("cpu MHz"))
    except (OSError, StopIteration, ValueError):
        return None
    flags = cpu_flags()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    per_cycle = lanes * 2 * 2  # multiply-add = 2 FLOPs, two FMA units
    if dtype in ("bfloat16", "bf16") and has_bf16():
        per_cycle *= 2
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores * mhz * 1e6 * per_cycle


# --- threads ---------------------------------------------------------------------------------------
def usable_cores() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def _cpu_times(cpus: set[int] | None) -> tuple[float, float] | None:
    """(busy, total) jiffies summed over ``cpus`` (all when None) from ``/proc/stat``.
    Niced work counts as busy only when this process is itself niced (a nice-0 process takes
    the cores from nice-19 jobs)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    niced = os.getpriority(os.PRIO_PROCESS, 0) > 0 if hasattr(os, "getpriority") else False
    busy = total = 0.0
    for line in lines:
        name, *vals = line.split()
        if not name.startswith("cpu") or name == "cpu" or (cpus is not None and int(name[3:]) not in cpus):
            continue
        v = [float(x) for x in vals[:8]] + [0.0] * (8 - len(vals[:8]))
        user, nice, system, idle, iowait, irq, softirq, steal = v
        busy += user + system + irq + softirq + steal + (nice if niced else 0.0)
        total += sum(v)
    return (busy, total) if total else None


def busy_cores(interval: float = 0.3) -> float:
    """How many of this process's cores other work keeps busy now: a ``interval``-second sample of
    ``/proc/stat`` (this process sleeps meanwhile), else the 1-minute load average."""
    try:
        cpus: set[int] | None = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = None
    a = _cpu_times(cpus)
    if a is not None:
        time.sleep(interval)
        b = _cpu_times(cpus)
        if b is not None and b[1] > a[1]:
            return (b[0] - a[0]) / (b[1] - a[1]) * (len(cpus) if cpus else (os.cpu_count() or 1))
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


@functools.lru_cache(maxsize=1)
def default_threads() -> int:
    """Intra-op threads for this process (chosen once, at the first call): ``RANKSTACK_THREADS``
    or ``OMP_NUM_THREADS`` when set, else the usable cores less the busy ones, rounded down
    unless within 0.2 of the next core (oversubscribing costs far more than one idle core),
    at least 1, at most the usable cores."""
    for var in ("RANKSTACK_THREADS", "OMP_NUM_THREADS"):
        val = os.environ.get(var, "").strip()
        if val.isdigit() and int(val) > 0:
            return min(int(val), usable_cores()) if var == "OMP_NUM_THREADS" else int(val)
    cores = usable_cores()
    busy = busy_cores()
    n = max(1, min(cores, math.floor(cores - busy + 0.2)))
    _CHOSEN["why"] = f"auto: {cores} cores, {busy:.1f} busy at start"
    log.info("threads: %d (%s)", n, _CHOSEN["why"])
    return n


_CHOSEN: dict[str, str] = {}


def threads_note(threads: int | None, auto: bool = False) -> str:
    """``"threads 1 (auto: 2 cores, 0.9 busy at start)"`` for a run summary (``auto``: chosen by
    :func:`default_threads`)."""
    if not threads:
        return "threads -"
    why = _CHOSEN.get("why", "auto") if auto else ""
    return f"threads {threads}" + (f" ({why})" if why else "")


def set_torch_threads(threads: int | None = None) -> int:
    """torch's intra-op threads: ``threads`` when given; else at most :func:`default_threads`
    (a count already set lower, by the user or a test, is kept). Returns the count."""
    import torch

    n = int(threads) if threads else min(torch.get_num_threads(), default_threads())
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
