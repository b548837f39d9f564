"""Name -> reranker class. ``load_reranker("pointwise", model="smollm2-135m", backend="hf", **options)``."""

from __future__ import annotations

import functools
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
    # how to build this reranker again elsewhere (a Ray actor); not when handed a built backend
    factory = None if isinstance(backend, Backend) else functools.partial(
        load_reranker, name, model, backend, dict(backend_options or {}), **options)
    options = {**saved_options(model, name), **options}
    if getattr(cls, "uses_backend", True):
        if isinstance(backend, Backend):
            be = backend
        else:
            be = load_backend(backend, model=model or "smollm2-135m", **(backend_options or {}))
        rr = cls(be, **options)
    else:
        sig = inspect.signature(cls)
        if "model" in sig.parameters and model is not None:
            options["model"] = model
        rr = cls(**options)
    rr.factory = factory
    return rr


#: a trained model folder may say how its reranker was trained to be run (passage budget, method...)
SAVED_OPTIONS = "rankstack_reranker.json"


def save_options(folder, reranker: str, options: dict) -> None:
    """Record in a model folder the reranker options it was trained with; :func:`load_reranker`
    applies them when that folder is loaded as that reranker (explicit options still win)."""
    import json
    from pathlib import Path

    (Path(folder) / SAVED_OPTIONS).write_text(json.dumps({"reranker": reranker, "options": options}, indent=2) + "\n")


def saved_options(model, name: str) -> dict:
    import json
    from pathlib import Path

    if model is None or not isinstance(model, (str, Path)):
        return {}
    f = Path(model) / SAVED_OPTIONS
    if not f.is_file():
        return {}
    data = json.loads(f.read_text())
    return dict(data.get("options", {})) if data.get("reranker") == name else {}

