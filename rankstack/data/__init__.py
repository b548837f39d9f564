"""Reading and writing what IR users have: TREC runs/qrels/topics, corpora, RankLLM JSON, named datasets."""

from rankstack.data.corpus import DocStore, InMemoryDocStore, SqliteDocStore, load_corpus, read_corpus, write_corpus
from rankstack.data.datasets import Dataset, load_dataset
from rankstack.data.rankllm import read_rankllm, write_rankllm
from rankstack.data.trec import (read_qrels, read_run, read_run_metadata, read_topics, write_qrels, write_run,
                                 write_run_metadata, write_topics)

__all__ = [
    "DocStore", "InMemoryDocStore", "SqliteDocStore", "load_corpus", "read_corpus", "write_corpus",
    "Dataset", "load_dataset", "read_rankllm", "write_rankllm",
    "read_qrels", "read_run", "read_run_metadata", "read_topics", "write_qrels", "write_run", "write_run_metadata",
    "write_topics",
]
