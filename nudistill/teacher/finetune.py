"""Fine-tune a teacher on labelled events: full, LoRA or QLoRA, with checkpoints and resume.

Target text after the prompt: "I classify the pixel maps as <label phrase>. <truth rationale>" then
<|eot_id|>; the loss covers only these answer tokens. LoRA (Hu et al. 2021) adapts the attention and
MLP projections of both the vision encoder and the text decoder, r=8 by default as in the study;
QLoRA (Dettmers et al. 2023) puts the same adapters on an NF4 4-bit base.

Run (tiny CPU example):
    nudistill teacher init --tiny --out teacher0
    nudistill simulate --n 2000 --out events
    nudistill teacher finetune --base teacher0 --events events --out teacher1 --full --epochs 2 --vision-warmup 300
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nudistill.config import config_dict, save_config
from nudistill.errors import UserError
from nudistill.log import get_logger, progress

log = get_logger("teacher.finetune")

@dataclass
class FinetuneConfig:
    """Settings of one teacher fine-tuning run (written as finetune_config.json in the output)."""

    base: str = ""
    """Teacher directory or hub id to start from."""
    events: str = ""
    """Labelled events (contract 1 with label and, ideally, rationale columns)."""
    more_events: list[str] = field(default_factory=list)
    """Further labelled sets trained on with ``events`` (comma-separated), e.g. the same events read out by a
    randomised detector (``nudistill simulate --detector randomized``): each set is checked on its own, so
    an event may appear once in each."""
    out: str = ""
    """Output teacher directory (checkpoints live in out/checkpoint)."""
    mode: str = "lora"
    """full (all weights), lora, or qlora (4-bit base + LoRA)."""
    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: int = 16
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input."""
    limit: int | None = None
    """Use at most this many events of each set (None: all)."""
    epochs: float = 1.0
    """Passes over the events (fractions allowed)."""
    max_steps: int | None = None
    """Stop after this many optimiser steps, whatever epochs says."""
    batch_size: int = 16
    """Events per optimiser step."""
    lr: float | None = None
    """Peak learning rate (None: 2e-3 for full, 2e-4 for LoRA/QLoRA)."""
    image_lr_scale: float = 1.0
    """Learning-rate multiplier for the vision tower, projector and cross-attention layers (a from-scratch
    tiny model learns to look at the image far sooner with 5-10x)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup: int = 20
    """Linear warm-up steps before the cosine decay."""
    vision_warmup: int = 0
    """Steps of supervised vision-tower warm-up before fine-tuning (a from-scratch tiny base needs ~200)."""
    rationale: bool = True
    """Include the truth rationale in the target (False: label sentence only; faster)."""
    checkpoint_every: int = 100
    """Save a resumable checkpoint every this many steps."""
    seed: int = 0
    """Shuffling and initialisation seed."""
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""
    device: str | None = None
    """cuda or cpu (None: cuda when available)."""

    def __post_init__(self):
        if self.mode not in ("full", "lora", "qlora"):
            raise UserError(f"mode must be full, lora or qlora, got {self.mode!r}")
        if self.lora_r <= 0 or self.batch_size <= 0 or self.epochs <= 0:
            raise UserError("lora_r, batch_size and epochs must be positive")
        if self.max_steps is not None and self.max_steps <= 0:
            raise UserError("max_steps must be positive")
        if self.lr is None:
            self.lr = 2e-3 if self.mode == "full" else 2e-4

    def fingerprint(self) -> dict:
        """The settings a resumed run must share with the interrupted one."""
        d = config_dict(self)
        return {k: d[k] for k in ("base", "events", "more_events", "mode", "lora_r", "lora_alpha", "limit",
                                  "batch_size", "lr", "image_lr_scale", "vision_warmup", "rationale", "seed")}


@dataclass
class FinetuneResult:
    """What a run did: steps, seconds, the loss history and where the teacher went."""

    out: str
    steps: int
    seconds: float
    events: int
    history: list[dict] = field(default_factory=list)


def run_finetune(cfg: FinetuneConfig, eval_fn=None, eval_every: int | None = None) -> FinetuneResult:
    """Fine-tune ``cfg.base`` on ``cfg.events`` and write a teacher directory to ``cfg.out``.

    ``eval_fn(teacher) -> dict`` (optional) runs every ``eval_every`` steps and at the end, for
    learning curves; its results join the history.
    """
    import torch

    from nudistill.teacher.data import Labelled, load_labelled
    from nudistill.teacher.loading import default_device
    from nudistill.teacher.trainer import Trainer, warm_up_vision

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    device = default_device(cfg.device)
    trainer = Trainer.build(cfg, device)
    data = Labelled.join([load_labelled(uri, limit=cfg.limit, view_size=trainer.spec.view_size)
                          for uri in [cfg.events, *cfg.more_events]])
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
    total = cfg.max_steps or max(1, int(round(cfg.epochs * steps_per_epoch)))
    trainer.schedule(total)
    step, history = trainer.resume(out / "checkpoint")
    log.info("fine-tuning %s on %d events: %d steps (%s)", cfg.base, len(data), total, cfg.mode)
    t0 = time.perf_counter() - (history[-1]["seconds"] if history else 0.0)
    c0 = time.process_time() - (history[-1]["cpu_seconds"] if history else 0.0)
    if step == 0 and cfg.vision_warmup:
        losses = warm_up_vision(trainer.model, trainer.processor, data, cfg.vision_warmup, seed=cfg.seed)
        log.info("vision warm-up: loss %.3f -> %.3f", losses[0], losses[-1])
    bar = progress(total=total, initial=step, desc="finetune", unit="step")
    while step < total:
        idx = _batch_indices(len(data), cfg.batch_size, cfg.seed, step)
        loss = trainer.step(data.take(idx))
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")
        # cpu_seconds: this process's CPU time, a fair clock on a machine shared with other jobs.
        entry = dict(step=step, loss=loss, seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0,
                     events_seen=step * cfg.batch_size)
        if eval_fn is not None and eval_every and step % eval_every == 0 and step < total:
            t_eval, c_eval = time.perf_counter(), time.process_time()
            entry.update(eval_fn(trainer.as_teacher()))
            t0 += time.perf_counter() - t_eval  # training seconds exclude evaluation
            c0 += time.process_time() - c_eval
        history.append(entry)
        if step % cfg.checkpoint_every == 0 and step < total:
            trainer.checkpoint(out / "checkpoint", step, history)
    bar.close()
    if eval_fn is not None and history:
        history[-1].update(eval_fn(trainer.as_teacher()))
    trainer.save(out)
    save_config(cfg, out / "finetune_config.json")
    (out / "finetune_history.json").write_text(json.dumps(history, indent=1) + "\n")
    trainer.clear_checkpoint(out / "checkpoint")
    seconds = history[-1]["seconds"] if history else 0.0
    return FinetuneResult(out=str(out), steps=step, seconds=seconds, events=len(data), history=history)


def _batch_indices(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Indices of optimiser step ``step``: a fresh permutation per epoch, so a resumed run sees the same batches."""
    per_epoch = math.ceil(n / batch_size)
    epoch, k = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return order[k * batch_size: (k + 1) * batch_size]


def held_out_eval(events: str, limit: int = 500, rationales: int = 100):
    """An ``eval_fn`` for :func:`run_finetune`: accuracy/NLL/ECE on held-out events, concept F1 on a few."""
    from nudistill.teacher.calibrate import evaluate
    from nudistill.teacher.data import load_labelled

    cache: dict = {}

    def eval_fn(teacher) -> dict:
        if "data" not in cache:
            cache["data"] = load_labelled(events, limit=limit, view_size=teacher.spec.view_size)
        t0 = time.perf_counter()
        out = evaluate(teacher, cache["data"], rationales=rationales)
        out["eval_seconds"] = time.perf_counter() - t0
        return out

    return eval_fn
