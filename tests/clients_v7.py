"""Run by tests/test_serve_clients.py with the second client venv's python (the Makefile's
``.venv-clients``: cohere 7 and infinity-client, whose pins clash with the main venv's
langchain-cohere (cohere<6) and httpx 0.28+). Ranks through each client against the server at
argv[1] with the key argv[2] and prints, per client, the order it got and the error a wrong key
raised: one JSON object on stdout."""

from __future__ import annotations

import asyncio
import json
import sys

import cohere
from infinity_client import AuthenticatedClient
from infinity_client.api.default import rerank
from infinity_client.models import RerankInput

URL, KEY = sys.argv[1], sys.argv[2]
QUERY = sys.argv[3]
DOCS = json.loads(sys.argv[4])


def caught(fn) -> str:
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the point: which error the client raises
        return f"{type(e).__module__}.{type(e).__name__} {getattr(e, 'status_code', '')}".strip()
    return "no error"


def infinity(base: str, key: str):
    client = AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True)
    return rerank.sync(client=client, body=RerankInput(query=QUERY, documents=DOCS, return_documents=True))


async def cohere_async(key: str):
    return await cohere.AsyncClientV2(api_key=key, base_url=URL).rerank(model="minilm", query=QUERY, documents=DOCS)


out = {"cohere": cohere.__version__}
out["ClientV2"] = [r.index for r in cohere.ClientV2(api_key=KEY, base_url=URL).rerank(
    model="minilm", query=QUERY, documents=DOCS).results]
out["ClientV2 wrong key"] = caught(lambda: cohere.ClientV2(api_key="wrong", base_url=URL).rerank(
    model="minilm", query=QUERY, documents=DOCS))
out["AsyncClientV2"] = [r.index for r in asyncio.run(cohere_async(KEY)).results]
out["AsyncClientV2 wrong key"] = caught(lambda: asyncio.run(cohere_async("wrong")))
out["Client"] = [r.index for r in cohere.Client(api_key=KEY, base_url=URL).rerank(
    model="minilm", query=QUERY, documents=DOCS).results]
out["Client wrong key"] = caught(lambda: cohere.Client(api_key="wrong", base_url=URL).rerank(
    model="minilm", query=QUERY, documents=DOCS))
for name, base in (("infinity /rerank", URL), ("infinity /v1/rerank", URL + "/v1")):
    res = infinity(base, KEY)
    out[name] = [r.index for r in res.results]
    out[name + " usage"] = res.usage.prompt_tokens
    out[name + " documents"] = [r.document for r in res.results]
    out[name + " wrong key"] = caught(lambda base=base: infinity(base, "wrong"))
print(json.dumps(out))
