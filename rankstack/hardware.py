"""What this machine's CPU can do, read from its flags (never assumed).

bf16 matmuls are fast only on CPUs with bf16 instructions (avx512_bf16, AMX); on AVX2-only CPUs
bf16 runs far slower than fp32. :func:`default_cpu_dtype` picks by the flags.
"""

from __future__ import annotations

import functools
import platform


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo`` on Linux; empty where unreadable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_bf16() -> bool:
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def default_cpu_dtype() -> str:
    """``"bfloat16"`` on CPUs with bf16 instructions, else ``"float32"``."""
    return "bfloat16" if has_bf16() else "float32"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
