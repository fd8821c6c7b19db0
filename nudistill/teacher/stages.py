"""The teacher's stages as typed configs and one function each: init, finetune, calibrate and eval.

``nudistill teacher <verb>`` and the demo call these, so calibration (load, fit the temperature on labelled
events, store it in teacher.json) is written once. Temperature scaling: Guo et al. 2017, arXiv 1706.04599.

    nudistill teacher init --out teacher0
    nudistill teacher calibrate --teacher teacher1 --events calib
    nudistill teacher eval --teacher teacher1 --events test --rationales 200
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from nudistill.config import save_config
from nudistill.errors import UserError
from nudistill.teacher.finetune import FinetuneConfig


@dataclass
class TeacherInitConfig:
    """Build a teacher directory from scratch (the tiny Mllama, the only kind built here)."""

    out: str
    """Output teacher directory."""
    tiny: bool = True
    """The tiny Mllama teacher (~1M parameters, built on a CPU in a second)."""
    seed: int = 0
    """Seed of the random weights."""

    def __post_init__(self):
        if not self.tiny:
            raise UserError("--no-tiny: only the tiny teacher is built here; fine-tune a hub model with --base instead")


@dataclass
class TeacherDataConfig:
    """A teacher and labelled events to score it on."""

    teacher: str
    """Teacher directory or hub id."""
    events: str
    """Labelled events (contract 1 with a label column): file, directory, glob or URI."""
    limit: int | None = None
    """Use at most this many events (None: all)."""
    quantize: str | None = None
    """Load the base in '4bit' (NF4)."""
    trust_remote_code: bool = False
    """Allow model code from the checkpoint."""
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""

    CHOICES = {"quantize": ("4bit",)}  # the CLI's choices (cli/dataclass_args.py)

    def __post_init__(self):
        for flag, value in (("--limit", self.limit), ("--threads", self.threads)):
            if value is not None and value < 1:
                raise UserError(f"{flag} must be at least 1, got {value}")


@dataclass
class CalibrateConfig(TeacherDataConfig):
    """Fit the teacher's temperature on labelled events and store it in its teacher.json."""


@dataclass
class TeacherEvalConfig(TeacherDataConfig):
    """Accuracy, NLL and ECE of the teacher on labelled events, and concept F1 of its rationales."""

    rationales: int = 0
    """Events to explain for the rationales' concept F1 (0: none)."""

    def __post_init__(self):
        super().__post_init__()
        if self.rationales < 0:
            raise UserError(f"--rationales must not be negative, got {self.rationales}")


def run_init(cfg: TeacherInitConfig) -> Path:
    """Build the tiny teacher in ``cfg.out`` (with OUT/init_config.json); return its path."""
    from nudistill.teacher.tiny import TinyConfig, build_tiny_teacher

    out = build_tiny_teacher(cfg.out, TinyConfig(seed=cfg.seed))
    save_config(cfg, Path(out) / "init_config.json")
    return out


def _load(cfg: TeacherDataConfig):
    """The teacher and its labelled events, views pooled to the teacher's tile."""
    from nudistill.teacher import load_teacher
    from nudistill.teacher.data import load_labelled

    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    teacher = load_teacher(cfg.teacher, quantize=cfg.quantize, trust_remote_code=cfg.trust_remote_code)
    return teacher, load_labelled(cfg.events, limit=cfg.limit, view_size=teacher.spec.view_size)


def calibrate_teacher(cfg: CalibrateConfig) -> dict:
    """Fit T on ``cfg.events``, store it in the teacher's teacher.json (and this config beside it as
    calibrate_config.json); return NLL, ECE and accuracy before and after."""
    from nudistill.teacher.calibrate import calibrate

    teacher, data = _load(cfg)
    result = calibrate(data.y, teacher.logprobs(data.views, prepared=True), teacher.temperature)
    teacher.spec.temperature = result.temperature_after
    teacher.spec.save(teacher.root)
    save_config(cfg, Path(teacher.root) / "calibrate_config.json")
    return dataclasses.asdict(result)


def run_eval(cfg: TeacherEvalConfig) -> dict:
    """Accuracy, NLL, ECE (and concept F1 on ``cfg.rationales`` events) of the teacher, with its id."""
    from nudistill.teacher.calibrate import evaluate

    teacher, data = _load(cfg)
    return dict(evaluate(teacher, data, rationales=cfg.rationales), teacher=teacher.teacher_id)



@dataclass
class TeacherFinetuneConfig(FinetuneConfig):
    """A fine-tuning run as ``nudistill teacher finetune`` takes it: the run plus an optional learning curve."""

    eval_events: str | None = None
    """Held-out labelled events for a learning curve (None: no held-out evaluation)."""
    eval_limit: int = 500
    """Held-out events to score."""
    eval_every: int | None = None
    """Steps between held-out evaluations (None: at the end only)."""

    CHOICES = {"mode": ("full", "lora", "qlora"), "device": ("cuda", "cpu")}  # the CLI's choices

    def __post_init__(self):
        for flag, value in (("--base", self.base), ("--events", self.events), ("--out", self.out)):
            if not value:
                raise UserError(f"{flag} is required")
        super().__post_init__()
        if self.eval_limit < 1 or (self.eval_every is not None and self.eval_every < 1):
            raise UserError("--eval-limit and --eval-every must be at least 1")


def finetune_teacher(cfg: FinetuneConfig):
    """Fine-tune (resumable; finetune_config.json in the output), with a learning curve when ``cfg`` asks."""
    from nudistill.teacher.finetune import held_out_eval, run_finetune

    eval_events = getattr(cfg, "eval_events", None)
    eval_fn = held_out_eval(eval_events, cfg.eval_limit) if eval_events else None
    return run_finetune(cfg, eval_fn=eval_fn, eval_every=getattr(cfg, "eval_every", None))
