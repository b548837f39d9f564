"""Backends run models; rerankers never touch a model directly.

``load_backend("hf", model=...)``, ``load_backend("openai", model=..., base_url=...)``,
``load_backend("vllm", model=...)``.
"""

from __future__ import annotations

from rankstack.rerankers.backends.base import Backend, BackendError, Completion, Prompt, SamplingParams

__all__ = ["Backend", "BackendError", "Completion", "Prompt", "SamplingParams", "load_backend"]


BACKENDS = ("hf", "openai", "vllm")


def load_backend(name: str = "hf", **kwargs) -> Backend:
    """A backend by name.

    Args:
        name: ``hf`` (transformers, in process), ``openai`` (an OpenAI-compatible server) or
            ``vllm`` (vLLM's offline engine); a :class:`Backend` object is returned as it is.
        **kwargs: the backend's options (``model=``, ``base_url=``, ``dtype=``, ...).

    Returns:
        The backend.

    Raises:
        BackendError: an unknown name.
    """
    if isinstance(name, Backend):
        return name
    if name == "hf":
        from rankstack.rerankers.backends.hf import HFBackend

        return HFBackend(**kwargs)
    if name == "openai":
        from rankstack.rerankers.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(**kwargs)
    if name == "vllm":
        from rankstack.rerankers.backends.vllm_backend import VLLMBackend

        return VLLMBackend(**kwargs)
    raise BackendError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
