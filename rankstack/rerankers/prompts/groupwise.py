"""GroupRank (groupwise) prompts: scoring criteria as the system prompt, a group of documents
in the user turn, ``<reason>`` then a JSON object of 0-10 scores inside ``<answer>``.

The criteria paragraphs are written for rankstack following the paper's description
(usefulness first, then relevance; a 0-10 scale in six bands); the user turn is the paper's.
"""

from __future__ import annotations

from rankstack.rerankers.prompts import PromptTemplate

CRITERIA = """You are an expert relevance assessor for a search engine. You judge a group of documents together and give each one a score from 0 to 10.

Judge each document by two criteria, in this order:
1. Usefulness: does the document contain information that a person asking the query could use to answer it or to act on it? A document that answers the query directly is the most useful.
2. Relevance: does the document talk about the topic of the query, its entities and its intent, even if it does not answer it?
Compare the documents with each other, so that better documents get higher scores than worse ones.

Scale:
- 9-10: the document answers the query fully and precisely; it is exactly what the user needs.
- 7-8: the document answers most of the query or gives clearly useful information, with small gaps.
- 5-6: the document is on the topic and partly useful, but the answer is incomplete or indirect.
- 3-4: the document is related to the topic but gives little that helps answer the query.
- 1-2: the document only shares words or a vague theme with the query.
- 0: the document is unrelated to the query."""

USER = """I will provide you {k} documents, each indicated by a numerical identifier []. Score these documents based on their Usefulness and Relevance to the query.
Query:
{query}

Documents:
{documents}

Output format: first explain your judgement briefly inside <reason> </reason>, then give the score of every document as a JSON object inside <answer> </answer>, for example:
<reason>...</reason>
<answer>
```json
{example}
```
</answer>"""

GROUPWISE = PromptTemplate(name="grouprank", version="1", user=USER, system=CRITERIA)


def number_passages(texts: list[str], label: str = "[{i}]. ", sep: str = "\n\n") -> str:
    """Label passages ``[1]. text`` ... (``[n]`` inside a text becomes ``(n)`` so ids stay unambiguous)."""
    import re

    return sep.join(label.format(i=i) + re.sub(r"\[(\d+)\]", r"(\1)", t) for i, t in enumerate(texts, 1))


def format_documents(texts: list[str]) -> str:
    """GroupRank's ``[1]. text`` blocks separated by blank lines."""
    return number_passages(texts, "[{i}]. ", "\n\n")


def example_answer(k: int) -> str:
    """The JSON example shown in the prompt, e.g. ``{"[1]": 5, "[2]": 3}`` (two ids at most)."""
    vals = [5, 3]
    return "{" + ", ".join(f'"[{i}]": {vals[i - 1]}' for i in range(1, min(k, 2) + 1)) + "}"


#: rankstack's no-reasoning variant (``reasoning=False``): the assistant turn starts inside the
#: answer's JSON, so a small model only writes the scores (**[DEFAULT]** off; not in the paper).
GROUPWISE_DIRECT = GROUPWISE.with_(version="1-direct", assistant_prefix='<reason>\n</reason>\n<answer>\n```json\n{{"[1]": ')
