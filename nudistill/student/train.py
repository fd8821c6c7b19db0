"""The distillation training loop: a function of a config dict that runs without Ray (STYLE 7).

Run (tiny CPU run)::

    nudistill simulate --n 300 --res 64 --out /tmp/ev
    nudistill distill --events /tmp/ev --out /tmp/st --alpha 0 --hard-labels truth --concept-source truth --epochs 2

Outputs in ``out``: the best checkpoint by validation loss (``model.safetensors`` + ``config.json``),
``last/`` (weights + optimiser state, for resume), ``metrics.jsonl`` (one line per epoch) and
``distill_config.json``. ``nudistill.student.ray_train`` runs :func:`train_loop` under Ray Train's
TorchTrainer through :class:`Hooks`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from nudistill.config import save_config
from nudistill.errors import UserError
from nudistill.log import get_logger, progress
from nudistill.shifts import DetectorAugment
from nudistill.student.bn import recalibrate_bn
from nudistill.student.checkpoint import read_config, save_student
from nudistill.student.config import DistillConfig
from nudistill.student.data import DataSpec, DistillDataset, LabelIndex, survey
from nudistill.student.evaluate_loop import validate
from nudistill.student.losses import LossWeights, distill_loss
from nudistill.student.registry import create_student

log = get_logger("student")
METRICS = "metrics.jsonl"
BN_STASH_BYTES = 1 << 30
"""The most bytes of an epoch's first input batches kept for BatchNorm recalibration (else they are read again)."""
LAST = "last"
STATE = "state.pt"


class Hooks:
    """What differs between one process and a Ray Train worker; this base is the single-process case."""

    rank, world = 0, 1

    def device(self, cfg: DistillConfig) -> torch.device:
        if cfg.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(cfg.device)

    def resume_dir(self, out: Path) -> Path | None:
        """The checkpoint directory to resume from (out/last/ when it holds a training state)."""
        return out / LAST if (out / LAST / STATE).is_file() else None

    def prepare_model(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        return model.to(device)

    def report(self, metrics: dict, checkpoint_dir: Path | None) -> None:
        """Called by every rank after each epoch; ``checkpoint_dir`` is the epoch's last/ (rank 0 only)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def train(config: dict | DistillConfig) -> dict:
    """Train one student per ``config`` in this process; return the summary of the run."""
    cfg = config if isinstance(config, DistillConfig) else DistillConfig(**config)
    return train_loop(asdict(cfg), Hooks())


def train_loop(config: dict, hooks: Hooks) -> dict:
    """The loop that both the CLI and every Ray Train worker run."""
    cfg = DistillConfig(**config)
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    device = hooks.device(cfg)
    index = LabelIndex.read(cfg.labels) if cfg.labels else None
    spec = DataSpec(cfg.events, cfg.labels, cfg.hard_labels, cfg.concept_source, cfg.val_fraction,
                    skip_bad_files=cfg.skip_bad_files)
    sv = survey(spec, index)
    spec.height, spec.width = sv.height, sv.width
    model = create_student(cfg.student, **{**cfg.student_overrides, "height": sv.height, "width": sv.width})
    world = hooks.world
    steps = math.ceil(sv.n_train / cfg.batch_size) if world == 1 else max(1, sv.n_train // (world * cfg.batch_size))
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema)) if cfg.ema else None
    start, best = _resume(cfg, model, opt, ema, out, hooks.resume_dir(out) if cfg.resume else None)
    model = hooks.prepare_model(model, device)  # after the resume: DDP starts every rank from rank 0's weights
    core = getattr(model, "module", model)
    if ema is not None:
        ema.to(device)
    if hooks.is_main:
        save_config(cfg, out / "distill_config.json")
        log.info("training %s on %d events (%d val), %d steps/epoch, counts %s", cfg.student, sv.n_train, sv.n_val, steps, sv.counts)
    loaders = _loaders(cfg, spec, index, hooks, device)
    weights = LossWeights(cfg.alpha, cfg.temperature, cfg.concept_weight)
    teacher = index.teacher if index else ""
    summary: dict = {"epochs_run": 0, "best_val_loss": best, "survey": asdict(sv)}
    for epoch in range(start, cfg.epochs):
        t0 = time.time()
        stash = BatchStash(cfg.bn_recalibration_batches, BN_STASH_BYTES)
        train_stats = _train_epoch(model, opt, ema, loaders, weights, epoch, steps, cfg, device, hooks, stash)
        shipped = ema.module if ema is not None else core  # what is validated and saved as the best checkpoint
        recalibrate_bn(shipped, stash.source(loaders["calib"]), cfg.bn_recalibration_batches, device)
        val = validate(shipped, loaders["val"], weights, device)
        row = {"epoch": epoch, **train_stats, **{f"val_{k}": v for k, v in val.items()}, "seconds": round(time.time() - t0, 2)}
        score = val["loss"] if val["n"] else train_stats["train_loss"]  # no val events: select on train loss
        is_best = score < best
        best = min(best, score)
        last = None
        if hooks.is_main:
            meta = {"epoch": epoch, "teacher": teacher, "val": val, "train_config": asdict(cfg)}
            if is_best:
                save_student(shipped, out, extra_meta=meta)
            last = save_student(core, out / LAST, extra_meta=meta)
            state = {"epoch": epoch, "best": best, "optimizer": opt.state_dict()}
            torch.save(state | ({"ema": ema.state_dict()} if ema is not None else {}), last / STATE)
            with open(out / METRICS, "a") as f:
                f.write(json.dumps(row) + "\n")
        hooks.report(row, last)
        summary.update(epochs_run=summary["epochs_run"] + 1, best_val_loss=best, last=row)
    return summary


def _loaders(cfg: DistillConfig, spec: DataSpec, index, hooks: Hooks, device: torch.device) -> dict:
    """The train loader (augmented, shuffled), which is also BatchNorm's calibration stream (BN statistics must
    describe the randomised readouts the weights learned, not clean events alone), and the validation loader.

    With statistics from clean batches, the shipped epoch's accuracy under 4 ADC noise at a 2-sigma threshold
    swung between -0.008 and -0.106 across runs and epochs of one recipe (the default demo's labels); from
    augmented batches one run's best and last epochs lost 0.024 and 0.012, at the same nominal accuracy.

    Each loader draws its iterators' seeds from a generator of its own (the datasets seed their shuffling and
    augmentation from ``seed``, epoch and shard), so the model's random stream (dropout) does not depend on how
    often a loader is read: recalibrating BN on a stash or on a second pass trains the same weights."""
    n_workers = cfg.loader_workers if cfg.loader_workers >= 0 else (2 if device.type == "cuda" else 0)
    kw = dict(batch_size=cfg.batch_size, num_workers=n_workers, pin_memory=device.type == "cuda",
              persistent_workers=False, generator=torch.Generator().manual_seed(cfg.seed))
    shard = dict(seed=cfg.seed, rank=hooks.rank, world=hooks.world)
    aug = DetectorAugment(prob=cfg.detector_prob) if cfg.augment else None
    train = torch.utils.data.DataLoader(DistillDataset(spec, index, "train", aug, cfg.shuffle_buffer, **shard), **kw)
    return {"train": train, "calib": train,  # a fresh iterator each pass: the epoch's first batches again
            "val": torch.utils.data.DataLoader(DistillDataset(spec, index, "val", None, 0, **shard), **kw)}


def _train_epoch(model, opt, ema, loaders, weights, epoch, steps, cfg, device, hooks, stash: BatchStash) -> dict:
    """One epoch of ``steps`` optimiser steps (``ema`` follows each); returns mean loss parts and the last learning
    rate. Every batch is offered to ``stash`` (on the host) for BatchNorm recalibration."""
    model.train()
    core = getattr(model, "module", model)  # what the EMA averages (the module inside DDP)
    loaders["train"].dataset.set_epoch(epoch)
    sums: dict[str, float] = {}
    n = 0
    bar = progress(total=steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=None if hooks.is_main else True)
    for step, batch in zip(range(steps), loaders["train"]):
        lr = _lr(cfg, epoch * steps + step, cfg.epochs * steps, steps)
        for group in opt.param_groups:
            group["lr"] = lr
        stash.offer(batch)
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        logits, concepts = model(batch["xz"], batch["yz"])
        loss, parts = distill_loss(logits, concepts, batch, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            ema.update_parameters(core)
        for k, v in {"loss": float(loss.detach()), **parts}.items():
            sums[k] = sums.get(k, 0.0) + v
        n += 1
        bar.update(1)
        bar.set_postfix(loss=f"{sums['loss'] / n:.4f}")
    bar.close()
    return {f"train_{k}": v / max(n, 1) for k, v in sums.items()} | {"lr": lr if n else 0.0, "steps": n}


class BatchStash:
    """The views of an epoch's first ``want`` train batches, kept on the host for BatchNorm recalibration.

    A fresh pass of the train loader (same seed, same epoch) gives these batches again, so recalibrating on
    them is the same computation without reading and augmenting them a second time. On the default demo's
    labels (2 cores, 512², batch 32, 20 batches; ``bench/bn_stash.py``) the second pass cost 6.6 s an epoch.
    Past ``max_bytes`` it keeps nothing and :meth:`source` hands back the loader.
    """

    def __init__(self, want: int, max_bytes: int):  # no default: train_loop reads BN_STASH_BYTES when it runs
        self.want, self.max_bytes = want, max_bytes
        self.batches: list[dict[str, torch.Tensor]] = []
        self.bytes, self.overflow = 0, False

    def offer(self, batch: dict) -> None:
        if self.overflow or len(self.batches) >= self.want:
            return
        views = {"xz": batch["xz"], "yz": batch["yz"]}
        self.bytes += sum(v.numel() * v.element_size() for v in views.values())
        if self.bytes > self.max_bytes:
            self.overflow, self.batches = True, []
            return
        self.batches.append(views)

    def source(self, loader):
        """The stashed batches when all ``want`` are here, else ``loader`` (read again)."""
        return self.batches if not self.overflow and len(self.batches) == self.want else loader


def _lr(cfg: DistillConfig, step: int, total: int, steps_per_epoch: int) -> float:
    """Linear warm-up over 10% of the first epoch (at least one step), then cosine decay to zero."""
    warm = max(1, steps_per_epoch // 10)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))


def _resume(cfg: DistillConfig, model, opt, ema, out: Path, last: Path | None) -> tuple[int, float]:
    """Load checkpoint ``last`` into ``model``, ``opt`` and ``ema``; return (first epoch to run, best val loss)."""
    if last is None:
        if (out / METRICS).exists():
            (out / METRICS).unlink()  # a fresh run in an old directory starts a fresh log
        return 0, math.inf
    from nudistill.student.checkpoint import load_student

    saved = read_config(last)["student"]
    if saved["name"] != cfg.student or (saved["height"], saved["width"]) != (model.cfg.height, model.cfg.width):
        raise UserError(f"{last} holds student {saved['name']} at {saved['height']}x{saved['width']}, not "
                        f"{cfg.student} at {model.cfg.height}x{model.cfg.width}; use another --out or --no-resume")
    model.load_state_dict(load_student(last).state_dict())
    state = torch.load(last / STATE, map_location="cpu", weights_only=True)
    opt.load_state_dict(state["optimizer"])
    if ema is not None:
        if "ema" not in state:
            raise UserError(f"{last} was trained without --ema; use another --out or --no-resume")
        ema.load_state_dict(state["ema"])
    _truncate_metrics(out / METRICS, state["epoch"])
    log.info("resuming %s after epoch %d", out, state["epoch"] + 1)
    return state["epoch"] + 1, float(state["best"])


def _truncate_metrics(path: Path, last_epoch: int) -> None:
    """Drop metric lines of epochs after the checkpoint (a crash between log and checkpoint)."""
    if not path.exists():
        return
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["epoch"] <= last_epoch))

