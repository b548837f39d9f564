"""rankstack: LLM reranking for retrieval pipelines.

    import rankstack
    ds = rankstack.load_dataset("dl19")
    rr = rankstack.load_reranker("pointwise", model="smollm2-135m")
    run = rr.rerank_run(ds.run, ds.queries, ds.corpus, depth=20)
    print(rankstack.evaluate(run, ds.qrels, ["nDCG@10"]))
"""

from rankstack.types import Doc, Qrels, Query, Ranking, Run, ScoredDoc
from rankstack.version import __version__

__all__ = ["Doc", "Qrels", "Query", "Ranking", "Run", "ScoredDoc", "load_dataset", "load_reranker", "evaluate",
           "compare", "report", "RemoteReranker", "__version__"]


def __getattr__(name):  # heavy parts load on first use: `import rankstack` stays fast
    if name == "load_dataset":
        from rankstack.data.datasets import load_dataset

        return load_dataset
    if name == "load_reranker":
        from rankstack.rerankers.registry import load_reranker

        return load_reranker
    if name == "report":  # the package rankstack.report; calling it calls rankstack.report.report
        import rankstack.report as _report

        return _report
    if name == "RemoteReranker":
        from rankstack.serve.client import RemoteReranker

        return RemoteReranker
    if name in ("evaluate", "compare"):
        from rankstack import eval as _eval

        return getattr(_eval, name)
    raise AttributeError(name)
