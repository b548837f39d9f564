"""Pointwise prompts (METHODS.md sections 2, 7 and 11), one (query, passage) per prompt.

Every judging template puts the query before the passage, so the prompts of one query share a
token prefix (system prompt + instruction + query) that the ``hf`` backend runs once. The query
likelihood prompt (``QLM``) cannot: the query is what it scores, so it comes after the passage.
Slots: ``query``, ``document``, and ``instruction`` (a default, configurable). Changing any
text here means bumping the template's ``version`` (it is part of the cache fingerprint).
"""

from __future__ import annotations

from rankstack.rerankers.prompts import PromptTemplate

#: A judge system prompt: SmolLM2's default system prompt ("a helpful AI assistant") makes the
#: 135M model answer "No" to most passages; a judge persona is the better zero-shot prior.
JUDGE_SYSTEM = ("You are a search relevance judge. You read a search query and a passage and decide "
                "whether the passage answers the query.")

#: yes/no relevance: score = log p(yes) - log p(no), each side the logsumexp over its surface forms.
YESNO = PromptTemplate(
    name="pointwise.yesno",
    version="1",
    system="{system}",
    user="Query: {query}\nPassage: {document}\n\n{instruction}",
    defaults={"system": JUDGE_SYSTEM,
              "instruction": "Does the passage answer the query? Answer Yes or No."},
)

#: ERank's prompt (METHODS.md section 2), verbatim. The fast mode appends
#: ``SCORE10_FAST_PREFIX`` as the assistant's start and reads the score digit's distribution.
ERANK = PromptTemplate(
    name="pointwise.erank",
    version="1",
    user=("Given a query and a document, please give a relevance score of 0 to 10. The goal or relevance "
          "definition is: {instruction}\n"
          "Here is the query: {query}\n"
          "Here is the document: {document}\n"
          "After thinking, directly choose a relevance score from [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].\n"
          "- 0 represents completely not related.\n"
          "- 10 means perfectly related.\n"
          "Desired output format: <think> put your thinking here </think><answer> Only allows an integer here "
          "</answer>\n"
          "Your output:"),
    defaults={"instruction": "Given a query, retrieval relevant passage."},
)

#: ERank with the thinking skipped: the assistant turn starts with an empty think block and an
#: open answer tag, so the next token is the score's first digit (one forward pass).
SCORE10 = ERANK.with_(name="pointwise.score10", version="1", assistant_prefix="<think> </think><answer>")

#: ERank's BRIGHT instruction (reasoning-intensive queries).
BRIGHT_INSTRUCTION = ("A document is relevant if it contains information that helps answer or address the query. "
                      "A document is not relevant if it doesn't contain information that helps answer the query, "
                      "even if it mentions similar topics.")

#: ProRank (METHODS.md section 7): score = logit("1") - logit("0") after "Relevance:".
PRORANK = PromptTemplate(
    name="pointwise.prorank",
    version="1",
    user="query: {query}\ndocument: {document}\n{instruction}\nRelevance:",
    defaults={"instruction": "Based on the query and the document, provide your binary relevance judgment "
                             "(0 for not relevant, 1 for relevant)."},
)

#: Qwen3-Reranker (Qwen/Qwen3-Reranker-0.6B/4B/8B model card): its judge system prompt, the
#: ``<Instruct>/<Query>/<Document>`` user turn and an empty think block as the assistant's start;
#: the next token is "yes" or "no" (score: log p(yes) - log p(no)).
QWEN3_RERANKER = PromptTemplate(
    name="pointwise.qwen3_reranker",
    version="1",
    system=('Judge whether the Document meets the requirements based on the Query and the Instruct provided. '
            'Note that the answer can only be "yes" or "no".'),
    user="<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}",
    assistant_prefix="<think>\n\n</think>\n\n",
    defaults={"instruction": "Given a web search query, retrieve relevant passages that answer the query"},
)

#: Query likelihood (UPR; METHODS.md section 11): the passage and UPR's instruction in the user
#: turn; the query is the assistant's answer, scored token by token (teacher-forced). The model's
#: own default system prompt is kept (none given here).
QLM = PromptTemplate(
    name="pointwise.qlm",
    version="1",
    user="Passage: {document}\n{instruction}",
    defaults={"instruction": "Please write a question based on this passage."},
)

TEMPLATES = {"yesno": YESNO, "score10": SCORE10, "erank": ERANK, "prorank": PRORANK, "qlm": QLM}
