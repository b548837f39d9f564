"""Every measured-looking number README.md and docs/*.md quote is printed by a results file (or the
reproduction conditions); the rule catches the kinds of claims that went wrong before."""

from __future__ import annotations

from pathlib import Path

from rankstack.repro.quoted import ALLOWED, check, quotes, source_numbers, sources

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_docs_quote_no_number_that_no_file_prints():
    bad = check(DOCS, ROOT)
    assert not bad, "numbers no results file prints (fix the doc, or record the number):\n" + "\n".join(map(str, bad))


def test_every_allowlisted_number_is_needed():
    """An allowlist entry that no doc quotes any more, or that a source prints anyway, is removed:
    the list stays short and true."""
    known = source_numbers(sources(ROOT))
    quoted = {(d.name, q.number) for d in DOCS for q in quotes(d.read_text(encoding="utf-8"), d.name)}
    unused = [(f, n, why) for f, n, why in ALLOWED
              if n.replace(",", "") in known or not any(n == num and f in ("*", name) for name, num in quoted)]
    assert not unused, unused


def test_the_rule_catches_the_claims_that_were_wrong(tmp_path):
    """The README's old statements: values no file printed, and a percentage rounded from 91.9%."""
    doc = tmp_path / "claims.md"
    doc.write_text(
        "agreement with the teacher rose from 0.7574 to 0.8136; 1,154 queries written\n"
        "query generation 1,490 s, teacher 92 s; LoRA reaches 92% of the fp32 peak\n"
        "a fresh clone took 9 min 17 s\n"
        "kept: 0.58\n")
    found = [(q.line, q.kind, q.number) for q in check([doc], ROOT)]
    assert found == [(1, "decimal", "0.7574"), (1, "decimal", "0.8136"), (1, "count", "1,154"),
                     (2, "count", "1,490"), (2, "duration", "92"), (2, "percent", "92%"),
                     (3, "duration", "9 min 17 s"), (4, "decimal", "0.58")]
    assert str(check([doc], ROOT)[0]).endswith("/claims.md:1:38: 0.7574 (decimal) not printed by any results file: "
                                               "agreement with the teacher rose from 0.7574 to 0.8136; 1,154 queries "
                                               "written")


def test_the_rule_reads_what_the_files_print(tmp_path):
    known = source_numbers(sources(ROOT))
    assert {"0.5058", "0.6424", "1.66", "91.9%", "680402", "522"} <= known  # 522 s: fresh_clone.txt's 8 min 42 s
    doc = tmp_path / "ok.md"
    doc.write_text(
        "BM25 0.5058, dense 0.6424+ (1.66x; 91.9% of the peak), 680,402 tokens, 8 min 42 s, 7 min 22 s\n"
        "not measurements: torch==2.13.0, pyserini 1.6.0, ~7 docs/s, about 0.3 s, scores within 1.8e-5, "
        "`--lr 5e-5`, p < 0.05\n")
    assert check([doc], ROOT) == []
    assert [q.number for q in quotes("fusion=0.8, R(rel=2)@100, nDCG@10, 0.8/0.2, 3x")] == []
