"""A deterministic backend for tests: it answers each prompt from the prompt's own text.

Not a mock of the engine: every reranker program, the engine's batching, caching and parsing run as
they do with a model. Only the model is replaced by a rule (``answer(prompt) -> Completion``), so a
test knows which output each prompt gets, and therefore the scores a correct implementation gives.
"""

from __future__ import annotations

from rankstack.rerankers.backends.base import Backend, Completion, Prompt, SamplingParams


class ScriptedBackend(Backend):
    name = "scripted"

    def __init__(self, answer, model_id: str = "rule"):
        self.answer, self.model_id = answer, model_id
        self.prompts: list[Prompt] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split()[:max_tokens])

    def next_token_logprobs(self, prompts, candidates):
        raise NotImplementedError("a generation-only backend")

    def generate(self, prompts, params: SamplingParams = SamplingParams()) -> list[list[Completion]]:
        self.prompts += list(prompts)
        return [[self.answer(p) for _ in range(params.n)] for p in prompts]


def run_recording(rr, query, docs):
    """Run one query's program on ``rr``'s own backend, a request at a time, keeping every answer:
    ``(ranking, outputs, stats)``, ``outputs`` a list of completion lists in request order, so a test
    can check the scores against what the model wrote."""
    from collections import Counter

    from rankstack.rerankers.engine import drive_program

    outputs, stats = [], Counter()

    def respond(req):
        (comps,) = rr.execute([req])
        outputs.append(comps)
        return comps

    return drive_program(rr.program(query, docs, stats), respond), outputs, stats
