"""The HTTP rerank endpoint, on loopback, with a real reranker engine and a real (tiny) model."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from rankstack.rerankers.backends import Prompt
from rankstack.rerankers.backends.hf import HFBackend
from rankstack.rerankers.base import LogprobRequest, Reranker
from rankstack.rerankers.commands import parse_options
from rankstack.serve import make_server
from rankstack.types import Ranking


class _YesNo(Reranker):
    name = "yesno-test"

    def program(self, query, docs, stats):
        rows = yield [LogprobRequest(Prompt.chat(f"Query: {query.text}\nDocument: {d.text}\nRelevant?"), ("yes", "no"))
                      for d in docs]
        return Ranking.from_scores(query.qid, [(d.docid, r[0] - r[1]) for d, r in zip(docs, rows)])


@pytest.fixture(scope="module")
def server(tiny_lm):
    model, tok = tiny_lm
    rr = _YesNo(HFBackend(model="tiny", model_obj=model, tokenizer=tok), cache=False, progress=False)
    srv = make_server(rr, "127.0.0.1", 0, model_name="tiny")
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", rr
    srv.shutdown()
    srv.server_close()


def _post(url, obj):
    req = urllib.request.Request(url, data=json.dumps(obj).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_rerank_endpoint_matches_python_api(server):
    url, rr = server
    docs = ["fleas live up to a year", "stock markets fell", "a flea's life cycle has four stages"]
    out = _post(url + "/v1/rerank", {"query": "flea life cycle", "documents": docs, "top_n": 2})
    direct = rr.rerank("flea life cycle", docs)
    assert [r["index"] for r in out["results"]] == [int(d) for d in direct.docids[:2]]
    assert out["results"][0]["relevance_score"] == pytest.approx(direct.docs[0].score, abs=1e-5)
    assert out["usage"]["documents"] == 3
    ids = _post(url + "/rerank", {"query": "q", "documents": [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}]})
    assert sorted(r["id"] for r in ids["results"]) == ["a", "b"]


def test_rerank_endpoint_rejects_bad_requests(server):
    url, _ = server
    for body in ({"documents": ["x"]}, {"query": "q", "documents": [3]}, {"query": "q", "documents": ["x"], "top_n": 0}):
        with pytest.raises(urllib.error.HTTPError) as e:
            _post(url + "/v1/rerank", body)
        assert e.value.code == 400 and "error" in json.loads(e.value.read())
    with urllib.request.urlopen(url + "/health", timeout=10) as r:
        assert json.loads(r.read()) == {"status": "ok"}


def test_parse_options():
    assert parse_options(["method=yesno", "fusion=0.8", "window=20"]) == {"method": "yesno", "fusion": 0.8, "window": 20}
