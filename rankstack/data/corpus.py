"""Corpora: readers for the formats users have, and doc stores that answer ``get(docid)``.

Formats (``format=`` or guessed from the file):
- ``jsonl``:    ``{"docid": ..., "text": ...}`` (optional ``title``) one per line
- ``pyserini``: Pyserini/Anserini JsonCollection ``{"id": ..., "contents": ...}`` (optional ``title``);
  a ``.jsonl`` file with ``id``/``contents`` keys is read as this
- ``tsv``:      ``docid<TAB>text`` (MS MARCO collection.tsv)
- ``trec``:     TREC SGML ``<DOC><DOCNO>id</DOCNO> text </DOC>`` (``<TEXT>`` kept as body)
- ``html``:     one HTML file per document, in a folder or a ``.tar``/``.tar.gz``/``.tgz`` archive
  (Anserini's ``HtmlCollection``, e.g. CACM): docid = the file name without its extension,
  text = the page's text content (what an HTML parser yields outside ``<script>``/``<style>``;
  on CACM it has the same tokens as Anserini's extraction, checked in the tests)

Doc stores: :class:`InMemoryDocStore` for small corpora, :class:`SqliteDocStore` for corpora
larger than memory (built once, reopened instantly).
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import sqlite3
import tarfile
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from pathlib import Path

from rankstack.errors import FormatError, MissingDocumentError, RankstackError
from rankstack.types import Doc

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "pyserini", "tsv", "trec", "html")
_ARCHIVES = (".tar", ".tar.gz", ".tgz")
_HTML_SUFFIXES = (".html", ".htm")


def guess_format(path) -> str:
    p = str(path).lower()
    if os.path.isdir(path) or p.endswith(_ARCHIVES):
        return "html"
    if p.endswith((".tsv", ".tsv.gz")):
        return "tsv"
    if p.endswith((".trec", ".sgml", ".xml")) or "doc-text" in p:
        return "trec"
    with open(path, encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if not s:
                continue
            if s.startswith("<"):
                return "trec"
            if s.startswith("{"):
                try:
                    keys = json.loads(s).keys()
                except json.JSONDecodeError:
                    return "jsonl"  # the reader reports the bad line
                return "pyserini" if "contents" in keys else "jsonl"
            return "tsv"
    raise FormatError(path, None, "the corpus file is empty")


def _json_docs(path, id_key: str, text_key: str) -> Iterator[Doc]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise FormatError(path, lineno, f"not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise FormatError(path, lineno, "a corpus line must be a JSON object")
            ik = id_key if id_key in obj else ("_id" if "_id" in obj else None)
            if ik is None or text_key not in obj:
                raise FormatError(path, lineno, f"missing key {id_key!r} or {text_key!r} (has {sorted(obj)})")
            title = obj.get("title") or None
            yield Doc(str(obj[ik]), str(obj[text_key]), title)


def _tsv_docs(path) -> Iterator[Doc]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2:
                raise FormatError(path, lineno, "a TSV corpus line is docid<TAB>text")
            if len(parts) >= 3:  # docid, title, text (BEIR-style TSV)
                yield Doc(parts[0], "\t".join(parts[2:]), parts[1] or None)
            else:
                yield Doc(parts[0], parts[1])


_DOCNO = re.compile(r"<DOCNO>\s*(.*?)\s*</DOCNO>", re.S | re.I)
_TEXT = re.compile(r"<TEXT>(.*?)</TEXT>", re.S | re.I)
_TITLE = re.compile(r"<(?:TITLE|HEADLINE)>(.*?)</(?:TITLE|HEADLINE)>", re.S | re.I)


def _trec_docs(path) -> Iterator[Doc]:
    buf: list[str] | None = None
    start = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            up = line.strip().upper()
            if up.startswith("<DOC>"):
                if buf is not None:
                    raise FormatError(path, lineno, f"<DOC> opened at line {start} is not closed")
                buf, start = [line.strip()[5:]], lineno
                continue
            if buf is None:
                if line.strip():
                    raise FormatError(path, lineno, "text outside <DOC> ... </DOC>")
                continue
            if up.endswith("</DOC>"):
                buf.append(line.rstrip()[:-6])
                block = "\n".join(buf)
                m = _DOCNO.search(block)
                if not m:
                    raise FormatError(path, start, "document without <DOCNO>")
                rest = block[: m.start()] + block[m.end():]
                tm = _TEXT.search(rest)
                title_m = _TITLE.search(rest)
                body = tm.group(1) if tm else (rest[: title_m.start()] + rest[title_m.end():] if title_m else rest)
                body = html.unescape(re.sub(r"<[^>]+>", " ", body))
                title = " ".join(html.unescape(title_m.group(1)).split()) if title_m else None
                yield Doc(html.unescape(m.group(1)), " ".join(body.split()), title)
                buf = None
            else:
                buf.append(line)
    if buf is not None:
        raise FormatError(path, start, "<DOC> is not closed at end of file")


class _HtmlText(HTMLParser):
    """The text content of a page: character data outside ``<script>`` and ``<style>``."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_text(page: str) -> str:
    """The text of an HTML page, whitespace collapsed."""
    parser = _HtmlText()
    parser.feed(page)
    parser.close()
    return " ".join("".join(parser.parts).split())


def _html_docs(path) -> Iterator[Doc]:
    """One document per ``.html``/``.htm`` file of a folder or a tar archive, in file-name order."""
    def doc(name: str, raw: bytes) -> Doc:
        return Doc(Path(name).name.rsplit(".", 1)[0], html_text(raw.decode("utf-8", errors="replace")))

    if os.path.isdir(path):
        files = sorted(f for f in Path(path).rglob("*") if f.suffix.lower() in _HTML_SUFFIXES and f.is_file())
        if not files:
            raise FormatError(path, None, "the folder holds no .html files")
        for f in files:
            yield doc(f.name, f.read_bytes())
        return
    try:
        with tarfile.open(path) as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith(_HTML_SUFFIXES)),
                             key=lambda m: m.name)
            if not members:
                raise FormatError(path, None, "the archive holds no .html files")
            for m in members:
                yield doc(m.name, tar.extractfile(m).read())
    except tarfile.TarError as e:
        raise FormatError(path, None, f"not a readable tar archive ({e})") from None


def read_corpus(path, format: str | None = None) -> Iterator[Doc]:
    """Yield the documents of a corpus file; errors name file and line."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"corpus file not found: {path}")
    format = format or guess_format(path)
    if format == "jsonl":
        return _json_docs(path, "docid", "text")
    if format == "pyserini":
        return _json_docs(path, "id", "contents")
    if format == "tsv":
        return _tsv_docs(path)
    if format == "trec":
        return _trec_docs(path)
    if format == "html":
        return _html_docs(path)
    raise RankstackError(f"unknown corpus format {format!r}; one of {FORMATS}")


def write_corpus(docs: Iterable[Doc], path, format: str = "jsonl") -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            if format == "jsonl":
                obj = {"docid": d.docid, "text": d.text}
                if d.title:
                    obj["title"] = d.title
                f.write(json.dumps(obj, ensure_ascii=False) + "\n")
            elif format == "pyserini":
                obj = {"id": d.docid, "contents": d.text}
                if d.title:
                    obj["title"] = d.title
                f.write(json.dumps(obj, ensure_ascii=False) + "\n")
            elif format == "tsv":
                if "\t" in d.text or "\n" in d.text or (d.title and ("\t" in d.title or "\n" in d.title)):
                    raise RankstackError(f"document {d.docid}: text with tab/newline cannot be written as TSV")
                f.write(f"{d.docid}\t{d.title}\t{d.text}\n" if d.title else f"{d.docid}\t{d.text}\n")
            elif format == "trec":
                esc = html.escape
                title = f"<TITLE>{esc(d.title, quote=False)}</TITLE>\n" if d.title else ""
                f.write(f"<DOC>\n<DOCNO>{esc(d.docid, quote=False)}</DOCNO>\n{title}<TEXT>\n{esc(d.text, quote=False)}\n</TEXT>\n</DOC>\n")
            else:
                raise RankstackError(f"unknown corpus format {format!r}; one of {FORMATS}")


# --- doc stores ------------------------------------------------------------------
class DocStore:
    """Answers ``get(docid) -> Doc``; a missing docid raises :class:`MissingDocumentError`."""

    source: str = "corpus"

    def get(self, docid: str) -> Doc:
        raise NotImplementedError

    def __getitem__(self, docid: str) -> Doc:
        return self.get(docid)

    def get_many(self, docids: Iterable[str]) -> list[Doc]:
        return [self.get(d) for d in docids]

    def __contains__(self, docid) -> bool:
        try:
            self.get(docid)
            return True
        except MissingDocumentError:
            return False

    def __len__(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Doc]:
        raise NotImplementedError


class InMemoryDocStore(DocStore):
    def __init__(self, docs: Iterable[Doc] = (), source: str = "corpus", allow_duplicates: bool = False):
        self.source = source
        self._docs: dict[str, Doc] = {}
        for d in docs:
            if d.docid in self._docs and not allow_duplicates:
                raise RankstackError(f"{source}: docid {d.docid!r} appears twice")
            self._docs[d.docid] = d

    @classmethod
    def from_file(cls, path, format: str | None = None) -> InMemoryDocStore:
        return cls(read_corpus(path, format), source=str(path))

    def get(self, docid: str) -> Doc:
        try:
            return self._docs[docid]
        except KeyError:
            raise MissingDocumentError(docid, self.source) from None

    def __contains__(self, docid) -> bool:
        return docid in self._docs

    def __len__(self) -> int:
        return len(self._docs)

    def __iter__(self) -> Iterator[Doc]:
        return iter(self._docs.values())


class SqliteDocStore(DocStore):
    """A doc store on disk. ``build`` writes it once; opening it again is instant."""

    def __init__(self, path):
        self.path = str(path)
        self.source = self.path
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"doc store not found: {self.path}")
        self._con = sqlite3.connect(self.path, check_same_thread=False)

    def __reduce__(self):  # pickled as its path (a Ray actor on the same filesystem reopens it)
        return (type(self), (self.path,))

    @classmethod
    def build(cls, docs: Iterable[Doc], path, batch: int = 10_000) -> SqliteDocStore:
        tmp = f"{path}.tmp"
        if os.path.exists(tmp):
            os.remove(tmp)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(tmp)
        con.execute("CREATE TABLE docs (docid TEXT PRIMARY KEY, title TEXT, text TEXT NOT NULL)")
        rows: list[tuple] = []
        try:
            for d in docs:
                rows.append((d.docid, d.title, d.text))
                if len(rows) >= batch:
                    con.executemany("INSERT INTO docs VALUES (?,?,?)", rows)
                    rows.clear()
            con.executemany("INSERT INTO docs VALUES (?,?,?)", rows)
        except sqlite3.IntegrityError as e:
            con.close()
            os.remove(tmp)
            raise RankstackError(f"duplicate docid while building {path}: {e}") from None
        con.commit()
        con.close()
        os.replace(tmp, path)  # atomic: a crash never leaves a half-built store behind
        return cls(path)

    @classmethod
    def from_file(cls, corpus_path, store_path=None, format: str | None = None) -> SqliteDocStore:
        """Open the store for ``corpus_path``, building it on first use (newer corpus → rebuild)."""
        store_path = store_path or f"{corpus_path}.rankstack.sqlite"
        if os.path.exists(store_path) and os.path.getmtime(store_path) >= os.path.getmtime(corpus_path):
            return cls(store_path)
        log.info("building doc store %s from %s", store_path, corpus_path)
        return cls.build(read_corpus(corpus_path, format), store_path)

    def get(self, docid: str) -> Doc:
        row = self._con.execute("SELECT title, text FROM docs WHERE docid = ?", (docid,)).fetchone()
        if row is None:
            raise MissingDocumentError(docid, self.source)
        return Doc(docid, row[1], row[0])

    def __contains__(self, docid) -> bool:
        return self._con.execute("SELECT 1 FROM docs WHERE docid = ?", (docid,)).fetchone() is not None

    def __len__(self) -> int:
        return self._con.execute("SELECT COUNT(*) FROM docs").fetchone()[0]

    def __iter__(self) -> Iterator[Doc]:
        for docid, title, text in self._con.execute("SELECT docid, title, text FROM docs ORDER BY rowid"):
            yield Doc(docid, text, title)

    def close(self) -> None:
        self._con.close()


def load_corpus(path, format: str | None = None, store: str = "auto", memory_limit_bytes: int = 2 << 30) -> DocStore:
    """A doc store for a corpus file: in memory when small, SQLite beside the file when large."""
    if store == "memory" or (store == "auto" and os.path.getsize(path) <= memory_limit_bytes):
        return InMemoryDocStore.from_file(path, format)
    return SqliteDocStore.from_file(path, format=format)
