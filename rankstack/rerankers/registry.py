"""Name -> reranker class. ``load_reranker("pointwise", model="smollm2-135m", backend="hf", **options)``."""

from __future__ import annotations

import importlib
import inspect

from rankstack.errors import RankstackError

#: registry name -> "module:Class" (imported on first use, so optional dependencies stay optional)
RERANKERS: dict[str, str] = {
    "pointwise": "rankstack.rerankers.pointwise:PointwiseReranker",
    "first": "rankstack.rerankers.first:FirstReranker",
    "listwise": "rankstack.rerankers.listwise:ListwiseReranker",
    "groupwise": "rankstack.rerankers.groupwise:GroupwiseReranker",
    "rubric": "rankstack.rerankers.rubric:RubricReranker",
    "setwise": "rankstack.rerankers.setwise:SetwiseReranker",
    "cross_encoder": "rankstack.rerankers.cross_encoder:CrossEncoderReranker",
    "dense": "rankstack.rerankers.dense:DenseReranker",
    "mvp": "rankstack.rerankers.mvp:MVPReranker",
}


def register(name: str, target: str) -> None:
    """Add a reranker: ``register("mine", "mypkg.mod:MyReranker")``."""
    RERANKERS[name] = target


def reranker_class(name: str):
    try:
        target = RERANKERS[name]
    except KeyError:
        raise RankstackError(f"unknown reranker {name!r}; known: {', '.join(sorted(RERANKERS))}") from None
    mod, cls = target.split(":")
    return getattr(importlib.import_module(mod), cls)


def load_reranker(name: str, model: str | None = None, backend="hf", backend_options: dict | None = None, **options):
    """Build a reranker. ``model`` and ``backend`` make the backend (unless the class builds its own,
    like the cross-encoder); every other keyword goes to the reranker (see its docstring)."""
    from rankstack.rerankers.backends import Backend, load_backend

    cls = reranker_class(name)
    if getattr(cls, "uses_backend", True):
        if isinstance(backend, Backend):
            be = backend
        else:
            be = load_backend(backend, model=model or "smollm2-135m", **(backend_options or {}))
        return cls(be, **options)
    sig = inspect.signature(cls)
    if "model" in sig.parameters and model is not None:
        options["model"] = model
    return cls(**options)
