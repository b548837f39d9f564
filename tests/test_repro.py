"""``rankstack repro``: the conditions YAML agrees with the results files, a condition's command is
run and its number checked (a wrong expected value fails the command), and the page lists them all."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rankstack.cli import main
from rankstack.errors import RankstackError
from rankstack.repro import load_conditions, select
from rankstack.repro.conditions import DEFAULT_CONDITIONS, recorded_number

ROOT = Path(__file__).resolve().parents[1]

CHECKS = """
defaults: {collection: dl19, first_stage: BM25, reranker: none, metric: nDCG@10, tolerance: 0,
           results: benchmarks/results/dense_dl19.txt, results_pattern: '^BM25\\s+([\\d.]+)',
           machine: {cpu: any, threads: 1, dtype: none}}
conditions:
  - id: bm25
    command: &eval rankstack eval dl19 --qrels dl19 -m nDCG@10
    pattern: '^dl19\\s+([\\d.]+)'
    expected: 0.5058
  - id: bm25-wrong
    command: *eval
    pattern: '^dl19\\s+([\\d.]+)'
    expected: 0.6
    tolerance: 0.01
  - id: broken
    command: echo 'no number here'; exit 3
    pattern: '([\\d.]+)'
    expected: 1
  - id: unmatched
    command: echo 'nDCG@10 n/a'
    pattern: '^dl19\\s+([\\d.]+)'
    expected: 1
  - id: needs-a-module
    command: echo 1
    pattern: '([\\d.]+)'
    expected: 1
    requires: [rankstack_no_such_module]
"""


@pytest.fixture(scope="module")
def conditions():
    return load_conditions()


def test_every_condition_is_recorded_in_its_results_file(conditions):
    """The expected value of each condition is the number its results file prints, found by its regex."""
    assert len(conditions) >= 40 and any(c.quick for c in conditions)
    for c in conditions:
        assert (ROOT / c.results).is_file(), (c.id, c.results)
        raw = recorded_number(c, ROOT)
        assert raw is not None and float(raw) == c.expected, (c.id, raw, c.expected)
        for script in re.findall(r"\bbenchmarks/\w+\.py", c.command):
            assert (ROOT / script).is_file(), (c.id, script)
        assert c.machine["cpu"] in ("any", "avx2", "avx512_bf16"), c.id


def test_quick_conditions_include_the_cheap_anchors(conditions):
    quick = {c.id: c for c in select(conditions, quick=True)}
    assert quick["dl19-bm25"].expected == 0.5058 and quick["dl19-dense-minilm"].expected == 0.6424
    assert {"cacm-bm25s-map", "vaswani-bm25s-map", "cacm-lucene-bm25-map"} <= set(quick)
    assert [c.id for c in select(conditions, only=["dl19-distill-qlm*"])][:2] == ["dl19-distill-qlm-zeroshot",
                                                                                  "dl19-distill-qlm"]
    with pytest.raises(RankstackError, match="no condition matches"):
        select(conditions, only=["no-such-id"])


def test_repro_runs_checks_and_writes_the_page(tmp_path, capsys, data_dir):
    spec = tmp_path / "c.yaml"
    spec.write_text(CHECKS)
    md, page = tmp_path / "docs" / "reproduction.md", tmp_path / "r.html"
    rc = main(["repro", "--conditions", str(spec), "--root", str(ROOT), "--out", str(md), "--html", str(page)])
    out = capsys.readouterr()
    assert rc == 1  # bm25-wrong, broken and unmatched fail
    assert "5 of 5 conditions; 4 commands" in out.out  # bm25 and bm25-wrong share one run of their command
    table = {ln.split()[0]: ln for ln in out.out.splitlines() if ln.split() and ln.split()[0] in
             ("bm25", "bm25-wrong", "broken", "unmatched", "needs-a-module")}
    assert re.search(r"^bm25\s+0\.5058\s+0\.5058\s+\+0\.0000\s+ok\b", table["bm25"])
    assert re.search(r"0\.6000\s+0\.5058\s+-0\.0942\s+FAIL \(\|delta\| > tolerance 0\.01\)", table["bm25-wrong"])
    assert "error (command exited 3: no number here)" in table["broken"]
    assert "error (the output has no match" in table["unmatched"]
    assert "skip (needs rankstack_no_such_module)" in table["needs-a-module"]
    assert "3 of 5 checks failed: bm25-wrong, broken, unmatched" in out.err
    text = md.read_text()
    assert "5 conditions. Last run: `rankstack repro --conditions" in text and "1 ok, 1 failed, 2 errors, 1 skipped" in text
    assert "| bm25 | dl19 | BM25 | none | - | - | - | nDCG@10 | 0.5058 | 0 | 0.5058 (measured, +0.0000) | ok |" in text
    assert text.count("```bash\nrankstack eval dl19 --qrels dl19 -m nDCG@10\n```") == 1  # each command once
    html = page.read_text()
    assert "Content-Security-Policy" in html and "<script" not in html
    assert html.count("<tr>") == 6 and "FAIL (|delta| &gt; tolerance 0.01)" in html


def test_repro_exits_zero_when_every_check_passes_and_lists(tmp_path, capsys, data_dir):
    spec = tmp_path / "c.yaml"
    spec.write_text(CHECKS)
    assert main(["repro", "--conditions", str(spec), "--root", str(ROOT), "--only", "bm25"]) == 0
    assert main(["repro", "--list", "--quick"]) == 0
    listed = capsys.readouterr().out
    assert "dl19-bm25" in listed and "dl19-distill-qlm" not in listed


def test_page_of_every_condition_shows_recorded_values(conditions):
    from rankstack.repro import page

    table = page.rows(conditions, [], ROOT)
    text = page.markdown(table, "a machine", "rankstack repro --list")
    for c in conditions:
        assert f"| {c.id} |" in text
    assert "0.5802 (recorded) | not run | avx512_bf16, 2 threads, float32 | benchmarks/results/distill_dl19_qlm.txt |" \
        in text
    assert text.count("```bash") == len({c.command for c in conditions})


@pytest.mark.parametrize("body, message", [
    ("conditions:\n  - {id: a, command: x}", "condition a: missing collection"),
    ("conditions: 3", "expected a mapping with a 'conditions' list"),
    ("conditions:\n  - [1]", "condition 1 is not a mapping"),
])
def test_bad_conditions_file_names_the_file_and_condition(tmp_path, body, message):
    p = tmp_path / "bad.yaml"
    p.write_text(body)
    with pytest.raises(RankstackError, match=re.escape(message)) as e:
        load_conditions(p)
    assert str(p) in str(e.value)


def test_repeated_id_and_bad_regex_are_errors(tmp_path):
    one = DEFAULT_CONDITIONS.read_text().split("\n  - id: dl19-dense-minilm\n")[0]
    p = tmp_path / "twice.yaml"
    p.write_text(one + "\n" + one.split("conditions:\n", 1)[1])
    with pytest.raises(RankstackError, match="'dl19-bm25' appears twice"):
        load_conditions(p)
    p.write_text(one.replace(r"'^dl19\s+([\d.]+)'", "'([unclosed'"))
    with pytest.raises(RankstackError, match="condition dl19-bm25: "):
        load_conditions(p)
