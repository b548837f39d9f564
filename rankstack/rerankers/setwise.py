"""Rank-R1 — setwise reranking with a reasoning model (Zhuang et al. 2025).

A heap sort over the candidates in which one comparison shows the model a heap parent and its
``num_child`` children (``num_child + 1`` documents, shuffled before labelling) and asks which
is most relevant (``<think>...</think> <answer>[3]</answer>``). The sort stops once the top
``k`` are known; the other candidates follow in first-stage order. An answer that does not
parse, or names no shown document, lets the heap parent win (counted as ``parse_failed``).

:func:`heap_topk` is the pure sort: a generator driven by any comparator, so the comparisons
of all queries batch together in the engine (one comparison request per query per step).
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from collections.abc import Callable, Generator, Sequence

from rankstack.errors import RankstackError
from rankstack.rerankers.backends.base import SamplingParams
from rankstack.rerankers.base import GenerateRequest, Reranker
from rankstack.rerankers.parsing import extract_answer
from rankstack.rerankers.prompts.setwise import SETWISE, SETWISE_DIRECT, format_documents
from rankstack.rerankers.seeds import derive_seed
from rankstack.rerankers.templates import resolve_template
from rankstack.types import Doc, Query, Ranking

log = logging.getLogger(__name__)

_LABEL = re.compile(r"\[\s*(\d+)\s*\]")


def parse_setwise_answer(text: str, n: int) -> tuple[int | None, str]:
    """The 0-based index of the document a Rank-R1 answer picks among ``n`` labelled ``[1]..[n]``.

    ``ok``: ``<answer>[k]</answer>`` with 1 <= k <= n; ``repaired``: the answer block holds a
    bare number or extra text around the label; ``no_answer_tag``: no ``<answer>`` tag, the last
    ``[k]`` of the text is used; ``failed`` (``None``): no label in range. Never raises.
    """
    if not isinstance(text, str) or n <= 0:
        return None, "failed"
    answer = extract_answer(text)
    block, tagged = answer.text, answer.source != "whole_text"
    if tagged:
        labels = _LABEL.findall(block)
        if labels:
            k = int(labels[0])
            if 1 <= k <= n:
                return k - 1, ("ok" if block.strip() == f"[{labels[0]}]" else "repaired")
            return None, "failed"
        nums = re.findall(r"\d+", block)
        if nums and 1 <= int(nums[0]) <= n:
            return int(nums[0]) - 1, "repaired"
        return None, "failed"
    labels = [int(x) for x in _LABEL.findall(text) if 1 <= int(x) <= n]
    if labels:
        return labels[-1] - 1, "no_answer_tag"
    return None, "failed"


def heap_topk(n: int, k: int, num_child: int = 19) -> Generator[list[int], int, list[int]]:
    """Heap sort of items ``0..n-1`` that stops after the top ``k``.

    Yields each comparison as a list of item ids, the heap parent first then its children; send
    back the position (in that list) of the most relevant one (anything out of range: the parent
    wins). Returns the top ``min(k, n)`` item ids, best first. A ``(num_child+1)``-ary max-heap:
    building it costs about ``n / num_child`` comparisons, each extraction about
    ``log_{num_child}(n)`` more.
    """
    if num_child < 1:
        raise RankstackError(f"num_child must be >= 1, got {num_child}")
    arr = list(range(n))

    def sift_down(size: int, i: int):
        while True:
            children = [c for c in range(num_child * i + 1, num_child * i + num_child + 1) if c < size]
            if not children:
                return
            group = [i] + children
            w = yield [arr[x] for x in group]
            best = group[w] if isinstance(w, int) and 0 <= w < len(group) else i
            if best == i:
                return
            arr[i], arr[best] = arr[best], arr[i]
            i = best

    for i in range((n - 2) // num_child, -1, -1):
        yield from sift_down(n, i)
    top: list[int] = []
    size = n
    while size > 0 and len(top) < k:
        top.append(arr[0])
        size -= 1
        if len(top) == k or size == 0:
            break
        arr[0] = arr[size]
        yield from sift_down(size, 0)
    return top


def heap_topk_with(n: int, k: int, compare: Callable[[list[int]], int], num_child: int = 19) -> tuple[list[int], int]:
    """Run :func:`heap_topk` with a plain comparator; returns (top-k ids, number of comparisons)."""
    gen = heap_topk(n, k, num_child)
    calls = 0
    try:
        items = next(gen)
        while True:
            calls += 1
            items = gen.send(compare(items))
    except StopIteration as stop:
        return stop.value, calls


class SetwiseReranker(Reranker):
    """Rank-R1 setwise heap sort.

    Args:
        backend: any generating backend (``hf``, ``openai``, ``vllm``).
        k: how many top documents the heap sort extracts (paper 10); the rest keep first-stage order.
        num_child: children per heap node, so ``num_child + 1`` documents per prompt (paper: 20 per prompt).
        temperature: 0 = greedy (**[DEFAULT]**); top_p, top_k for sampling.
        max_new_tokens: think + answer budget (**[DEFAULT]** 512).
        seed: the shuffle of comparison j of query q uses ``derive_seed(seed, qid, j)``; the sampling
            seed is ``derive_seed(seed, "sample")``, shared by all queries so requests batch together.
        max_doc_tokens: passages cut to this many tokens (**[DEFAULT]** 128).
        reasoning: ``False`` gives an empty ``<think>`` and ``<answer>[`` so the model only writes the
            label, rankstack's cheap variant for small models (**[DEFAULT]** ``True``, the paper's prompt).
        template: ``"rank-r1"`` (the released Rank-R1 v0.1 models' prompt, the paper's); ``None`` = chosen
            from the model id when the model is known, ``"none"`` = off.

    ``run.metadata`` reports ``comparisons`` and ``generated_tokens``; unparsed answers are
    ``parse_failed`` (the parent won), lenient reads ``parse_repaired``/``parse_no_answer_tag``.
    """

    name = "setwise"
    prompt_version = SETWISE.version

    def __init__(self, backend=None, *, k: int = 10, num_child: int = 19, temperature: float = 0.0,
                 top_p: float = 1.0, top_k: int = 0, max_new_tokens: int = 512, seed: int = 0,
                 shuffle: bool = True, max_doc_tokens: int | None = 128, reasoning: bool | None = None,
                 template: str | None = None, **kw):
        if k < 1 or num_child < 1:
            raise RankstackError("k and num_child must be >= 1")
        super().__init__(backend, max_doc_tokens=max_doc_tokens, **kw)
        mt = resolve_template("setwise", backend, template)
        if mt is not None and reasoning is not None and reasoning != mt.options["reasoning"]:
            raise RankstackError(f"reasoning={reasoning} contradicts the model template {mt.name!r}; pass "
                                 "template='none' to use rankstack's direct variant with this model")
        reasoning = mt.options["reasoning"] if mt is not None else (True if reasoning is None else reasoning)
        self.model_template = mt
        self.k, self.num_child = k, num_child
        self.temperature, self.top_p, self.top_k = temperature, top_p, top_k
        self.max_new_tokens, self.seed, self.shuffle = max_new_tokens, seed, shuffle
        self.template = SETWISE if reasoning else SETWISE_DIRECT
        self.prompt_version = self.template.version

    def params(self):
        return {**super().params(), "k": self.k, "num_child": self.num_child, "temperature": self.temperature,
                "top_p": self.top_p, "top_k": self.top_k, "max_new_tokens": self.max_new_tokens,
                "seed": self.seed, "shuffle": self.shuffle}

    def sampling(self) -> SamplingParams:
        return SamplingParams(n=1, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              max_new_tokens=self.max_new_tokens, stop=("</answer>",),
                              seed=derive_seed(self.seed, "sample"))

    def prompt(self, query: Query, docs: Sequence[Doc]):
        return self.template.render(query=query.text, documents=format_documents([d.text for d in docs]))

    def program(self, query: Query, docs: list[Doc], stats: Counter):
        heap = heap_topk(len(docs), self.k, self.num_child)
        params = self.sampling()
        step = 0
        try:
            items = next(heap)
            while True:
                perm = list(range(len(items)))
                if self.shuffle:
                    random.Random(derive_seed(self.seed, query.qid, step)).shuffle(perm)
                shown = [docs[items[p]] for p in perm]
                (completions,) = yield [GenerateRequest(self.prompt(query, shown), params)]
                label, status = parse_setwise_answer(self.template.assistant_prefix + completions[0].text, len(shown))
                stats["comparisons"] += 1
                if status != "ok":
                    stats[f"parse_{status}"] += 1
                step += 1
                items = heap.send(0 if label is None else perm[label])
        except StopIteration as stop:
            top: list[int] = stop.value
        chosen = set(top)
        order = top + [i for i in range(len(docs)) if i not in chosen]
        return Ranking.from_order(query.qid, [docs[i].docid for i in order])
