"""Rank-R1 setwise: the heap sort (scripted comparator), answer parsing, the model-driven program."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from rankstack.errors import RankstackError
from rankstack.rerankers.backends.base import Completion
from rankstack.rerankers.engine import drive_program
from rankstack.rerankers.seeds import derive_seed
from rankstack.rerankers.setwise import SetwiseReranker, heap_topk, heap_topk_with, parse_setwise_answer
from rankstack.types import Doc, Query

from _scripted import run_recording


@pytest.mark.parametrize("n,k,num_child", [(20, 10, 3), (20, 10, 19), (100, 10, 19), (37, 5, 2), (7, 7, 1),
                                           (5, 10, 3), (1, 1, 3), (2, 1, 19), (0, 3, 3)])
def test_heap_sort_returns_the_true_top_k(n, k, num_child):
    values = list(range(n))
    random.Random(n * 31 + k).shuffle(values)
    seen_sizes = []

    def best(items):
        seen_sizes.append(len(items))
        return max(range(len(items)), key=lambda j: values[items[j]])

    top, calls = heap_topk_with(n, k, best, num_child)
    assert top == sorted(range(n), key=lambda i: -values[i])[: min(k, n)]
    assert all(2 <= s <= num_child + 1 for s in seen_sizes)
    assert calls == len(seen_sizes)


def test_heap_sort_cost_is_well_below_a_full_sort():
    values = list(range(100))
    random.Random(0).shuffle(values)
    _, calls = heap_topk_with(100, 10, lambda items: max(range(len(items)), key=lambda j: values[items[j]]), 19)
    assert calls < 40


def test_out_of_range_winner_lets_the_parent_win():
    gen = heap_topk(4, 1, 3)
    items = next(gen)
    assert len(items) == 4
    with pytest.raises(StopIteration) as stop:
        gen.send(99)
    assert stop.value.value == [items[0]]
    with pytest.raises(RankstackError):
        next(heap_topk(4, 1, 0))


@pytest.mark.parametrize("text,idx,status", [
    ("<think>doc 3 says it</think> <answer>[3]</answer>", 2, "ok"),
    ("<think>x</think> <answer>[3]", 2, "ok"),                     # closing tag cut by the stop string
    ("<think>x</think><answer>Document [2] is best</answer>", 1, "repaired"),
    ("<think>x</think><answer>4</answer>", 3, "repaired"),
    ("I think [1] is weak, [4] is the most relevant.", 3, "no_answer_tag"),
    ("<answer>[9]</answer>", None, "failed"),                      # out of range
    ("<answer>none of them</answer>", None, "failed"),
    ("", None, "failed"),
    (None, None, "failed"),
])
def test_parse_setwise_answer(text, idx, status):
    assert parse_setwise_answer(text, 4) == (idx, status)


def test_program_shuffles_labels_and_maps_answers_back():
    docs = [Doc(f"d{i}", f"passage number {i} " + "x" * i) for i in range(12)]
    rr = SetwiseReranker(None, k=4, num_child=3, cache=False, seed=1)
    shown_orders = []

    def answer(req):  # pick the longest passage: relevance = i
        lines = [x for x in req.prompt.messages[-1][1].split("\n") if x.startswith("[")]
        ids = [int(x.split("number ")[1].split()[0]) for x in lines]
        shown_orders.append(ids)
        return f"<think>longest</think> <answer>[{ids.index(max(ids)) + 1}]</answer>"

    stats = Counter()
    ranking = drive_program(rr.program(Query("q", "what"), docs, stats), lambda r: [Completion(answer(r))])
    assert ranking.docids[:4] == ["d11", "d10", "d9", "d8"]
    assert ranking.docids[4:] == [f"d{i}" for i in range(8)]  # the rest in first-stage order
    assert stats["comparisons"] == len(shown_orders) and not any(k.startswith("parse_") for k in stats)
    assert any(o != sorted(o) for o in shown_orders)  # documents were shuffled before labelling


def test_malformed_answers_let_the_parent_win_and_are_counted():
    docs = [Doc(f"d{i}", f"p{i}") for i in range(9)]
    stats = Counter()
    rr = SetwiseReranker(None, k=3, num_child=2, cache=False)
    ranking = drive_program(rr.program(Query("q", "x"), docs, stats), lambda r: [Completion("I cannot decide.")])
    assert stats["parse_failed"] == stats["comparisons"] > 0
    assert sorted(ranking.docids) == sorted(d.docid for d in docs)
    # the parent always wins: the heap never moves, so the extraction order is fixed by the heap layout
    assert ranking.docids[0] == "d0"


def test_real_model_comparisons_batch_across_queries(smollm2, dl19):
    """SmolLM2-135M, no-reasoning prompt, one 3-document comparison per query. Nothing here depends
    on what the model happens to answer (greedy outputs of a 135M model flip between CPU kernels):
    the two queries' comparisons go to the model together, and each query's top document is the one
    the parser reads from the model's recorded answer (the parent when it reads none), with every
    failed read counted."""
    qids = sorted(dl19.run)[:2]
    run = dl19.run.__class__({q: dl19.run[q].top(3) for q in qids})
    rr = SetwiseReranker(smollm2, k=1, num_child=2, max_new_tokens=3, max_doc_tokens=32, cache=False,
                         progress=False, reasoning=False)
    out = rr.rerank_run(run, dl19.queries, dl19.corpus, depth=3)
    assert out.metadata["comparisons"] == 2  # one 3-document comparison per query picks the top-1
    assert out.metadata["model_requests"] == 2 and out.metadata["generated_tokens"] > 0
    assert all(sorted(out[q].docids) == sorted(run[q].docids) for q in qids)
    for q in qids:
        docs = [rr.prepare_doc(d) for d in dl19.corpus.get_many(run[q].docids)]
        ranking, outputs, stats = run_recording(rr, dl19.queries[q], docs)
        items = next(heap_topk(3, 1, 2))  # the one comparison: these positions, shown shuffled
        perm = list(range(len(items)))
        random.Random(derive_seed(rr.seed, q, 0)).shuffle(perm)
        label, status = parse_setwise_answer(rr.template.assistant_prefix + outputs[0][0].text, len(items))
        assert ranking.docids[0] == docs[items[0 if label is None else perm[label]]].docid, outputs[0][0].text
        assert stats["comparisons"] == 1 and stats.get(f"parse_{status}", 0) == (0 if status == "ok" else 1)
