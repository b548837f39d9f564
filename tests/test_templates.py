"""Model-specific templates: a golden string per template (the exact text the model reads for a
fixed query and passages, written out from the published format), the hf backend rendering the
same string through a real ChatML chat template, automatic choice from the model id, explicit
override, and the template in the run's metadata and the cache fingerprint."""

from __future__ import annotations

import logging

import pytest

from rankstack.errors import RankstackError
from rankstack.rerankers.backends.hf import HFBackend
from rankstack.rerankers.first import FirstReranker
from rankstack.rerankers.listwise import ListwiseReranker
from rankstack.rerankers.pointwise import PointwiseReranker
from rankstack.rerankers.setwise import SetwiseReranker
from rankstack.rerankers.templates import TEMPLATES, get_template, render_chat, template_for_model
from rankstack.types import Doc, Query, Ranking, Run

Q = "What is the capital of China?"
P1 = "The capital of China is Beijing."
P2 = "Gravity is a force that attracts two bodies towards each other."

# --- the published formats, written out -------------------------------------------------------
#: Qwen3-Reranker model card: prefix + format_instruction(None, query, doc) + suffix
QWEN3 = ('<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct '
         'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
         f"<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n<Query>: {Q}\n"
         f"<Document>: {P1}"
         "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")

_RANKLLM_SYSTEM = "You are RankLLM, an intelligent assistant that can rank passages based on their relevancy to the query."
#: rank_llm's RankZephyr prompt (prefix, "\n", one "[i] passage\n" per passage, post prompt) in Zephyr's markup
RANKZEPHYR = (f"<|system|>\n{_RANKLLM_SYSTEM}</s>\n<|user|>\n"
              "I will provide you with 2 passages, each indicated by a numerical identifier []. Rank the passages "
              f"based on their relevance to the search query: {Q}.\n\n[1] {P1}\n[2] {P2}\n"
              f"Search Query: {Q}.\nRank the 2 passages above based on their relevance to the search query. All the "
              "passages should be included and listed using identifiers, in descending order of relevance. The "
              "output format should be [] > [], e.g., [2] > [1], Only respond with the ranking results, do not say "
              "any word or explain.</s>\n<|assistant|>\n")
#: FIRST (gangiswag/llm-reranker): "a alphabetical identifier", [A]/[B], example [B] > [A], then "[" appended
FIRST = (f"<|system|>\n{_RANKLLM_SYSTEM}</s>\n<|user|>\n"
         "I will provide you with 2 passages, each indicated by a alphabetical identifier []. Rank the passages "
         f"based on their relevance to the search query: {Q}.\n\n[A] {P1}\n[B] {P2}\n"
         f"Search Query: {Q}.\nRank the 2 passages above based on their relevance to the search query. All the "
         "passages should be included and listed using identifiers, in descending order of relevance. The output "
         "format should be [] > [], e.g., [B] > [A], Only respond with the ranking results, do not say any word or "
         "explain.</s>\n<|assistant|>\n[")
#: ReasonRank (Qwen2.5 ChatML): reasoning system prompt, "The format of the answer should be ..."
REASONRANK = ("<|im_start|>system\nYou are RankLLM, an intelligent assistant that can rank passages based on their "
              "relevance to the query. Given a query and a passage list, you first thinks about the reasoning process "
              "in the mind and then provides the answer (i.e., the reranked passage list). The reasoning process and "
              "answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> "
              "reasoning process here </think> <answer> answer here </answer>.<|im_end|>\n<|im_start|>user\n"
              "I will provide you with 2 passages, each indicated by a numerical identifier []. Rank the passages "
              f"based on their relevance to the search query: {Q}.\n\n[1] {P1}\n[2] {P2}\n"
              f"Search Query: {Q}.\nRank the 2 passages above based on their relevance to the search query. All the "
              "passages should be included and listed using identifiers, in descending order of relevance. The format "
              "of the answer should be [] > [], e.g., [2] > [1].<|im_end|>\n<|im_start|>assistant\n")
#: Rank-R1 v0.1 model card (prompt_setwise-R1.toml), documents as "[i] text" lines, Qwen2.5 ChatML
RANK_R1 = ("<|im_start|>system\nA conversation between User and Assistant. The user asks a question, and the Assistant "
           "solves it. The assistant first thinks about the reasoning process in the mind and then provides the user "
           "with the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> "
           "</answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here "
           "</answer>.<|im_end|>\n<|im_start|>user\n"
           f'Given the query: "{Q}", which of the following documents is most relevant?\n[1] {P1}\n[2] {P2}\n'
           "After completing the reasoning process, please provide only the label of the most relevant document to "
           "the query, enclosed in square brackets, within the answer tags. For example, if the third document is "
           "the most relevant, the answer should be: <think> reasoning process here </think> <answer>[3]</answer>."
           "<|im_end|>\n<|im_start|>assistant\n")
#: ERank (Qwen3 ChatML, no system message): the 0-10 prompt; the reasoning model writes <think> itself
ERANK = ("<|im_start|>user\nGiven a query and a document, please give a relevance score of 0 to 10. The goal or "
         "relevance definition is: Given a query, retrieval relevant passage.\n"
         f"Here is the query: {Q}\nHere is the document: {P1}\n"
         "After thinking, directly choose a relevance score from [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].\n"
         "- 0 represents completely not related.\n- 10 means perfectly related.\n"
         "Desired output format: <think> put your thinking here </think><answer> Only allows an integer here "
         "</answer>\nYour output:<|im_end|>\n<|im_start|>assistant\n")

GOLDEN = {"qwen3-reranker": ([P1], QWEN3), "rankzephyr": ([P1, P2], RANKZEPHYR), "first": ([P1, P2], FIRST),
          "reasonrank": ([P1, P2], REASONRANK), "rank-r1": ([P1, P2], RANK_R1), "erank": ([P1], ERANK)}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_prompt_string(name):
    passages, want = GOLDEN[name]
    assert get_template(name).render_text(Q, passages) == want


def test_every_template_has_a_golden_string():
    assert set(GOLDEN) == set(TEMPLATES)


def test_erank_fast_mode_starts_the_answer():
    assert get_template("erank").render_text(Q, [P1], method="score10") == ERANK + "<think> </think><answer>"


@pytest.fixture(scope="module")
def chatml_render():
    """The hf backend's renderer over a real ChatML chat template (SmolLM2's tokenizer, offline)."""
    from rankstack.models import load_tokenizer

    be = HFBackend.__new__(HFBackend)
    be.tokenizer = load_tokenizer("smollm2-135m")
    return be.render


@pytest.mark.parametrize("name", ["qwen3-reranker", "reasonrank", "rank-r1"])
def test_hf_backend_renders_the_golden_string_through_a_chatml_template(chatml_render, name):
    """What the backend feeds a ChatML model is the published string (templates with a system
    message: SmolLM2's template adds its own default system prompt where none is given)."""
    passages, want = GOLDEN[name]
    t = get_template(name)
    assert chatml_render(t.prompt(Q, passages)) == want == render_chat(t.prompt(Q, passages), "chatml")


@pytest.mark.parametrize("model,name", [
    ("Qwen/Qwen3-Reranker-0.6B", "qwen3-reranker"), ("/models/Qwen3-Reranker-4B/", "qwen3-reranker"),
    ("Qwen3-Reranker-8B.Q8_0.gguf", "qwen3-reranker"), ("Qwen/Qwen3-Reranker-0.6B:1a2b3c4d5e6f", "qwen3-reranker"),
    ("castorini/rank_zephyr_7b_v1_full", "rankzephyr"), ("rryisthebest/First_Model", "first"),
    ("castorini/first_mistral", "first"), ("liuwenhan/reasonrank-32B", "reasonrank"),
    ("ielabgroup/Rank-R1-7B-v0.1", "rank-r1"), ("/ckpt/ERank-14B@0a1b2c", "erank"),
    ("smollm2-135m", None), ("Qwen/Qwen3-4B", None), ("Qwen/Qwen3-Reranker", None)])
def test_template_chosen_from_the_model_id(model, name):
    t = template_for_model(model)
    assert (t.name if t else None) == name


@pytest.fixture(scope="module")
def qwen3_named(tiny_lm):
    """The tiny model under a Qwen3-Reranker id: the template is chosen from the id."""
    model, tok = tiny_lm
    return HFBackend(model="Qwen/Qwen3-Reranker-0.6B", model_obj=model, tokenizer=tok, batch_size=4)


def test_auto_template_override_metadata_and_fingerprint(qwen3_named, tiny_lm):
    auto = PointwiseReranker(qwen3_named, cache=False, progress=False)
    assert auto.model_template.name == "qwen3-reranker" and auto.method == "yesno"
    assert (auto.yes_forms, auto.no_forms) == (("yes",), ("no",))
    assert render_chat(auto.prompt(Query("q", Q), Doc("d", P1)), "chatml") == QWEN3
    off = PointwiseReranker(qwen3_named, template="none", cache=False, progress=False)
    assert off.model_template is None and off.fingerprint() != auto.fingerprint()
    assert "Judge whether" not in str(off.prompt(Query("q", Q), Doc("d", P1)))

    model, tok = tiny_lm
    plain = HFBackend(model="tiny-llama", model_obj=model, tokenizer=tok, batch_size=4)
    assert PointwiseReranker(plain, cache=False).model_template is None
    forced = PointwiseReranker(plain, template="qwen3-reranker", cache=False, progress=False)
    assert forced.model_template.name == "qwen3-reranker"

    run = Run(name="bm25")
    run["q1"] = Ranking.from_order("q1", ["a", "b"])

    class Store(dict):
        def get_many(self, ids):
            return [self[i] for i in ids]

    out = auto.rerank_run(run, {"q1": Query("q1", Q)}, Store(a=Doc("a", P1), b=Doc("b", P2)), depth=2)
    assert out.metadata["template"] == "qwen3-reranker@1" and out.metadata["fingerprint"] == auto.fingerprint()
    assert "template" not in off.rerank_run(run, {"q1": Query("q1", Q)}, Store(a=Doc("a", P1), b=Doc("b", P2)),
                                            depth=2).metadata


def test_erank_template_methods(tiny_lm):
    model, tok = tiny_lm
    be = HFBackend(model="Alibaba-NLP/ERank-4B", model_obj=model, tokenizer=tok)
    assert PointwiseReranker(be, cache=False).method == "erank"
    fast = PointwiseReranker(be, method="score10", cache=False)
    assert fast.model_template.name == "erank" and fast.template.assistant_prefix == "<think> </think><answer>"
    with pytest.raises(RankstackError, match="no prompt for method"):
        PointwiseReranker(be, method="prorank", cache=False)


def test_other_paradigms_take_their_templates(tiny_lm, caplog):
    model, tok = tiny_lm

    def be(name):
        return HFBackend(model=name, model_obj=model, tokenizer=tok)

    zephyr = ListwiseReranker(be("castorini/rank_zephyr_7b_v1_full"), cache=False)
    assert zephyr.model_template.name == "rankzephyr" and zephyr.prompt == "rankzephyr"
    reason = ListwiseReranker(be("liuwenhan/reasonrank-7B"), cache=False)
    assert reason.prompt == "reasonrank" and reason.reasoning
    with pytest.raises(RankstackError, match="contradicts"):
        ListwiseReranker(be("liuwenhan/reasonrank-7B"), prompt="rankgpt", cache=False)
    assert ListwiseReranker(be("liuwenhan/reasonrank-7B"), prompt="rankgpt", template="none").model_template is None
    first = FirstReranker(be("castorini/first_mistral"), cache=False)
    assert first.model_template.name == "first"
    r1 = SetwiseReranker(be("ielabgroup/Rank-R1-7B-v0.1"), cache=False)
    assert r1.model_template.name == "rank-r1" and r1.template.assistant_prefix == ""
    with pytest.raises(RankstackError, match="contradicts"):
        SetwiseReranker(be("ielabgroup/Rank-R1-7B-v0.1"), reasoning=False)
    with pytest.raises(RankstackError, match="is for the 'listwise' reranker"):
        PointwiseReranker(be("tiny"), template="rankzephyr")
    with pytest.raises(RankstackError, match="unknown model template"):
        PointwiseReranker(be("tiny"), template="rankzefir")
    with caplog.at_level(logging.WARNING):  # a known model under another paradigm: warned, not forced
        rr = PointwiseReranker(be("castorini/rank_zephyr_7b_v1_full"), cache=False)
    assert rr.model_template is None and "rankzephyr" in caplog.text
