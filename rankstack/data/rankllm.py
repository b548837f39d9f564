"""RankLLM retrieve-results JSON: ``[{"query": text, "hits": [{"qid","docid","rank","score","content"}]}]``.

Lets RankLLM users bring their candidate files: one file gives queries, a run and the
texts of the candidates.
"""

from __future__ import annotations

import json
from pathlib import Path

from rankstack.data.corpus import DocStore, InMemoryDocStore
from rankstack.errors import FormatError, RankstackError
from rankstack.types import Doc, Query, Ranking, Run, ScoredDoc


def read_rankllm(path) -> tuple[dict[str, Query], Run, InMemoryDocStore]:
    """Return (queries, run, doc store of the candidate texts)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise FormatError(path, e.lineno, f"not valid JSON ({e.msg})") from None
    if not isinstance(data, list):
        raise FormatError(path, 1, "RankLLM retrieve results are a JSON list of {query, hits}")
    queries: dict[str, Query] = {}
    run = Run(name=Path(path).stem)
    docs: dict[str, Doc] = {}
    for i, entry in enumerate(data):
        try:
            hits = entry["hits"]
            qtext = entry["query"]
        except (KeyError, TypeError):
            raise FormatError(path, None, f"entry {i} lacks 'query' or 'hits'") from None
        if not hits:
            continue
        qid = str(hits[0]["qid"])
        if qid in queries:
            raise FormatError(path, None, f"entry {i}: query id {qid!r} appears twice")
        queries[qid] = Query(qid, qtext)
        rows = []
        for j, h in enumerate(hits):
            try:
                docid, score, rank = str(h["docid"]), float(h["score"]), int(h.get("rank", j + 1))
            except (KeyError, TypeError, ValueError) as e:
                raise FormatError(path, None, f"entry {i} hit {j}: bad hit ({e})") from None
            if str(h.get("qid", qid)) != qid:
                raise FormatError(path, None, f"entry {i} hit {j}: qid {h.get('qid')} differs from {qid}")
            rows.append((rank, j, docid, score))
            if "content" in h:
                docs.setdefault(docid, Doc(docid, h["content"]))
        rows.sort()
        run[qid] = Ranking(qid, [ScoredDoc(d, s) for _, _, d, s in rows])
    return queries, run, InMemoryDocStore(docs.values(), source=str(path))


def write_rankllm(queries: dict[str, Query], run: Run, corpus: DocStore, path) -> None:
    out = []
    for qid, ranking in run.items():
        if qid not in queries:
            raise RankstackError(f"query {qid!r} of the run has no text in the queries")
        hits = [
            {"content": corpus.get(d.docid).full_text, "qid": qid, "docid": d.docid, "rank": r, "score": d.score}
            for r, d in enumerate(ranking.docs, 1)
        ]
        out.append({"query": queries[qid].text, "hits": hits})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, ensure_ascii=False, indent=2), encoding="utf-8")
