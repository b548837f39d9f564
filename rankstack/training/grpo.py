"""GRPO over TRL's ``GRPOTrainer`` with the ranking rewards of :mod:`rankstack.training.rewards`,
LoRA through peft; on CPU (``use_cpu=True, bf16=False``) as on GPUs.

    ds = examples.setwise_examples(queries, qrels, run, corpus, qids=train_qids)
    result = grpo.train_grpo(ds, model="smollm2-135m", rewards="rankr1", output_dir="/tmp/grpo")

Rewards are chosen by name with weights (``"reasonrank:1,rankr1:0.5"``) or given as callables
with TRL's signature; dataset columns (``grades``, ``gold``, ``qid``, ...) reach them as keywords.
Prompts are rendered with the model's chat template plus the example's assistant prefix, which
the rewards put back in front of each completion before judging it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rankstack.errors import RankstackError
from rankstack.training._common import device_args, load_model, log_history, lora_config, render_dataset, save
from rankstack.training.sft import TrainResult

log = logging.getLogger(__name__)


def train_grpo(dataset, model="smollm2-135m", output_dir="grpo-out", *, rewards="rankr1", reward_weights=None,
               reward_params: dict | None = None, lora: bool = True, lora_r: int = 16, lora_alpha: int = 32,
               lora_dropout: float = 0.05, num_generations: int = 4, max_completion_length: int = 32,
               temperature: float = 1.0, top_p: float = 1.0, beta: float = 0.0, learning_rate: float = 1e-5,
               batch_size: int | None = None, max_steps: int = 30, epochs: float = 1.0, use_cpu: bool | None = None,
               bf16: bool | None = None, seed: int = 0, logging_steps: int = 1, merge: bool = True,
               save_model: bool = True, callbacks=None, **config) -> TrainResult:
    """GRPO-train ``model`` (a spec or a loaded ``(model, tokenizer)``) on an examples dataset.

    ``rewards``: a spec string for :func:`rankstack.training.rewards.build_rewards`, or a list of
    callables (``reward_weights`` then weighs them). ``batch_size``: completions per step
    (default ``2 * num_generations``: two prompts per step). ``beta``: KL coefficient (0: no
    reference pass; the papers use 0.001). ``config``: any other ``trl.GRPOConfig`` field.
    """
    from trl import GRPOConfig, GRPOTrainer

    from rankstack.training.rewards import build_rewards

    if isinstance(rewards, str):
        funcs, weights = build_rewards(rewards, **(reward_params or {}))
        reward_weights = reward_weights or weights
    else:
        funcs = list(rewards)
    if not funcs:
        raise RankstackError("GRPO needs at least one reward")
    batch_size = batch_size or 2 * num_generations
    if batch_size % num_generations:
        raise RankstackError(f"batch_size ({batch_size}) must be a multiple of num_generations ({num_generations})")
    m, tok = load_model(model)
    train = render_dataset(dataset, tok, keep=True)
    if "completion" in train.column_names:
        train = train.rename_column("completion", "target")  # GRPO generates its own completions
    args = GRPOConfig(output_dir=str(output_dir), num_generations=num_generations,
                      max_completion_length=max_completion_length, temperature=temperature, top_p=top_p, beta=beta,
                      learning_rate=learning_rate, per_device_train_batch_size=batch_size, max_steps=max_steps,
                      num_train_epochs=epochs, reward_weights=reward_weights, logging_steps=logging_steps,
                      save_strategy="no", report_to=[], seed=seed, gradient_checkpointing=False, disable_tqdm=True,
                      **device_args(use_cpu, bf16), **config)
    trainer = GRPOTrainer(model=m, reward_funcs=funcs, args=args, train_dataset=train, processing_class=tok,
                          peft_config=lora_config(lora_r, lora_alpha, lora_dropout) if lora else None,
                          callbacks=callbacks)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    out = save(trainer, tok, output_dir, merge=merge, base=model if isinstance(model, str) else None) if save_model else Path(output_dir)
    return TrainResult(out, seconds, log_history(trainer), len(train))


def reward_curve(result: TrainResult) -> list[float]:
    """The mean reward of each logged step."""
    return result.losses("reward")
