"""TREC run, qrels and topic files: read and write, round-trip exact.

Formats:
- run:    ``qid Q0 docid rank score tag`` (six whitespace-separated fields)
- qrels:  ``qid iter docid grade`` (four fields; grade an integer)
- topics: TSV ``qid<TAB>text``; TREC SGML ``<top><num>..</num><title>..</title></top>``;
  the ``<DOC><DOCNO> n </DOCNO> text </DOC>`` topic style of CACM.
- run metadata: ``RUN.meta.json`` beside the run file, one JSON object (what made the run, what it cost).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rankstack.errors import FormatError, RankstackError
from rankstack.types import Qrels, Query, Ranking, Run, ScoredDoc


def _open(path):
    return open(path, encoding="utf-8")


# --- runs ----------------------------------------------------------------------
def _run_line(path, lineno, line: str) -> tuple[str, str, int, float, str]:
    """``(qid, docid, rank, score, tag)`` of one run line, or a :class:`FormatError` naming the line."""
    parts = line.split()
    if len(parts) != 6:
        raise FormatError(path, lineno, f"a run line has 6 fields (qid Q0 docid rank score tag), found {len(parts)}: {line.strip()!r}")
    qid, _q0, docid, rank_s, score_s, tag = parts
    try:
        rank = int(rank_s)
    except ValueError:
        raise FormatError(path, lineno, f"rank {rank_s!r} is not an integer") from None
    try:
        score = float(score_s)
    except ValueError:
        raise FormatError(path, lineno, f"score {score_s!r} is not a number") from None
    if math.isnan(score):
        raise FormatError(path, lineno, "score is NaN")
    return qid, docid, rank, score, tag


def _ranking(path, qid: str, rows: list[tuple[int, int, str, float]]) -> Ranking:
    """One query's rows ``(rank, lineno, docid, score)`` in rank order (file order breaks ties)."""
    seen: dict[str, int] = {}
    for _, lineno, docid, _ in rows:
        if docid in seen:
            raise FormatError(path, lineno, f"docid {docid!r} appears twice for query {qid} (first at line {seen[docid]})")
        seen[docid] = lineno
    rows.sort(key=lambda r: (r[0], r[1]))
    return Ranking(qid, [ScoredDoc(d, s) for _, _, d, s in rows])


def read_run(path) -> Run:
    """Read a TREC run. Keeps each query's file order (sorted by rank if ranks disagree)."""
    per_q: dict[str, list[tuple[int, int, str, float]]] = {}
    tag = None
    with _open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            qid, docid, rank, score, line_tag = _run_line(path, lineno, line)
            tag = tag or line_tag
            per_q.setdefault(qid, []).append((rank, lineno, docid, score))
    return Run((_ranking(path, qid, rows) for qid, rows in per_q.items()), name=tag or Path(path).stem)


@dataclass
class RunGroup:
    """One query's lines in a run file: ``lines`` (text, newline kept), the byte offsets
    ``[start, end)`` they span and the 1-based line number of the first (None when the read
    started mid-file: :meth:`lineno` counts it on demand)."""

    qid: str
    lines: list[str]
    start: int
    end: int
    first_line: int | None

    def ranking(self, path) -> Ranking:
        base = self.first_line or _count_lines(path, self.start)
        rows = []
        for i, line in enumerate(self.lines):
            qid, docid, rank, score, _ = _run_line(path, base + i, line)
            rows.append((rank, base + i, docid, score))
        return _ranking(path, self.qid, rows)

    @property
    def complete(self) -> bool:
        """False when the last line has no newline (a write cut short)."""
        return bool(self.lines) and self.lines[-1].endswith("\n")


def _count_lines(path, offset: int) -> int:
    with open(path, "rb") as f:
        return f.read(offset).count(b"\n") + 1


def run_groups(path, start: int = 0, end: int | None = None) -> Iterator[RunGroup]:
    """The queries of a run file one at a time, in file order, reading only one query's lines
    at a time (memory independent of the file's size). Reads the queries whose first line
    starts at a byte offset in ``[start, end)``; ``start`` must be the start of a query's lines
    (an offset this function returned, or 0).

    The file must keep each query's lines together (as every TREC tool writes runs). A query
    that comes back after other queries is a :class:`FormatError` naming the line: sort such a
    file first with ``sort -s -k1,1 RUN`` (stable, so each query keeps its rank order), or read
    it whole with :func:`read_run`. Checking this keeps each finished qid in a set (ids only,
    about 70 bytes a query)."""
    finished: set[str] = set()
    cur: RunGroup | None = None
    pos = start
    lineno = 1 if start == 0 else None
    with open(path, "rb") as f:
        f.seek(start)
        for raw in f:
            line_start, pos = pos, pos + len(raw)
            line = raw.decode("utf-8")
            stripped = line.strip()
            if stripped:
                qid = stripped.split(None, 1)[0]
                if cur is None or qid != cur.qid:
                    if cur is not None:
                        yield cur
                        finished.add(cur.qid)
                    if end is not None and line_start >= end:
                        return
                    if qid in finished:
                        where = lineno or _count_lines(path, line_start)
                        raise FormatError(path, where, f"query {qid!r} comes back after other queries: a run read "
                                                       f"block by block needs each query's lines together; sort it "
                                                       f"first (sort -s -k1,1 RUN > SORTED) or read it whole")
                    cur = RunGroup(qid, [], line_start, line_start, lineno)
                cur.lines.append(line)
                cur.end = pos
            if lineno is not None:
                lineno += 1
    if cur is not None:
        yield cur


def iter_run(path, start: int = 0, end: int | None = None) -> Iterator[Ranking]:
    """A TREC run file read query by query (see :func:`run_groups`): the streaming
    counterpart of :func:`read_run`, same checks, same order within a query."""
    for g in run_groups(path, start, end):
        yield g.ranking(path)


def format_ranking(ranking: Ranking, tag: str) -> str:
    """A ranking's TREC lines (ranks from 1, scores written exactly)."""
    return "".join(f"{ranking.qid} Q0 {d.docid} {rank} {d.score!r} {tag}\n" for rank, d in enumerate(ranking.docs, 1))


def check_tag(tag: str) -> str:
    if not tag or any(c.isspace() for c in tag):
        raise RankstackError(f"run tag {tag!r} is empty or contains whitespace")
    return tag


def write_run(run: Run, path, name: str | None = None) -> None:
    tag = check_tag(name or run.name or "rankstack")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for ranking in run.values():
            f.write(format_ranking(ranking, tag))


# --- run metadata (a JSON sidecar beside the run file) ------------------------------
#: ``run.trec`` -> ``run.trec.meta.json``: what made the run and what it cost (a TREC run file has no room for it).
META_SUFFIX = ".meta.json"


def run_metadata_path(run_path) -> Path:
    return Path(str(run_path) + META_SUFFIX)


def write_run_metadata(run_path, metadata: Mapping[str, Any]) -> Path:
    """Write ``metadata`` (a run's: reranker, fingerprint, depth, queries, docs, wall time, model
    calls, cache hits, ``parse_*`` counts) to ``RUN.meta.json``; returns that path."""
    path = run_metadata_path(run_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(metadata), indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return path


def read_run_metadata(run_path) -> dict[str, Any] | None:
    """The metadata written beside ``run_path`` (``RUN.meta.json``), or None when there is none."""
    path = run_metadata_path(run_path)
    if not path.exists():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise FormatError(path, e.lineno, f"not valid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise FormatError(path, 1, f"run metadata must be a JSON object, found {type(obj).__name__}")
    return obj


# --- qrels ---------------------------------------------------------------------
def read_qrels(path) -> Qrels:
    qrels: Qrels = {}
    with _open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 4:
                raise FormatError(path, lineno, f"a qrels line has 4 fields (qid iter docid grade), found {len(parts)}")
            qid, _it, docid, grade_s = parts
            try:
                grade = int(grade_s)
            except ValueError:
                raise FormatError(path, lineno, f"grade {grade_s!r} is not an integer") from None
            q = qrels.setdefault(qid, {})
            if docid in q and q[docid] != grade:
                raise FormatError(path, lineno, f"docid {docid!r} judged twice for query {qid} with different grades")
            q[docid] = grade
    return qrels


def write_qrels(qrels: Qrels, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for qid, docs in qrels.items():
            for docid, grade in docs.items():
                f.write(f"{qid} 0 {docid} {grade}\n")


def qrels_to_ir_measures(qrels: Qrels):
    import ir_measures

    for qid, docs in qrels.items():
        for docid, grade in docs.items():
            yield ir_measures.Qrel(qid, docid, grade)


# --- topics --------------------------------------------------------------------
_TOP = re.compile(r"<top>(.*?)</top>", re.S | re.I)
_DOC = re.compile(r"<DOC>(.*?)</DOC>", re.S | re.I)


def _tag(block: str, name: str) -> str | None:
    """Text after ``<name>`` up to its closing tag or the next tag (TREC topics often leave tags open)."""
    m = re.search(rf"<{name}>\s*(.*?)\s*(?:</{name}>|(?=<[a-z]+>)|$)", block, re.S | re.I)
    if not m:
        return None
    text = re.sub(r"^(Number:|Topic:)\s*", "", m.group(1).strip(), flags=re.I)
    return " ".join(text.split())


def _add_topic(topics: dict[str, Query], qid: str, text: str, path, lineno) -> None:
    if qid in topics:
        raise FormatError(path, lineno, f"query id {qid!r} appears twice")
    topics[qid] = Query(qid, text)


def _lineno(content: str, offset: int) -> int:
    return content.count("\n", 0, offset) + 1


def read_topics(path, format: str | None = None, field: str = "title") -> dict[str, Query]:
    """Read topics as ``qid -> Query``. ``format``: ``tsv``, ``trec`` or ``doc`` (guessed if None)."""
    content = Path(path).read_text(encoding="utf-8")
    if format is None:
        head = content.lstrip()[:200].lower()
        format = "trec" if head.startswith("<top>") else "doc" if head.startswith("<doc>") else "tsv"
    topics: dict[str, Query] = {}
    if format == "tsv":
        for lineno, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2 or not parts[0].strip():
                raise FormatError(path, lineno, "a topic line is qid<TAB>text")
            _add_topic(topics, parts[0].strip(), "\t".join(parts[1:]).strip(), path, lineno)
    elif format == "trec":
        for m in _TOP.finditer(content):
            lineno = _lineno(content, m.start())
            qid = _tag(m.group(1), "num")
            text = _tag(m.group(1), field)
            if not qid or text is None:
                raise FormatError(path, lineno, f"topic without <num> or <{field}>")
            _add_topic(topics, qid, text, path, lineno)
    elif format == "doc":
        for m in _DOC.finditer(content):
            lineno = _lineno(content, m.start())
            dm = re.search(r"<DOCNO>\s*(.*?)\s*</DOCNO>(.*)", m.group(1), re.S | re.I)
            if not dm:
                raise FormatError(path, lineno, "topic without <DOCNO>")
            _add_topic(topics, dm.group(1), " ".join(dm.group(2).split()), path, lineno)
    else:
        raise RankstackError(f"unknown topic format {format!r} (tsv, trec, doc)")
    if not topics:
        raise FormatError(path, None, f"no topics found (format {format})")
    return topics


def write_topics(topics: dict[str, Query], path, format: str = "tsv") -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for q in topics.values():
            if format == "tsv":
                if "\t" in q.text or "\n" in q.text:
                    raise RankstackError(f"query {q.qid}: text with tab/newline cannot be written as TSV")
                f.write(f"{q.qid}\t{q.text}\n")
            elif format == "trec":
                f.write(f"<top>\n<num>{q.qid}</num><title>\n{q.text}\n</title>\n</top>\n")
            elif format == "doc":
                f.write(f"<DOC>\n<DOCNO> {q.qid} </DOCNO>\n{q.text}\n</DOC>\n")
            else:
                raise RankstackError(f"unknown topic format {format!r} (tsv, trec, doc)")
