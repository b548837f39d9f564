"""Real rerankers with injected faults, for the fault run (serve_faults.py) and tests/test_serve.py.

Served with ``rankstack serve --reranker _fault_reranker:FaultyPointwise`` (this folder on
PYTHONPATH). A query containing ``RAISE`` makes the program raise inside the engine pass;
``SLEEP<s>`` holds the worker thread ``s`` seconds first (a long pass); a chunk of model
requests whose first one contains ``SLOWCHUNK<s>`` (in a document, say) takes ``s`` seconds more
(a slow model: the pass can be cut between chunks). Every other query runs the unchanged reranker.
``NoisyDense`` writes to stdout as some libraries do (NNCF's progress bars at load; ``PRINT<kb>``
in a query writes that many KB during the pass).
"""

from __future__ import annotations

import re
import sys
import time

from rankstack.rerankers.dense import DenseReranker
from rankstack.rerankers.pointwise import PointwiseReranker


class FaultInjection:
    def program(self, query, docs, stats):
        if "RAISE" in query.text:
            raise RuntimeError("injected failure")
        m = re.search(r"SLEEP([0-9.]+)", query.text)
        if m:
            time.sleep(float(m.group(1)))
        return (yield from super().program(query, docs, stats))

    def execute(self, requests):
        m = re.search(r"SLOWCHUNK([0-9.]+)", requests[0].key())
        if m:
            time.sleep(float(m.group(1)))
        return super().execute(requests)


class FaultyPointwise(FaultInjection, PointwiseReranker):
    pass


class FaultyDense(FaultInjection, DenseReranker):
    pass


class NoisyDense(DenseReranker):
    def __init__(self, *args, **kwargs):
        sys.stdout.write("Statistics collection \u2501\u2501\u2501 100% 24/24\n")  # before the server's URL line
        sys.stdout.flush()
        super().__init__(*args, **kwargs)

    def program(self, query, docs, stats):
        m = re.search(r"PRINT([0-9]+)", query.text)
        if m:
            for _ in range(int(m.group(1))):
                sys.stdout.write("x" * 1023 + "\n")
            sys.stdout.flush()
        return (yield from super().program(query, docs, stats))
