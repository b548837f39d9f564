"""Cross-encoder reranker plumbing on the local MiniLM (alias ``minilm-l6``).

No cross-encoder weights ship on PyPI here: ``CrossEncoder(minilm, num_labels=1)`` is a BERT
with a randomly initialised (seeded) score head, so these tests check plumbing, batching,
caching and determinism, not effectiveness.
"""

from __future__ import annotations

import pytest

from rankstack.errors import RankstackError
from rankstack.rerankers import load_reranker
from rankstack.rerankers.cross_encoder import CrossEncoderReranker
from rankstack.types import Run


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ce():
    return load_reranker("cross_encoder", model="minilm-l6", cache=False, progress=False)


@pytest.fixture(scope="module")
def small_run(dl19):
    run = Run(name="bm25")
    for q in sorted(dl19.run)[:2]:
        run[q] = dl19.run[q].top(12)
    return run


def test_loads_through_registry_without_backend(ce):
    assert isinstance(ce, CrossEncoderReranker) and ce.backend is None and CrossEncoderReranker.uses_backend is False
    assert ce.model_name == "minilm-l6"


def test_deterministic_and_batch_invariant(ce, dl19, small_run):
    again = CrossEncoderReranker("minilm-l6", cache=False, progress=False, batch_size=1)
    assert again.fingerprint() == ce.fingerprint()  # same seed: same head, same cache identity
    other = CrossEncoderReranker("minilm-l6", seed=1, cache=False, progress=False)
    assert other.fingerprint() != ce.fingerprint()
    a = ce.rerank_run(small_run, dl19.queries, dl19.corpus, depth=8)
    b = again.rerank_run(small_run, dl19.queries, dl19.corpus, depth=8)
    for q in small_run:
        sa, sb = a[q].scores(), b[q].scores()
        assert max(abs(sa[d] - sb[d]) for d in sa) < 1e-4
        assert sorted(a[q].docids[:8]) == sorted(small_run[q].docids[:8])
        assert a[q].docids[8:] == small_run[q].docids[8:]
        assert len(set(round(sa[d], 6) for d in a[q].docids[:8])) > 1  # scores actually vary
    assert a.metadata["model_requests"] == 16


def test_cache_and_fusion(dl19, small_run, tmp_path):
    path = str(tmp_path / "ce.sqlite")
    first = CrossEncoderReranker("minilm-l6", cache=path, progress=False)
    r1 = first.rerank_run(small_run, dl19.queries, dl19.corpus, depth=5)
    second = CrossEncoderReranker("minilm-l6", cache=path, progress=False, fusion=0.0)
    r2 = second.rerank_run(small_run, dl19.queries, dl19.corpus, depth=5)
    assert r1.metadata["model_requests"] == 10 and r2.metadata["model_requests"] == 0
    assert r2.metadata["cache_hits"] == 10
    for q in small_run:
        assert r2[q].docids == small_run[q].docids  # weight 0: first-stage order


def test_rerank_strings(ce):
    r = ce.rerank("what do bees make", ["Bees make honey.", "Cars have wheels.", "Honey comes from bees."], k=2)
    assert len(r) == 2 and set(r.docids) <= {"0", "1", "2"}


def test_bad_model_is_a_clear_error(tmp_path):
    with pytest.raises(RankstackError):
        CrossEncoderReranker(str(tmp_path / "nope"), progress=False)
