"""Exceptions raised by rankstack.

Every error caused by input names where the bad input is: a file and a line for
formats, a docid for a missing document, a qid for a duplicate query.
"""

from __future__ import annotations


class RankstackError(Exception):
    """Base class of all errors rankstack raises on purpose."""


class FormatError(RankstackError, ValueError):
    """A file does not follow its format. Names the file and the 1-based line."""

    def __init__(self, path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class MissingDocumentError(RankstackError, KeyError):
    """A docid was asked for that the corpus does not hold."""

    def __init__(self, docid: str, source: str | None = None):
        self.docid = docid
        self.source = source
        src = f" in {source}" if source else ""
        super().__init__(docid)
        self._msg = f"document {docid!r} not found{src}"

    def __str__(self) -> str:  # KeyError would quote the bare docid
        return self._msg


class DatasetNotFoundError(RankstackError, FileNotFoundError):
    """A named dataset has no local copy and cannot be downloaded."""


class IndexMismatchError(RankstackError, ValueError):
    """An index folder was written by another backend or format version."""


class UsageError(RankstackError, ValueError):
    """An option or argument has a value the command cannot use (``--depth 0``): exit code 2."""


class Interrupted(RankstackError):
    """Ctrl-C during a command; the message says what was kept (``interrupted after N queries; ...``)."""
