"""The package's imports form no circle (module-level, and counting function-level imports), and the
core types load no I/O code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "rankstack"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str], *, nested: bool) -> set[str]:
    """rankstack modules ``path`` imports: at module level, and with ``nested`` also inside
    functions and classes (a lazy import still makes the importer depend on the imported
    module); never under ``TYPE_CHECKING``. ``from pkg import sub`` (a submodule) is an edge to
    ``pkg.sub`` alone; ``from pkg import name`` (an attribute) an edge to ``pkg``, a parent
    package included: its ``__init__`` must have run to the point that defines ``name``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()

    def visit(body):
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                subs = {f"{base}.{a.name}" for a in node.names} & modules
                out.update(subs)
                if len(subs) < len(node.names):  # an attribute of ``base``, not (only) its submodules
                    out.add(base)
            elif nested or not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit([c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)])

    visit(tree.body)
    return {m for m in out if m in modules and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    cycles = []

    def dfs(m, stack):
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                dfs(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m, [m])
    return cycles


def _graph(nested: bool) -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {m: _imports(p, set(files), nested=nested) for m, p in files.items()}
    assert len(graph) > 40 and sum(map(len, graph.values())) > 40  # the graph was read
    return graph


def test_no_module_level_import_circle():
    cycles = _cycles(_graph(nested=False))
    assert not cycles, cycles


def test_no_import_circle_counting_function_level_imports():
    """A lazy import (inside a function) hides a circle from Python's loader, not from the design:
    ``rankstack/__init__`` -> ``report/html.py`` -> ``rankstack`` was one (the version now lives in
    ``rankstack.version``)."""
    graph = _graph(nested=True)
    assert "rankstack.eval.table" in graph["rankstack.report.html"]  # function-level imports are read
    cycles = _cycles(graph)
    assert not cycles, cycles


def test_the_cycle_finder_finds_a_lazy_circle(tmp_path):
    """The checker itself: a circle made only of function-level imports is reported."""
    pkg = tmp_path / "rankstack"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("def f():\n    from rankstack.sub import a\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("def g():\n    from rankstack import f\n")
    files = {".".join(p.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__"): p
             for p in pkg.rglob("*.py")}
    global ROOT
    saved, ROOT = ROOT, pkg
    try:
        lazy = {m: _imports(p, set(files), nested=True) for m, p in files.items()}
        eager = {m: _imports(p, set(files), nested=False) for m, p in files.items()}
    finally:
        ROOT = saved
    assert _cycles(lazy) == [["rankstack", "rankstack.sub.a", "rankstack"]] and not _cycles(eager)


def test_core_types_load_no_io_module():
    code = "import sys, rankstack.types; print(sorted(m for m in sys.modules if m.startswith('rankstack')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(ast.literal_eval(out.strip()))
    assert "rankstack.types" in loaded
    assert not {m for m in loaded if m.startswith(("rankstack.data", "rankstack.retrieval", "rankstack.rerankers"))}
