"""Every example in README.md and docs/*.md runs as written, on a tiny budget.

- each fenced ```python block runs on its own, as a reader who copies it runs it (its own
  imports, its own data); a file's blocks run in order in one interpreter and scratch folder, each
  in a fresh namespace unless ``<!-- snippet: continues -->`` before it says it goes on from the
  previous block;
- each ``rankstack ...`` command of a fenced ```console block (lines starting ``$ ``) or
  ```bash/```sh block runs and must exit 0; a file's commands run in order in one scratch folder
  (a later one may read an earlier one's output);
- both with ``RANKSTACK_QUICK=1``: named datasets load as a miniature (2 judged queries, top 5,
  a small corpus; ``rankstack.data.datasets``), so a rerank takes seconds.

A block that cannot run here (a GPU, a server, a hub download, minutes of CPU, a fragment of a
user's own pipeline) carries ``<!-- snippet: skip (the reason) -->`` on the line before it;
any other block that fails fails this test, naming the file and line.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [p for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))] if p.exists()]
SKIP = re.compile(r"<!--\s*snippet:\s*skip\b(.*?)-->", re.I)
CONTINUES = re.compile(r"<!--\s*snippet:\s*continues\s*-->", re.I)
FENCE = re.compile(r"^(\s*)```+\s*([\w+-]*)")
SHELL = {"bash", "sh", "shell", "console", "shell-session"}


@dataclass
class Block:
    path: Path
    line: int          # 1-based line of the opening fence
    lang: str
    text: str
    skip: str | None   # the marker's reason, None: runs
    continues: bool = False  # shares the previous block's names

    def where(self) -> str:
        try:
            return f"{self.path.relative_to(ROOT)}:{self.line}"
        except ValueError:  # a file outside the checkout (the tests' own examples)
            return f"{self.path.name}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a markdown file, each with the skip marker before it (if any)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        marker = SKIP.search(lines[j]) if j >= 0 else None
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith("```"):
            end += 1
        indent = len(m.group(1))
        body = "\n".join(ln[indent:] for ln in lines[i + 1:end])
        out.append(Block(path, i + 1, m.group(2).lower(), body,
                         (marker.group(1).strip(" ()") or "no reason given") if marker else None,
                         j >= 0 and CONTINUES.search(lines[j]) is not None))
        i = end + 1
    return out


def commands(block: Block) -> list[str]:
    """The ``rankstack ...`` commands of a shell block (``$ `` prompts in console blocks; trailing
    backslashes join lines; comments dropped)."""
    cmds, cur = [], ""
    console = block.lang in ("console", "shell-session")
    for raw in block.text.splitlines():
        line = raw.rstrip()
        if not cur:
            if console and not line.startswith("$ "):
                continue  # output shown in the docs
            line = line[2:] if line.startswith("$ ") else line
        cur += (" " if cur else "") + line.rstrip("\\").strip()
        if line.endswith("\\"):
            continue
        text = cur
        cur = ""
        words = shlex.split(text, comments=True) if text.strip() else []
        if words and words[0] == "rankstack":
            cmds.append(text)
    return cmds


def _env(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / "rankstack"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m rankstack.cli "$@"\n')
    exe.chmod(0o755)
    return dict(os.environ, RANKSTACK_QUICK="1", PYTHONPATH=str(ROOT), PATH=f"{bin_dir}:{os.environ['PATH']}")


def test_markdown_blocks_are_found():
    """The extractor sees fences, skip markers and console prompts (or the tests below test nothing)."""
    found = [b for p in DOCS for b in blocks(p)]
    assert any(b.lang == "python" for b in found) and any(b.skip for b in found)
    demo = Block(ROOT / "README.md", 1, "console", "$ rankstack eval a.trec \\\n    --qrels dl19\nrun  nDCG@10\n"
                 "$ ls\n$ rankstack report x  # a comment", None)
    assert commands(demo) == ["rankstack eval a.trec --qrels dl19", "rankstack report x  # a comment"]


_RUNNER = """
import sys, traceback
ns = {}
for where, code, continues in SNIPPETS:
    if not continues:
        ns = {"__name__": "__snippet__"}
    try:
        exec(compile(code, where, "exec"), ns)
    except BaseException:
        traceback.print_exc()
        print(f"SNIPPET FAILED: {where}", file=sys.stderr)
        sys.exit(1)
"""


def run_python_blocks(todo: list[Block], tmp_path: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "snippets.py"
    script.write_text(f"SNIPPETS = {[(b.where(), b.text, b.continues) for b in todo]!r}\n{_RUNNER}")
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=600)


def test_a_block_runs_on_its_own(tmp_path):
    """A block using an earlier block's name fails unless marked as continuing it."""
    md = tmp_path / "x.md"
    md.write_text("```python\nx = 1\n```\n\n```python\nprint(x + 1)\n```\n<!-- snippet: continues -->\n"
                  "```python\ny = 2\nprint(y)\n```\n")
    first, second, third = blocks(md)
    assert third.continues and not second.continues
    assert run_python_blocks([first, third], tmp_path).returncode == 0
    failed = run_python_blocks([first, second], tmp_path)
    assert failed.returncode == 1 and "NameError" in failed.stderr and "x.md:5" in failed.stderr


@pytest.mark.parametrize("path", [p for p in DOCS if any(b.lang == "python" and not b.skip for b in blocks(p))],
                         ids=lambda p: p.name)
def test_python_snippets_run(path, tmp_path, data_dir):
    proc = run_python_blocks([b for b in blocks(path) if b.lang == "python" and not b.skip], tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.parametrize("path", [p for p in DOCS if any(b.lang in SHELL and not b.skip and commands(b)
                                                         for b in blocks(p))], ids=lambda p: p.name)
def test_cli_examples_run(path, tmp_path, data_dir):
    env = _env(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    for b in blocks(path):
        if b.lang not in SHELL or b.skip:
            continue
        for cmd in commands(b):
            proc = subprocess.run(["bash", "-c", cmd], cwd=work, env=env, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"{b.where()}: {cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
