"""Rank-R1 (setwise) prompt: which of the labelled documents is most relevant to the query;
the model reasons in ``<think> </think>`` and answers ``<answer>[k]</answer>``."""

from __future__ import annotations

from rankstack.rerankers.prompts import PromptTemplate
from rankstack.rerankers.prompts.groupwise import number_passages

SYSTEM = ("A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
          "The assistant first thinks about the reasoning process in the mind and then provides the user with "
          "the answer. The reasoning process and answer are enclosed within <think> </think> and "
          "<answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> "
          "<answer> answer here </answer>.")

USER = """Given the query: "{query}", which of the following documents is most relevant?
{documents}
After completing the reasoning process, please provide only the label of the most relevant document to the query, enclosed in square brackets, within the answer tags. For example, if the third document is the most relevant, the answer should be: <think> reasoning process here </think> <answer>[3]</answer>."""

SETWISE = PromptTemplate(name="rank_r1", version="1", user=USER, system=SYSTEM)


def format_documents(texts: list[str]) -> str:
    """Rank-R1's ``[1] text`` lines."""
    return number_passages(texts, "[{i}] ", "\n")


#: rankstack's no-reasoning variant (``reasoning=False``): an empty think block and the answer's
#: opening bracket are given, the model writes the label (**[DEFAULT]** off; not in the paper).
SETWISE_DIRECT = SETWISE.with_(version="1-direct", assistant_prefix="<think>\n</think>\n<answer>[")
