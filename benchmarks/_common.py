"""Shared set-up of the benchmark scripts: offline defaults and the hardware line they print.

Importing this module sets ``HF_HUB_OFFLINE=1`` and, unless set, ``RANKSTACK_DATA`` (the shared
collections next to this checkout) and ``RANKSTACK_CACHE`` (``.cache/rankstack`` in the checkout).
"""

from __future__ import annotations

import os
import platform

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RANKSTACK_DATA", os.path.join(_ROOT, "..", "shared", "data"))
os.environ.setdefault("RANKSTACK_CACHE", os.path.join(_ROOT, ".cache", "rankstack"))


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (``platform.processor()`` is empty on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()



def command_line() -> str:
    """The command that started this script, as typed: with the ``flock`` (or ``timeout``)
    wrapper that launched it when there is one (read from the parent process)."""
    import shlex
    import sys

    own = shlex.join([os.path.relpath(sys.executable) if sys.executable.startswith(_ROOT) else sys.executable]
                     + sys.argv)
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            parent = [a.decode() for a in f.read().split(b"\0") if a]
    except OSError:
        return own
    if parent and os.path.basename(parent[0]) in ("flock", "timeout"):
        return shlex.join(parent)
    return own


class Report:
    """A results file: each line printed as it comes, all written to ``path`` at :meth:`save`,
    the command that produced them first."""

    def __init__(self, path: str):
        self.path = path
        self.lines: list[str] = []
        self(command_line())

    def __call__(self, msg: str = "") -> None:
        print(msg, flush=True)
        self.lines.append(msg)

    def save(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "w") as f:
            f.write("\n".join(self.lines) + "\n")
