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
    """Add a reranker to the registry.

    Args:
        name: the name ``load_reranker`` and ``--reranker`` take.
        target: ``"module:Class"`` (imported on first use), e.g. ``"mypkg.mod:MyReranker"``.
    """
    RERANKERS[name] = target


def reranker_class(name: str):
    """The class a registry name stands for (imported now).

    Args:
        name: a registry name.

    Returns:
        The reranker class.

    Raises:
        RankstackError: an unknown name (the known ones are listed).
    """
    try:
        target = RERANKERS[name]
    except KeyError:
        raise RankstackError(f"unknown reranker {name!r}; known: {', '.join(sorted(RERANKERS))}") from None
    mod, cls = target.split(":")
    return getattr(importlib.import_module(mod), cls)


def load_reranker(name: str, model: str | None = None, backend="hf", backend_options: dict | None = None, **options):
    """Build a reranker by name.

    Args:
        name: ``pointwise``, ``first``, ``listwise``, ``setwise``, ``groupwise``, ``rubric``,
            ``cross_encoder``, ``dense``, ``mvp`` (``RERANKERS``), or a name given to :func:`register`.
        model: the model: an alias (``smollm2-135m``, ``minilm-l6``), a hub id, a local folder
            (a trained model; options saved in it by training apply) or a ``.gguf`` file.
        backend: ``hf``, ``openai``, ``vllm`` or a built :class:`Backend` (ignored by rerankers
            that load their own model: cross-encoder, dense, MVP).
        backend_options: keywords for the backend (``dtype``, ``threads``, ``base_url``, ...).
        **options: keywords for the reranker class (see its docstring: ``method``, ``window``,
            ``fusion``, ``cache``, ``progress``, ...).

    Returns:
        The reranker; its ``factory`` builds it again elsewhere (a Ray actor).

    Raises:
        RankstackError: an unknown name.
        BackendError: an unknown backend.
    """
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
    applies them when that folder is loaded as that reranker (explicit options still win).

    Args:
        folder: the model folder.
        reranker: the reranker name the options are for.
        options: the options.
    """
    import json
    from pathlib import Path

    (Path(folder) / SAVED_OPTIONS).write_text(json.dumps({"reranker": reranker, "options": options}, indent=2) + "\n")


def _saved(model) -> dict:
    """What :func:`save_options` wrote in a model folder (empty for anything else)."""
    import json
    from pathlib import Path

    if model is None or not isinstance(model, (str, Path)) or not (Path(model) / SAVED_OPTIONS).is_file():
        return {}
    return json.loads((Path(model) / SAVED_OPTIONS).read_text())


def saved_reranker(model) -> str | None:
    """The reranker name :func:`save_options` recorded in a model folder (``dense`` for a dense
    student, ``cross_encoder`` for a cross-encoder one), or None when the folder records none."""
    return _saved(model).get("reranker")


def saved_options(model, name: str) -> dict:
    """The options :func:`save_options` recorded in a model folder for reranker ``name``.

    Args:
        model: the model (a folder, or anything else: then none).
        name: the reranker name.

    Returns:
        The options (empty when none are saved for ``name``).
    """
    data = _saved(model)
    return dict(data.get("options", {})) if data.get("reranker") == name else {}

