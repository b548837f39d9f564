"""Retro* (rubric) prompt: a relevance definition, three analysis steps, a 0-100 rubric, the
answer inside ``<score> </score>``, then the query and the document with their types.

The layout follows the paper; the rubric sentences and step descriptions are written for
rankstack. Slots: ``relevance_definition``, ``query_type``, ``doc_type``, ``query``, ``doc``.
"""

from __future__ import annotations

from rankstack.rerankers.prompts import PromptTemplate

#: **[DEFAULT]** relevance definition for web/passage search (BRIGHT-style tasks pass their own).
DEFAULT_RELEVANCE = ("A document is relevant if it contains information that helps answer or address the query. "
                     "A document is not relevant if it does not contain such information, even if it mentions "
                     "similar topics.")

USER = """Here is the relevance definition in a retrieval task: {relevance_definition}

Now given a query ({query_type}) and a document ({doc_type}) in this retrieval task, your mission is to perform the following steps.
1. Query Analysis: Think about what information the query asks for and what a useful answer would contain.
2. Document Analysis: Discuss what the document says and how much of the needed information it provides.
3. Relevance Annotation: Based on the relevance definition and the analyses, give the relevance of the document to the query as an integer score from a scale of 0 to 100, following this rubric:
- 80-100 (Highly Relevant): the document answers the query directly and fully; it is what the user is looking for.
- 60-80 (Relevant): the document answers most of the query or gives clearly useful information for it.
- 40-60 (Moderately Relevant): the document is on the topic and gives some useful information, but the answer is partial or indirect.
- 20-40 (Slightly Relevant): the document touches the topic of the query but gives little that helps answer it.
- 0-20 (Irrelevant): the document is unrelated to the query or only shares some of its words.

After your analysis, give the final score inside score tags, in this format:
<score>
[an integer from 0 to 100]
</score>

Query ({query_type}):
[Begin of Query]
{query}
[End of Query]

Document ({doc_type}):
[Begin of Document]
{doc}
[End of Document]"""

RUBRIC = PromptTemplate(name="retro_star", version="1", user=USER,
                        defaults={"relevance_definition": DEFAULT_RELEVANCE, "query_type": "web search query",
                                  "doc_type": "web passage"})

#: rankstack's no-reasoning variant (``reasoning=False``): the assistant turn starts with ``<score>``,
#: so each trajectory is just a sampled score (**[DEFAULT]** off; not in the paper).
RUBRIC_DIRECT = RUBRIC.with_(version="1-direct", assistant_prefix="<score>\n")
