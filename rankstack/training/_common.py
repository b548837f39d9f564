"""Pieces SFT and GRPO share: model loading, LoRA config, prompt rendering, saving."""

from __future__ import annotations

import logging
from pathlib import Path

from rankstack.errors import RankstackError

log = logging.getLogger(__name__)


def load_model(model, dtype: str = "float32"):
    """``(model, tokenizer)`` from a spec (alias, folder, .gguf, hub id) or an already loaded pair."""
    if isinstance(model, tuple):
        m, tok = model
    else:
        import torch

        from rankstack.models import load_causal_lm

        m, tok = load_causal_lm(str(model), dtype={"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype])
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    m.train()
    return m, tok


def lora_config(r: int = 16, alpha: int = 32, dropout: float = 0.05, target_modules="all-linear"):
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", r=r, lora_alpha=alpha, lora_dropout=dropout,
                      target_modules=target_modules)


def renderer(tokenizer):
    """Prompt -> the exact text the backends feed the model at inference (chat template with the
    generation prompt, then the assistant prefix): :func:`rankstack.rerankers.backends.text.render_chat`."""
    import functools

    from rankstack.rerankers.backends.text import render_chat

    return functools.partial(render_chat, tokenizer)


def render_dataset(dataset, tokenizer, keep: bool = False):
    """Rows with ``prompt`` messages + ``assistant_prefix`` -> string ``prompt`` (rendered) and
    ``completion``; ``keep`` keeps the other columns (GRPO's rewards read them)."""
    from rankstack.training.examples import prompt_from_row

    if "prompt" not in dataset.column_names:
        raise RankstackError("the dataset has no 'prompt' column (build it with rankstack.training.examples)")
    render = renderer(tokenizer)

    def fn(row):
        p = row["prompt"]
        return {"prompt": render(prompt_from_row(row)) if not isinstance(p, str) else p}

    out = dataset.map(fn, desc="rendering prompts")
    if not keep:
        out = out.select_columns([c for c in ("prompt", "completion") if c in out.column_names])
    return out


def save(trainer, tokenizer, output_dir, merge: bool = True, base: str | None = None) -> Path:
    """Save the trained model: LoRA merged into the weights (a plain model folder any reranker
    loads) when ``merge``, else the adapter (``adapter_config.json`` + weights) and tokenizer.
    ``base``: the spec the model was loaded from (an alias such as ``smollm2-135m``), written into
    the adapter config so the folder loads wherever that spec resolves."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = trainer.model
    if merge and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    cfg = out / "adapter_config.json"
    if base and cfg.exists():
        import json

        data = json.loads(cfg.read_text())
        data["base_model_name_or_path"] = base
        cfg.write_text(json.dumps(data, indent=2))
    log.info("saved %s to %s", "merged model" if merge else "model/adapter", out)
    return out


def device_args(use_cpu: bool | None, bf16: bool | None) -> dict:
    import torch

    cpu = (not torch.cuda.is_available()) if use_cpu is None else bool(use_cpu)
    return {"use_cpu": cpu, "bf16": (not cpu) if bf16 is None else bool(bf16)}


def log_history(trainer) -> list[dict]:
    return [dict(h) for h in trainer.state.log_history]
