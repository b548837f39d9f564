"""TREC/corpus/RankLLM readers and writers on the real shared collections, and their errors."""

from __future__ import annotations

import json

import pytest

from rankstack.data import (InMemoryDocStore, SqliteDocStore, load_dataset, read_corpus, read_qrels, read_rankllm,
                            read_run, read_topics, write_corpus, write_qrels, write_rankllm, write_run, write_topics)
from rankstack.errors import DatasetNotFoundError, FormatError, MissingDocumentError, RankstackError
from rankstack.types import Doc, Ranking, Run, ScoredDoc


# --- round trips on the real files ---------------------------------------------------
def test_run_round_trip_dl19(data_dir, tmp_path):
    run = read_run(data_dir / "dl19" / "bm25.trec")
    assert len(run) == 43 and all(len(r) == 100 for r in run.values())
    assert run["264014"].docs[0] == ScoredDoc("5611210", 15.7806)
    write_run(run, tmp_path / "r.trec")
    again = read_run(tmp_path / "r.trec")
    assert again == run
    assert [r.docs for r in again.values()] == [r.docs for r in run.values()]


@pytest.mark.parametrize("path", ["dl19/qrels.txt", "vaswani/qrels", "cacm/qrels.txt"])
def test_qrels_round_trip(data_dir, tmp_path, path):
    q = read_qrels(data_dir / path)
    write_qrels(q, tmp_path / "q")
    assert read_qrels(tmp_path / "q") == q


def test_qrels_counts(data_dir):
    assert sum(len(v) for v in read_qrels(data_dir / "dl19/qrels.txt").values()) == 9260
    assert sum(len(v) for v in read_qrels(data_dir / "vaswani/qrels").values()) == 2083
    assert sum(len(v) for v in read_qrels(data_dir / "cacm/qrels.txt").values()) == 796


@pytest.mark.parametrize("path,fmt,n", [("dl19/queries.tsv", "tsv", 43), ("vaswani/query-text.trec", "trec", 93),
                                        ("cacm/topics.cacm.txt", "doc", 64)])
def test_topics_round_trip(data_dir, tmp_path, path, fmt, n):
    topics = read_topics(data_dir / path)  # format guessed
    assert len(topics) == n
    for out_fmt in ("tsv", "trec", "doc"):
        write_topics(topics, tmp_path / f"t.{out_fmt}", out_fmt)
        assert read_topics(tmp_path / f"t.{out_fmt}", out_fmt) == topics


def test_topic_texts(data_dir):
    v = read_topics(data_dir / "vaswani/query-text.trec")
    assert v["1"].text == "MEASUREMENT OF DIELECTRIC CONSTANT OF LIQUIDS BY THE USE OF MICROWAVE TECHNIQUES"
    c = read_topics(data_dir / "cacm/topics.cacm.txt")
    assert c["3"].text == "Intermediate languages used in construction of multi-targeted compilers; TCOLL"


@pytest.mark.parametrize("path,n", [("dl19/corpus.jsonl", 4297), ("cacm/corpus.jsonl", 3204),
                                    ("cacm/cacm.tar.gz", 3204), ("vaswani/doc-text.trec", 11429)])
def test_corpus_round_trip_all_formats(data_dir, tmp_path, path, n):
    docs = list(read_corpus(data_dir / path))
    assert len(docs) == n and len({d.docid for d in docs}) == n
    for fmt in ("jsonl", "pyserini", "trec", "tsv"):
        if fmt == "tsv" and any("\t" in d.text or "\n" in d.text for d in docs):
            with pytest.raises(RankstackError):
                write_corpus(docs, tmp_path / "c.tsv", "tsv")
            continue
        write_corpus(docs, tmp_path / f"c.{fmt}", fmt)
        again = list(read_corpus(tmp_path / f"c.{fmt}", fmt))
        if fmt == "trec":  # SGML folds white space
            docs_cmp = [Doc(d.docid, " ".join(d.text.split()), d.title) for d in docs]
            assert again == docs_cmp
        else:
            assert again == docs


def test_html_corpus_from_a_folder_or_a_tar(tmp_path):
    import tarfile

    from rankstack.data.corpus import guess_format

    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "CACM-0001.html").write_text("<html><head><style>p {color: red}</style><script>if (a < b) x();</script>"
                                          "</head><pre>\n\nA Title\n\n1<=G<=2 &amp; n^G\n</pre></html>")
    (pages / "d2.htm").write_text("<p>second <b>page</b></p>")
    (pages / "notes.txt").write_text("not a page")
    want = [Doc("CACM-0001", "A Title 1<=G<=2 & n^G"), Doc("d2", "second page")]
    assert guess_format(pages) == "html" and list(read_corpus(pages)) == want
    with tarfile.open(tmp_path / "pages.tar.gz", "w:gz") as tar:
        tar.add(pages, arcname="pages")
    assert list(read_corpus(tmp_path / "pages.tar.gz")) == want
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="no .html files"):
        list(read_corpus(tmp_path / "empty"))
    (tmp_path / "bad.tar.gz").write_text("not an archive")
    with pytest.raises(FormatError, match="bad.tar.gz: not a readable tar archive"):
        list(read_corpus(tmp_path / "bad.tar.gz"))


def test_corpus_with_titles(tmp_path):
    docs = [Doc("a", "body one", "Title One"), Doc("b", "body two")]
    for fmt in ("jsonl", "pyserini", "tsv", "trec"):
        write_corpus(docs, tmp_path / f"c.{fmt}", fmt)
        assert list(read_corpus(tmp_path / f"c.{fmt}", fmt)) == docs
    assert docs[0].full_text == "Title One\nbody one"


def test_sqlite_doc_store_matches_jsonl(data_dir, tmp_path):
    path = data_dir / "dl19" / "corpus.jsonl"
    mem = InMemoryDocStore.from_file(path)
    store = SqliteDocStore.from_file(path, tmp_path / "dl19.sqlite")
    assert len(store) == len(mem) == 4297
    for d in mem:
        assert store.get(d.docid) == d
    reopened = SqliteDocStore.from_file(path, tmp_path / "dl19.sqlite")  # no rebuild
    assert reopened.get("5611210").text.startswith("5. Cancel. A flea")
    with pytest.raises(MissingDocumentError, match="no-such-doc"):
        store.get("no-such-doc")


def test_rankllm_round_trip(data_dir, tmp_path):
    queries, run, store = read_rankllm(data_dir / "dl19" / "rank_llm_retrieve_results.json")
    bm25 = read_run(data_dir / "dl19" / "bm25.trec")
    assert set(run) == set(bm25) and all(run[q].docids == bm25[q].docids for q in run)
    assert queries == read_topics(data_dir / "dl19" / "queries.tsv")  # same texts as the TSV topics
    corpus = InMemoryDocStore.from_file(data_dir / "dl19" / "corpus.jsonl")
    assert store.get("5611210").text == corpus.get("5611210").text
    write_rankllm(queries, run, store, tmp_path / "r.json")
    q2, r2, s2 = read_rankllm(tmp_path / "r.json")
    assert q2 == queries and r2 == run and {d.docid: d for d in s2} == {d.docid: d for d in store}


# --- named datasets ---------------------------------------------------------------------
def test_named_datasets(data_dir):
    dl19 = load_dataset("dl19")
    assert len(dl19.queries) == 43 and dl19.rel == 2 and len(dl19.run) == 43
    assert dl19.corpus.get("5611210").docid == "5611210"
    cacm = load_dataset("cacm")
    assert len(cacm.queries) == 64 and len(cacm.judged_queries) == 52 and cacm.run is None
    assert cacm.corpus.get("CACM-2274").text.startswith("Generating English Discourse")
    assert len(load_dataset("vaswani").corpus) == 11429


def test_dataset_download_from_mirror(data_dir, tmp_path, monkeypatch):
    """The real download code (urllib) against a file:// mirror of the shared layout."""
    monkeypatch.setenv("RANKSTACK_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("RANKSTACK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RANKSTACK_DATA_MIRROR", raising=False)
    with pytest.raises(DatasetNotFoundError, match="RANKSTACK_DATA"):
        load_dataset("cacm")
    ds = load_dataset("cacm", mirror=data_dir.as_uri())
    assert (tmp_path / "cache" / "datasets" / "cacm" / "qrels.txt").exists()
    assert len(ds.qrels) == 52
    assert len(load_dataset("cacm").queries) == 64  # now served from the cache, no mirror needed


def test_unknown_dataset():
    with pytest.raises(RankstackError, match="unknown dataset"):
        load_dataset("msmarco-v9")


# --- bad input: clear errors naming file and line ----------------------------------------
def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_run_line_with_five_fields(tmp_path):
    p = _write(tmp_path, "bad.trec", "1 Q0 d1 1 2.0 tag\n1 Q0 d2 2 1.0\n")
    with pytest.raises(FormatError, match=r"bad\.trec:2: .*6 fields"):
        read_run(p)


def test_run_non_numeric_score(tmp_path):
    p = _write(tmp_path, "bad.trec", "1 Q0 d1 1 2.0 tag\n1 Q0 d2 2 high tag\n")
    with pytest.raises(FormatError, match=r"bad\.trec:2: score 'high'"):
        read_run(p)


def test_run_duplicate_docid(tmp_path):
    p = _write(tmp_path, "dup.trec", "1 Q0 d1 1 2.0 t\n1 Q0 d2 2 1.0 t\n1 Q0 d1 3 0.5 t\n")
    with pytest.raises(FormatError, match=r"dup\.trec:3: docid 'd1' appears twice for query 1 \(first at line 1\)"):
        read_run(p)


def test_qrels_bad_grade(tmp_path):
    p = _write(tmp_path, "q.txt", "1 0 d1 1\n1 0 d2 relevant\n")
    with pytest.raises(FormatError, match=r"q\.txt:2: grade 'relevant'"):
        read_qrels(p)
    p = _write(tmp_path, "q2.txt", "1 0 d1 1.5\n")
    with pytest.raises(FormatError, match=r"q2\.txt:1: grade '1.5'"):
        read_qrels(p)


def test_corpus_line_not_json(tmp_path):
    p = _write(tmp_path, "c.jsonl", '{"docid": "a", "text": "x"}\n{"docid": "b", "text": oops}\n')
    with pytest.raises(FormatError, match=r"c\.jsonl:2: not valid JSON"):
        list(read_corpus(p))


def test_corpus_missing_key(tmp_path):
    p = _write(tmp_path, "c.jsonl", '{"docid": "a", "body": "x"}\n')
    with pytest.raises(FormatError, match=r"c\.jsonl:1: missing key"):
        list(read_corpus(p, "jsonl"))


def test_missing_docid_named(data_dir):
    store = InMemoryDocStore.from_file(data_dir / "cacm" / "corpus.jsonl")
    with pytest.raises(MissingDocumentError, match="'CACM-99999' not found"):
        store.get("CACM-99999")
    assert "CACM-1410" in store and "CACM-99999" not in store


def test_duplicate_topic_ids(tmp_path):
    p = _write(tmp_path, "t.tsv", "1\tfoo\n2\tbar\n1\tbaz\n")
    with pytest.raises(FormatError, match=r"t\.tsv:3: query id '1' appears twice"):
        read_topics(p)


def test_trec_sgml_unclosed(tmp_path):
    p = _write(tmp_path, "d.trec", "<DOC>\n<DOCNO>1</DOCNO>\ntext\n")
    with pytest.raises(FormatError, match=r"d\.trec:1: <DOC> is not closed"):
        list(read_corpus(p))


# --- the types ---------------------------------------------------------------------------------
def test_ranking_from_scores_is_stable_and_checks_duplicates():
    r = Ranking.from_scores("q", [("a", 1.0), ("b", 2.0), ("c", 1.0)])
    assert r.docids == ["b", "a", "c"]
    with pytest.raises(RankstackError, match="twice"):
        Ranking("q", [ScoredDoc("a", 1), ScoredDoc("a", 0)])


def test_run_ir_measures_keeps_tie_order():
    r = Run([Ranking("q", [ScoredDoc("x", 1.0), ScoredDoc("a", 1.0)])])
    got = [(sd.doc_id, sd.score) for sd in r.to_ir_measures()]
    assert got == [("x", 2.0), ("a", 1.0)]  # trec_eval would put 'x' second on a tie
    back = Run.from_ir_measures(r.to_ir_measures())
    assert back["q"].docids == ["x", "a"]
