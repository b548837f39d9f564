"""The label-free student ``rankstack demo`` shows: made once per machine by the distillation
recipe on a small budget, kept in the cache, found there by every later demo.

    path = demo_student("dl19")       # $RANKSTACK_CACHE/students/dl19-demo-<options digest>/model

The budget (:data:`DEMO_RECIPE`) is the default recipe's, scaled down to fit ``make demo``'s time
on two CPU cores; the recipe's own command (``rankstack train distill --corpus dl19 ...``) makes
the full-size student. No query or judgement of the dataset is read: the queries are written
from its passages by SmolLM2 and labelled by the MiniLM + BM25 teacher.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

#: the recipe's options for the demo student: the dense kind (at this budget a cross-encoder's new
#: head ranks below BM25 on every collection measured: docs/training.md), taught by the ensemble
DEMO_RECIPE = {"student_kind": "dense", "teacher": "dense:minilm-l6+bm25", "teacher_weights": [0.8, 0.2],
               "n_queries": 300, "samples": 2}


def demo_folder(dataset: str, options: dict | None = None) -> Path:
    """Where the demo student for ``dataset`` and these recipe options lives in the cache."""
    from rankstack.paths import cache_root

    opts = {**DEMO_RECIPE, **(options or {})}
    digest = hashlib.sha1(json.dumps({"dataset": dataset, **opts}, sort_keys=True).encode()).hexdigest()[:10]
    return cache_root() / "students" / f"{dataset}-demo-{digest}"


def demo_student(dataset: str, options: dict | None = None, threads: int | None = None,
                 progress: bool = True) -> tuple[Path, dict]:
    """The demo student's model folder for ``dataset``, trained now if the cache lacks it.

    Args:
        dataset: a named dataset (its corpus is the one queries are written from).
        options: recipe options over :data:`DEMO_RECIPE` (any ``DistillConfig`` field).
        threads: torch threads for the recipe.
        progress: tqdm bars while it trains.

    Returns:
        ``(model folder, the recipe's summary)``.
    """
    from rankstack.training.pipeline import DistillConfig, run_distill

    folder = demo_folder(dataset, options)
    summary_path = folder / "summary.json"
    if (folder / "model" / "config.json").exists() and summary_path.exists():
        return folder / "model", json.loads(summary_path.read_text())
    log.warning("training the demo's label-free student on the %s corpus once (a few minutes on "
                "2 cores; kept in %s)", dataset, folder)
    cfg = DistillConfig(corpus=dataset, threads=threads, **{**DEMO_RECIPE, **(options or {})})
    summary = run_distill(cfg, folder, progress=progress)
    return folder / "model", summary
