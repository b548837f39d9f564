"""Supervised fine-tuning over TRL's ``SFTTrainer``: loss on the completion only, LoRA through
peft, merged and saved as a plain model folder that ``load_reranker(..., model=DIR)`` loads.

    from rankstack.training import examples, sft
    ds = examples.pointwise_examples(queries, qrels, run, corpus, qids=train_qids)
    result = sft.train_sft(ds, model="smollm2-135m", output_dir="/tmp/pointwise-sft")
    reranker = load_reranker("pointwise", model=result.output_dir)

``loss="first"`` trains FIRST's combined objective (LM loss + 10 x weighted RankNet on the
identifier-letter logits; :class:`rankstack.training.losses.FirstLoss`) on window examples.
Scale-out (several GPUs, DeepSpeed) is accelerate's: launch the same code with ``accelerate launch``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from rankstack.errors import RankstackError
from rankstack.training._common import device_args, load_model, log_history, lora_config, render_dataset, save

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    output_dir: Path
    seconds: float
    log_history: list[dict] = field(default_factory=list)
    examples: int = 0
    tokens: int = 0  # training tokens processed (all epochs; padding not counted)

    def losses(self, key: str = "loss") -> list[float]:
        return [h[key] for h in self.log_history if key in h]

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def train_sft(dataset, model="smollm2-135m", output_dir="sft-out", *, loss: str = "lm", rank_loss: str = "ranknet",
              rank_weight: float | None = None, lora: bool = True, lora_r: int = 16, lora_alpha: int = 32,
              lora_dropout: float = 0.05, epochs: float = 1.0, max_steps: int = -1, learning_rate: float = 2e-4,
              batch_size: int = 8, grad_accum: int = 1, max_length: int = 512, warmup_steps: float = 0,
              lr_scheduler: str = "linear", neftune_alpha: float | None = None, use_cpu: bool | None = None,
              bf16: bool | None = None, seed: int = 0, logging_steps: int = 1, merge: bool = True,
              save_model: bool = True, callbacks=None, **config) -> TrainResult:
    """Fine-tune ``model`` (a spec or a loaded ``(model, tokenizer)``) on an examples dataset.

    ``loss``: ``"lm"`` (token cross-entropy on the completion) or ``"first"`` (FIRST's combined
    objective; ``rank_loss`` ranknet x10 | listnet x0.1 | lambdarank x1, ``rank_weight`` overrides).
    ``config``: any other ``trl.SFTConfig`` field. Returns where the model went, the wall time
    and the trainer's log history.
    """
    from trl import SFTConfig, SFTTrainer

    from rankstack.training.losses import FirstLoss

    FirstSFTTrainer = first_trainer_class()

    if loss not in ("lm", "first"):
        raise RankstackError(f"loss must be 'lm' or 'first', got {loss!r}")
    m, tok = load_model(model)
    train = render_dataset(dataset, tok)
    _check_lengths(train, tok, max_length)
    args = SFTConfig(output_dir=str(output_dir), num_train_epochs=epochs, max_steps=max_steps,
                     learning_rate=learning_rate, per_device_train_batch_size=batch_size,
                     gradient_accumulation_steps=grad_accum, max_length=max_length, completion_only_loss=True,
                     warmup_steps=warmup_steps, lr_scheduler_type=lr_scheduler, neftune_noise_alpha=neftune_alpha,
                     logging_steps=logging_steps, save_strategy="no", report_to=[], seed=seed,
                     gradient_checkpointing=False, disable_tqdm=True, **device_args(use_cpu, bf16), **config)
    kw = dict(model=m, args=args, train_dataset=train, processing_class=tok, callbacks=callbacks,
              peft_config=lora_config(lora_r, lora_alpha, lora_dropout) if lora else None)
    if loss == "first":
        trainer = FirstSFTTrainer(first_loss=FirstLoss(tok, rank_weight=rank_weight, rank_loss=rank_loss), **kw)
    else:
        trainer = SFTTrainer(**kw)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    out = save(trainer, tok, output_dir, merge=merge, base=model if isinstance(model, str) else None) if save_model else Path(output_dir)
    return TrainResult(out, seconds, log_history(trainer), len(train),
                       tokens=int(getattr(trainer, "_total_train_tokens", 0)))


def _check_lengths(train, tok, max_length: int | None) -> None:
    """Examples whose prompt fills ``max_length`` lose their target (TRL drops them): say so."""
    if not max_length:
        return
    n_prompt = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in train["prompt"]]
    over = sum(1 for n in n_prompt if n >= max_length)
    if over == len(n_prompt):
        raise RankstackError(f"every prompt is >= max_length={max_length} tokens (longest {max(n_prompt)}): raise "
                             "max_length or cut passages (build the examples with backend= to use the reranker's "
                             "token budget)")
    if over:
        log.warning("%d of %d prompts are >= max_length=%d tokens; TRL drops them", over, len(n_prompt), max_length)


def first_trainer_class():
    """``SFTTrainer`` whose loss is FIRST's combined objective (an instance's ``first_loss``)."""
    from trl import SFTTrainer

    class FirstSFTTrainer(SFTTrainer):
        def __init__(self, *args, first_loss, **kwargs):
            super().__init__(*args, **kwargs)
            self.first_loss = first_loss

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = dict(inputs)
            labels = inputs.pop("labels")
            if model.training and "attention_mask" in inputs:  # SFTTrainer counts these in its own compute_loss
                self._total_train_tokens = getattr(self, "_total_train_tokens", 0) + int(inputs["attention_mask"].sum())
            inputs["use_cache"] = False
            offset = self.first_loss.keep_from(labels)  # the output layer runs on the completion only
            outputs = model(**inputs, logits_to_keep=labels.shape[1] - offset)
            loss = self.first_loss(outputs, labels, num_items_in_batch=num_items_in_batch, offset=offset)
            mode = "train" if model.training else "eval"
            for k, v in self.first_loss.last.items():
                self._metrics[mode][k].append(v)
            return (loss, outputs) if return_outputs else loss

    return FirstSFTTrainer
