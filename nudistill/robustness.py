"""The robustness suite: one model (student checkpoint, shipped ONNX or teacher) on every named detector shift.

Each shift of :data:`nudistill.shifts.SUITE` is applied to every labelled event with the same seed for
every model (event i uses ``rng([seed, i])``), so a teacher and a student are scored on the same bytes.
Per shift: accuracy and its change from nominal, macro AUC, recall per class, and the predicted-class
counts, which show a collapse onto one class that accuracy alone can hide.

Run: ``nudistill robustness --model model.onnx --events test_events/ --out robustness/``
Outputs in ``--out``: ``robustness.json`` (config, model, events, one row per shift), ``robustness.md``
(the table) and ``robustness_config.json`` (the resolved config).
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nudistill import CLASSES, metrics, shifts
from nudistill.config import config_dict, save_config
from nudistill.errors import UserError
from nudistill.events import read_labelled
from nudistill.log import get_logger, progress

log = get_logger("robustness")

NOMINAL = "nominal"
FACTORIES: dict[str, Callable] = {
    "noise_hits": shifts.noise_hits, "noise_rms": shifts.noise_rms, "blips": shifts.blips,
    "dead_channels": shifts.dead_channels, "noisy_channels": shifts.noisy_channels, "gain": shifts.gain,
    "lifetime": shifts.lifetime, "half_resolution": shifts.half_resolution, "cosmics": shifts.cosmics,
    "shift": shifts.pixel_shift,
}
"""Vocabulary name (a suite name's first word) -> the factory whose docstring says what the shift does."""


def shift_doc(name: str) -> str:
    """One line on what suite entry ``name`` does (its factory's docstring; the level is in the name)."""
    factory = FACTORIES.get(name.split(" ", 1)[0])
    if factory is None:
        return "the events as they are (the reference for every change in accuracy)"
    params = ", ".join(inspect.signature(factory).parameters)
    return f"{factory.__name__}({params}): " + " ".join((factory.__doc__ or "").split()).replace("``", "`")


def resolve_shifts(names: list[str]) -> list[str]:
    """Suite names for ``names`` (exact names, or a vocabulary name for all its levels), nominal first."""
    out, bad = [NOMINAL], []
    for name in (n.strip() for n in names):
        hits = [s for s in shifts.SUITE if s == name or s.split(" ", 1)[0] == name]
        bad += [] if hits or not name else [name]
        out += [s for s in hits if s not in out]
    if bad:
        raise UserError(f"--shifts: unknown shift(s) {', '.join(map(repr, bad))}; choose from "
                        f"{', '.join(map(repr, shifts.SUITE))} (or a vocabulary name such as 'noise_hits' for all its levels)")
    return out


@dataclass
class RobustnessConfig:
    """Score one model on the robustness suite's named detector shifts of a labelled events set."""

    model: str
    """A student checkpoint directory, a shipped model.onnx, or a teacher directory."""
    events: str
    """Labelled events (contract 1 with a label column): a Parquet file, directory, glob or URI."""
    out: str
    """Output directory for robustness.json, robustness.md and the resolved config."""
    shifts: list[str] = field(default_factory=lambda: list(shifts.SUITE))
    """Suite names (or vocabulary names for all their levels); nominal is always added as the reference."""
    limit: int | None = None
    """Read only the first N rows of the events (None: all)."""
    seed: int = 0
    """Seed of the shifts: event i uses rng([seed, i]), the same for every model."""
    batch_size: int = 64
    """Events per model call."""
    threads: int | None = None
    """Intra-op threads of ONNX Runtime and PyTorch (None: 1 for ONNX, PyTorch's own default)."""
    skip_bad_files: bool = False
    """Go on without input files that cannot be read as events; else refuse, naming them."""

    def __post_init__(self):
        if isinstance(self.shifts, str):
            self.shifts = self.shifts.split(",")
        self.shifts = resolve_shifts(list(self.shifts))
        if not Path(self.model).exists():
            raise UserError(f"--model {self.model} does not exist")
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit must be at least 1, got {self.limit}")
        if self.seed < 0:
            raise UserError(f"--seed must not be negative, got {self.seed}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads must be at least 1, got {self.threads}")


@dataclass
class Predictor:
    """A loaded model as one function: views (N, 2, H, W) uint8 -> class probabilities (N, 3) float32."""

    kind: str  # "onnx", "student" (PyTorch checkpoint) or "teacher"
    shape: tuple[int, int] | None  # the (H, W) the model takes; None: any (the teacher pools)
    name: str
    score: Callable[[np.ndarray], np.ndarray]
    batch_size: int = 64

    def __call__(self, views: np.ndarray) -> np.ndarray:
        parts = [self.score(views[i: i + self.batch_size]) for i in range(0, len(views), self.batch_size)]
        return np.concatenate(parts).astype(np.float32)

    def check_shape(self, hw: tuple[int, int], events: str) -> None:
        if self.shape is not None and tuple(self.shape) != tuple(hw):
            raise UserError(f"the events {events} are {hw[0]}x{hw[1]} but the {self.kind} model takes "
                            f"{self.shape[0]}x{self.shape[1]}; give events of its size or a model for theirs")


def model_kind(path: str | Path) -> str:
    """``onnx`` for a .onnx file, ``student`` for a checkpoint directory, ``teacher`` for a teacher directory."""
    path = Path(path)
    if path.suffix == ".onnx" and path.is_file():
        return "onnx"
    if path.is_dir():
        if (path / "teacher.json").is_file():
            return "teacher"
        if (path / "config.json").is_file() and "student" in _json_keys(path / "config.json"):
            return "student"
        hf = ("config.json", "adapter_config.json", "processor_config.json", "preprocessor_config.json")
        if any((path / f).is_file() for f in hf):
            return "teacher"
    raise UserError(f"--model {path} is neither a .onnx file, a student checkpoint directory "
                    "(config.json + model.safetensors) nor a teacher directory (teacher.json or HF files)")


def _json_keys(path: Path) -> set[str]:
    try:
        doc = json.loads(path.read_text())
    except ValueError:
        return set()
    return set(doc) if isinstance(doc, dict) else set()


def predict_fn(cfg: RobustnessConfig) -> Predictor:
    """Load ``cfg.model`` as a :class:`Predictor` (loaded once, scored in chunks of ``cfg.batch_size``)."""
    kind = model_kind(cfg.model)
    if cfg.threads and kind != "onnx":
        import torch

        torch.set_num_threads(cfg.threads)
    shape, name, score = {"onnx": _onnx, "student": _student, "teacher": _teacher}[kind](cfg.model, cfg.threads or 1)
    return Predictor(kind, shape, name, score, cfg.batch_size)


def _onnx(path: str, threads: int):
    from nudistill.online import Scorer

    try:
        scorer = Scorer(path, threads=threads)
    except ValueError as exc:
        raise UserError(f"{path} is not a usable contract-3 model: {exc}") from None

    def score(v: np.ndarray) -> np.ndarray:  # (B, 2, H, W) uint8 -> (B, 3)
        return scorer.score(np.ascontiguousarray(v[:, 0]), np.ascontiguousarray(v[:, 1]))["probs"]

    return scorer.shape, scorer.contract["student"], score


def _student(path: str, threads: int):
    from nudistill.student.evaluate import TorchPredictor  # load_student + softmax, as `nudistill evaluate`

    torch_model = TorchPredictor(Path(path))

    def score(v: np.ndarray) -> np.ndarray:
        return torch_model(np.ascontiguousarray(v[:, 0]), np.ascontiguousarray(v[:, 1]))[0]

    return (torch_model.height, torch_model.width), torch_model.meta["student"], score


def _teacher(path: str, threads: int):
    from nudistill.teacher import load_teacher

    teacher = load_teacher(path)
    return None, str(teacher.root), teacher.score


def shift_row(name: str, y: np.ndarray, probs: np.ndarray, nominal_accuracy: float | None) -> dict:
    """The metrics of one shift: accuracy (and Δ vs nominal), macro AUC, recall per class, predicted counts."""
    per_class = metrics.precision_recall(y, probs)
    recall = {c: (r["recall"] if r["support"] else None) for c, r in per_class.items()}  # None: class absent
    present = [r for r in recall.values() if r is not None]
    confusion = metrics.confusion(y, probs)
    accuracy = metrics.accuracy(y, probs)
    return {"shift": name, "doc": shift_doc(name), "n": int(len(y)), "accuracy": accuracy,
            "delta_accuracy": None if nominal_accuracy is None else accuracy - nominal_accuracy,
            "macro_auc": _finite(metrics.macro_auc(y, probs)), "recall": recall,
            "min_recall": min(present) if present else None,
            "predicted": {c: int(n) for c, n in zip(CLASSES, np.sum(confusion, 0))}, "confusion": confusion}


def _finite(v: float) -> float | None:
    return None if v is None or math.isnan(v) else v


def markdown_table(rows: list[dict]) -> str:
    """The suite as a markdown table, one row per shift."""
    def f(v, spec=".3f"):
        return "—" if v is None else format(v, spec)

    out = ["| shift | accuracy | Δ vs nominal | macro AUC | min class recall | "
           + " | ".join(f"predicted {c}" for c in CLASSES) + " |", "|---" * (5 + len(CLASSES)) + "|"]
    out += [f"| {r['shift']} | {f(r['accuracy'])} | {f(r['delta_accuracy'], '+.3f')} | {f(r['macro_auc'])} | "
            f"{f(r['min_recall'])} | " + " | ".join(str(r["predicted"][c]) for c in CLASSES) + " |" for r in rows]
    return "\n".join(out)


def run_robustness(cfg: RobustnessConfig) -> dict:
    """Score ``cfg.model`` on every shift in ``cfg.shifts``; write robustness.json/.md in ``cfg.out``; return the JSON."""
    out = Path(cfg.out)
    save_config(cfg, out / "robustness_config.json")
    data = read_labelled(cfg.events, limit=cfg.limit, skip_bad_files=cfg.skip_bad_files)
    if data.skipped:
        log.warning("%d event rows were skipped (%s)", sum(data.skipped.values()),
                    ", ".join(f"{n} {r}" for r, n in sorted(data.skipped.items())))
    hw = tuple(int(s) for s in data.views.shape[-2:])
    predict = predict_fn(cfg)
    predict.check_shape(hw, cfg.events)
    rows: list[dict] = []
    for name in progress(cfg.shifts, desc="robustness", unit="shift"):
        probs = predict(shifts.apply_shift(shifts.SUITE[name], data.views, cfg.seed))  # (N, 3)
        rows.append(shift_row(name, data.y, probs, rows[0]["accuracy"] if rows else None))
    result = {"config": config_dict(cfg), "model": _model_info(cfg, predict), "n_events": int(len(data.y)),
              "events": _events_info(data), "shifts": rows}
    (out / "robustness.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "robustness.md").write_text(f"# Robustness: {predict.kind} `{cfg.model}`\n\n{len(data.y)} events "
                                       f"({hw[0]}x{hw[1]}) from `{cfg.events}`, seed {cfg.seed}.\n\n"
                                       f"{markdown_table(rows)}\n")
    return result


def _model_info(cfg: RobustnessConfig, predict: Predictor) -> dict:
    return {"kind": predict.kind, "path": str(cfg.model), "name": predict.name,
            "input": list(predict.shape) if predict.shape else None}


def _events_info(data) -> dict:
    """Resolution, rows skipped by reason, and truth counts per class of the events read."""
    return {"height": int(data.views.shape[-2]), "width": int(data.views.shape[-1]), "skipped": data.skipped,
            "truth": {c: int((data.y == k).sum()) for k, c in enumerate(CLASSES)}}


def headline(result: dict) -> dict:
    """Nominal accuracy, the worst shift and its accuracy, and the lowest class recall over all shifts."""
    rows = result["shifts"]
    worst = min(rows, key=lambda r: r["accuracy"])
    recalls = [r["min_recall"] for r in rows if r["min_recall"] is not None]
    return {"nominal_accuracy": rows[0]["accuracy"], "worst_shift": worst["shift"], "worst_accuracy": worst["accuracy"],
            "min_class_recall": min(recalls) if recalls else None}
