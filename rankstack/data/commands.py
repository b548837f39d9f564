"""CLI: ``rankstack convert``: runs, corpora and topics between formats."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def add_parsers(sub) -> None:
    p = sub.add_parser("convert", help="convert runs / corpora / topics between formats")
    p.add_argument("kind", choices=["run", "corpus", "topics", "rankllm"],
                   help="run: TREC run <-> RankLLM JSON needs queries+corpus; corpus: jsonl/pyserini/tsv/trec; "
                        "topics: tsv/trec/doc; rankllm: RankLLM JSON -> run + topics + corpus")
    p.add_argument("input", help="the file to convert, or a dataset name (dl19, vaswani, cacm) for run/corpus/topics")
    p.add_argument("output")
    p.add_argument("--from", dest="src_format", default=None, help="input format (guessed if omitted)")
    p.add_argument("--to", dest="dst_format", default=None, help="output format")
    p.add_argument("--queries", help="(run -> rankllm) topics file or dataset name")
    p.add_argument("--corpus", help="(run -> rankllm) corpus file or dataset name")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args) -> int:
    from pathlib import Path

    from rankstack.data import corpus as C
    from rankstack.data import trec as T
    from rankstack.data.datasets import check_inputs, is_dataset_name, load_dataset, resolve_run
    from rankstack.data.rankllm import read_rankllm, write_rankllm
    from rankstack.errors import RankstackError, UsageError

    kind = {"run": "run", "corpus": "corpus", "topics": "topics", "rankllm": "file"}[args.kind]
    check_inputs(**{kind: args.input})
    check_inputs(topics=args.queries, corpus=args.corpus)
    if Path(args.output).is_dir():
        raise RankstackError(f"{args.output}: is a folder; give the file to write")
    named = is_dataset_name(args.input)
    if args.kind == "corpus":
        docs = load_dataset(args.input).corpus if named else C.read_corpus(args.input, args.src_format)
        C.write_corpus(docs, args.output, args.dst_format or "jsonl")
    elif args.kind == "topics":
        topics = load_dataset(args.input).queries if named else T.read_topics(args.input, args.src_format)
        T.write_topics(topics, args.output, args.dst_format or "tsv")
    elif args.kind == "run":
        if (args.dst_format or "trec") == "rankllm":
            from rankstack.data.datasets import resolve_corpus, resolve_queries

            if not (args.queries and args.corpus):
                raise UsageError("run -> rankllm needs --queries and --corpus")
            write_rankllm(resolve_queries(args.queries), resolve_run(args.input), resolve_corpus(args.corpus), args.output)
        else:
            T.write_run(resolve_run(args.input), args.output)
    elif args.kind == "rankllm":
        queries, run, store = read_rankllm(args.input)
        T.write_run(run, args.output)
        T.write_topics(queries, args.output + ".topics.tsv")
        C.write_corpus(store, args.output + ".corpus.jsonl")
        print(f"wrote {args.output} (+ .topics.tsv, .corpus.jsonl)")
    return 0
