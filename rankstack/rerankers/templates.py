"""Model-specific reranker templates: released reranker models only work with the prompt they were
trained on, so a known model id selects its template automatically.

    rr = load_reranker("pointwise", model="Qwen/Qwen3-Reranker-0.6B")          # -> template qwen3-reranker
    rr = load_reranker("listwise", model="my-copy-of-rankzephyr", template="rankzephyr")  # explicit
    rr = load_reranker("pointwise", model="Qwen/Qwen3-Reranker-0.6B", template=None)  # auto (the default)
    rr = load_reranker("pointwise", model="...", template="none")               # rankstack's own prompt

A :class:`ModelTemplate` names the reranker (paradigm) the model was trained for, the versioned
prompt(s) of :mod:`rankstack.rerankers.prompts` it uses, the reranker options the model needs
(Qwen3-Reranker's bare ``yes``/``no`` tokens, ReasonRank's reasoning prompt, Rank-R1's think
block), the chat markup it was trained with, and the model ids it is known by. A reranker that
uses one records it in ``run.metadata["template"]`` and in its cache fingerprint.

At inference the backend renders the prompt with the model's own chat template (its tokenizer);
:meth:`ModelTemplate.render_text` writes the same string from the published chat markup, for
the golden tests and for reading what a model sees.

| template | reranker | models | chat markup | source of the format |
|---|---|---|---|---|
| ``qwen3-reranker`` | pointwise yes/no | Qwen/Qwen3-Reranker-0.6B, -4B, -8B | ChatML | the model card (prefix/format_instruction/suffix) |
| ``rankzephyr`` | listwise | castorini/rank_zephyr_7b_v1_full | Zephyr | rank_llm's RankZephyr prompt (METHODS.md 0) |
| ``first`` | first | rryisthebest/First_Model, castorini/first_mistral | Zephyr | FIRST's code (gangiswag/llm-reranker): alphabetical ids, ``[`` |
| ``reasonrank`` | listwise | liuwenhan/reasonrank-7B, -32B | ChatML | ReasonRank's system + user prompt (METHODS.md 4) |
| ``rank-r1`` | setwise | ielabgroup/Rank-R1-3B-v0.1, -7B-, -14B-v0.1 | ChatML | the model card's prompt_setwise-R1.toml |
| ``erank`` | pointwise erank / score10 | Alibaba-NLP/ERank-4B, -14B, -32B | ChatML | ERank's prompt (METHODS.md 2) |
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rankstack.errors import RankstackError
from rankstack.rerankers.backends.base import Prompt
from rankstack.rerankers.prompts import PromptTemplate
from rankstack.rerankers.prompts.pointwise import ERANK, QWEN3_RERANKER, SCORE10
from rankstack.rerankers.prompts.setwise import SETWISE

log = logging.getLogger(__name__)

#: ``template=`` values that turn the model templates off (rankstack's own prompts)
OFF = ("none", "off", False)


@dataclass(frozen=True)
class ModelTemplate:
    """The prompt format (and reranker options) a released reranker model was trained with.

    ``paradigm``: the registry name of the reranker it configures. ``prompts``: the versioned
    prompt per pointwise method (pointwise) or ``{"setwise": ...}``; ``style``: the listwise
    prompt style (listwise, first). ``options``: reranker options the model needs (a user's
    explicit option still wins). ``chat``: the chat markup (``chatml``, ``zephyr``).
    """

    name: str
    version: str
    paradigm: str
    chat: str
    models: tuple[str, ...]
    source: str
    prompts: Mapping[str, PromptTemplate] = field(default_factory=dict)
    style: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    def prompt(self, query: str, passages: Sequence[str], method: str | None = None) -> Prompt:
        """The :class:`Prompt` this template gives one (query, passage) pair (pointwise), one
        window (listwise, first) or one comparison (setwise)."""
        if self.paradigm == "pointwise":
            (passage,) = passages
            return self.prompts[method or self.options["method"]].render(query=query, document=passage)
        if self.paradigm == "setwise":
            from rankstack.rerankers.prompts.setwise import format_documents

            return self.prompts["setwise"].render(query=query, documents=format_documents(list(passages)))
        from rankstack.rerankers.prompts.listwise import render_listwise

        ids = self.options.get("ids", "numeric")
        return render_listwise(self.style, query, list(passages), ids=ids,
                               assistant_prefix=self.options.get("assistant_prefix", ""))

    def render_text(self, query: str, passages: Sequence[str], method: str | None = None) -> str:
        """The exact text the model reads: :meth:`prompt` in this template's chat markup."""
        return render_chat(self.prompt(query, passages, method), self.chat)


def render_chat(prompt: Prompt, chat: str) -> str:
    """``prompt`` in a chat markup, with the generation prompt and the assistant prefix:
    ``chatml`` (Qwen2.5, Qwen3, SmolLM2; no default system message is added) or ``zephyr``."""
    if chat == "chatml":
        body = "".join(f"<|im_start|>{r}\n{c}<|im_end|>\n" for r, c in prompt.messages)
        return body + "<|im_start|>assistant\n" + prompt.assistant_prefix
    if chat == "zephyr":
        body = "".join(f"<|{r}|>\n{c}</s>\n" for r, c in prompt.messages)
        return body + "<|assistant|>\n" + prompt.assistant_prefix
    raise RankstackError(f"unknown chat markup {chat!r}; chatml or zephyr")


_SOURCES = {
    "qwen3": "https://huggingface.co/Qwen/Qwen3-Reranker-0.6B (model card: prefix, format_instruction, suffix)",
    "rank_llm": "https://github.com/castorini/rank_llm (RankZephyr prompt) and Zephyr's chat markup",
    "first": "https://github.com/gangiswag/llm-reranker (FIRST: alphabetical ids, '[' appended)",
    "reasonrank": "https://huggingface.co/liuwenhan/reasonrank-7B (ReasonRank system + user prompt)",
    "rank_r1": "https://huggingface.co/ielabgroup/Rank-R1-7B-v0.1 (prompt_setwise-R1.toml)",
    "erank": "https://huggingface.co/Alibaba-NLP/ERank-4B (ERank's 0-10 prompt)",
}

TEMPLATES: dict[str, ModelTemplate] = {t.name: t for t in (
    ModelTemplate("qwen3-reranker", "1", "pointwise", "chatml",
                  ("Qwen/Qwen3-Reranker-0.6B", "Qwen/Qwen3-Reranker-4B", "Qwen/Qwen3-Reranker-8B"),
                  _SOURCES["qwen3"], prompts={"yesno": QWEN3_RERANKER},
                  options={"method": "yesno", "yes_forms": ("yes",), "no_forms": ("no",)}),
    ModelTemplate("rankzephyr", "1", "listwise", "zephyr", ("castorini/rank_zephyr_7b_v1_full",),
                  _SOURCES["rank_llm"], style="rankzephyr", options={"prompt": "rankzephyr", "ids": "numeric"}),
    ModelTemplate("first", "1", "first", "zephyr", ("rryisthebest/First_Model", "castorini/first_mistral"),
                  _SOURCES["first"], style="rankzephyr", options={"ids": "alpha", "assistant_prefix": "["}),
    ModelTemplate("reasonrank", "1", "listwise", "chatml", ("liuwenhan/reasonrank-7B", "liuwenhan/reasonrank-32B"),
                  _SOURCES["reasonrank"], style="reasonrank", options={"prompt": "reasonrank", "ids": "numeric"}),
    ModelTemplate("rank-r1", "1", "setwise", "chatml",
                  ("ielabgroup/Rank-R1-3B-v0.1", "ielabgroup/Rank-R1-7B-v0.1", "ielabgroup/Rank-R1-14B-v0.1"),
                  _SOURCES["rank_r1"], prompts={"setwise": SETWISE}, options={"reasoning": True}),
    ModelTemplate("erank", "1", "pointwise", "chatml",
                  ("Alibaba-NLP/ERank-4B", "Alibaba-NLP/ERank-14B", "Alibaba-NLP/ERank-32B"),
                  _SOURCES["erank"], prompts={"erank": ERANK, "score10": SCORE10}, options={"method": "erank"}),
)}


def get_template(name: str | ModelTemplate) -> ModelTemplate:
    if isinstance(name, ModelTemplate):
        return name
    try:
        return TEMPLATES[str(name).lower()]
    except KeyError:
        raise RankstackError(f"unknown model template {name!r}; known: {', '.join(sorted(TEMPLATES))} "
                             "(or 'none' for rankstack's own prompt)") from None


def register_template(template: ModelTemplate) -> None:
    """Add (or replace) a model template, e.g. for a model trained here on another prompt."""
    TEMPLATES[template.name.lower()] = template


def _base(name: str) -> str:
    """The last path component, lower-cased, without rankstack's ``@digest``/``:digest`` suffixes."""
    name = re.split(r"[@]", name.strip().rstrip("/"))[0]
    return os.path.basename(name).split(":")[0].lower()


def model_names(backend) -> list[str]:
    """The names a backend's model goes by: its id, and (hf) the config's and tokenizer's name_or_path."""
    names = [getattr(backend, "model_id", "") or ""]
    model = getattr(backend, "model", None)
    cfg = getattr(model, "config", None)
    names.append(getattr(cfg, "_name_or_path", "") or getattr(cfg, "name_or_path", "") or "")
    names.append(getattr(getattr(backend, "tokenizer", None), "name_or_path", "") or "")
    return [n for n in dict.fromkeys(str(x) for x in names) if n]


def template_for_model(names: str | Sequence[str]) -> ModelTemplate | None:
    """The template of a known model: a hub id, or a local folder / GGUF file whose name starts
    with the model's name (``/models/Qwen3-Reranker-0.6B``, ``Qwen3-Reranker-4B.Q8_0.gguf``)."""
    for name in [names] if isinstance(names, str) else names:
        base = _base(name)
        full = re.split(r"[@:]", name.strip().rstrip("/"))[0].lower()
        for t in TEMPLATES.values():
            for m in t.models:
                mb = m.split("/")[-1].lower()
                if full == m.lower() or base == mb or any(base.startswith(mb + s) for s in ".-_"):
                    return t
    return None


def resolve_template(paradigm: str, backend, template) -> ModelTemplate | None:
    """The model template a reranker of ``paradigm`` uses: ``template`` given by name (it must be
    for this paradigm), ``None`` = chosen from the model's id/config when the model is known and
    trained for this paradigm (a model known for another paradigm is logged, not forced), or
    ``"none"`` = no model template."""
    if template in OFF:
        return None
    if template is not None:
        t = get_template(template)
        if t.paradigm != paradigm:
            raise RankstackError(f"template {t.name!r} is for the {t.paradigm!r} reranker, not {paradigm!r}")
        return t
    if backend is None:
        return None
    t = template_for_model(model_names(backend))
    if t is None:
        return None
    if t.paradigm != paradigm:
        log.warning("%s was trained with the %s template of the %r reranker; the %r reranker uses its own prompt "
                    "(it may rank poorly)", model_names(backend)[0], t.name, t.paradigm, paradigm)
        return None
    log.info("model %s: using template %s", model_names(backend)[0], t.id)
    return t
