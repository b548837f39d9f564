"""What this machine's CPU can do, read once from the operating system.

The ``hf`` backend's ``dtype="auto"`` on CPU asks :func:`default_cpu_dtype`: bf16 where the CPU
has bf16 instructions (``avx512_bf16`` or ``amx_bf16``), where torch runs bf16 matrix products
natively, else fp32 (on AVX2-only CPUs torch emulates bf16, which runs slower than fp32).
``benchmarks/cpu_dtype.py`` measures both on the machine at hand and prints these flags.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

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
    import os

    shown = [f for f in SHOWN_FLAGS if f in cpu_flags()]
    return f"{cpu_model()}, {os.cpu_count()} cpus, flags: {' '.join(shown) or 'unknown'}"


def peak_flops(dtype: str = "float32", cores: int | None = None) -> float | None:
    """An estimate of the CPU's peak FLOP/s for dense matrix products in ``dtype``: cores x clock
    (``cpu MHz`` of ``/proc/cpuinfo``) x FLOPs per cycle, assuming two FMA units per core of the
    widest vector the flags list (AVX-512: 16 fp32 lanes, AVX2: 8; bf16 dot products
    (``avx512_bf16``/AMX) double that for bf16). ``None`` where the OS does not say the clock."""
    import os

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
