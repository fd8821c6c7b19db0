"""Evaluate a student, PyTorch checkpoint or exported ONNX model alike, at full and at half resolution.

Half resolution is the paper's robustness test: both views are averaged over 2x2 blocks and repeated
back to the model's input size (:func:`nudistill.shifts.degrade_resolution`), standing in for a
coarser readout. Metrics against truth (where the events carry ``label``), agreement with the teacher
(where labels are given) and concept AUC against the truth ``concepts`` column (where present).

Run: ``nudistill evaluate --model out/ --events events/ --labels labels/ --out eval.json``
(:func:`run_evaluate`; the report embeds its resolved config, so ``--config eval.json`` reruns it.)
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nudistill import CLASSES, CONCEPTS, metrics
from nudistill.errors import UserError
from nudistill.events import Validator, concepts_to_multi_hot, decode_views, iter_batches
from nudistill.log import progress
from nudistill.shifts import degrade_resolution

RESOLUTIONS = {"full": 1, "half": 2}


class TorchPredictor:
    """A student checkpoint directory, scored with PyTorch on CPU."""

    def __init__(self, path: Path):
        import torch

        from nudistill.student.checkpoint import load_student

        self.torch, self.model = torch, load_student(path)
        self.height, self.width = self.model.cfg.height, self.model.cfg.width
        self.meta = {"kind": "pytorch", "student": self.model.cfg.name, "teacher_id": self.model.meta.get("teacher", "")}

    def __call__(self, xz: np.ndarray, yz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self.torch.no_grad():
            logits, concepts = self.model(self.torch.from_numpy(xz), self.torch.from_numpy(yz))
        return self.torch.softmax(logits, -1).numpy(), self.torch.sigmoid(concepts).numpy()


class OnnxPredictor:
    """An exported contract-3 ONNX model, scored through the online :class:`~nudistill.online.Scorer`."""

    def __init__(self, path: Path, threads: int = 1):
        from nudistill.online import Scorer

        try:
            self.scorer = Scorer(path, threads=threads)
        except ValueError as exc:
            raise UserError(f"{path} is not a usable contract-3 model: {exc}") from None
        self.height, self.width = self.scorer.shape
        self.meta = {"kind": "onnx", "student": self.scorer.contract.get("student", ""),
                     "teacher_id": self.scorer.contract.get("teacher", "")}

    def __call__(self, xz: np.ndarray, yz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.scorer.score(xz, yz)
        return out["probs"], out["concepts"]


def open_model(path: str | Path, threads: int = 1):
    """A predictor for a checkpoint directory (``config.json`` + ``model.safetensors``) or an ``.onnx`` file."""
    path = Path(path)
    if path.is_dir():
        return TorchPredictor(path)
    if path.suffix == ".onnx" and path.is_file():
        return OnnxPredictor(path, threads)
    raise UserError(f"{path} is neither a student checkpoint directory nor an .onnx file")


def collect(predict, events, labels=None, batch_size: int = 64, limit: int | None = None,
            skip_bad_files: bool = False, resolutions: tuple[str, ...] = tuple(RESOLUTIONS)) -> dict:
    """Stream ``events`` through ``predict`` at each of ``resolutions``; return stacked arrays and skip counts."""
    index = None
    if labels:
        from nudistill.student.data import LabelIndex

        index = LabelIndex.read(labels)
    validator = Validator((predict.height, predict.width))
    acc: dict[str, list] = {k: [] for k in ("truth", "truth_concepts", "has_concepts", "teacher", *resolutions,
                                            *(f"{r}_concepts" for r in resolutions))}
    counts: Counter = Counter()
    first = True
    for batch in progress(iter_batches(events, batch_size, limit=limit, skip_bad_files=skip_bad_files),
                          desc="evaluate", unit="batch"):
        if first:
            _check_resolution(batch, predict, events)
            first = False
        ok, errors = validator(batch)
        counts["invalid_rows"] += len(errors)
        batch = batch.filter(ok)
        if batch.num_rows == 0:
            continue
        views = decode_views(batch)  # (B, 2, H, W) uint8
        for res in resolutions:
            v = degrade_resolution(views, RESOLUTIONS[res])
            probs, concepts = predict(np.ascontiguousarray(v[:, 0]), np.ascontiguousarray(v[:, 1]))
            acc[res].append(probs)
            acc[f"{res}_concepts"].append(concepts)
        _truth(batch, acc)
        acc["teacher"].append(_teacher(batch, index, counts))
    if first:
        raise UserError(f"events {events} hold no rows")
    arrays = {k: np.concatenate(v) for k, v in acc.items() if v}
    return {"arrays": arrays, "counts": dict(counts, events=int(len(arrays.get("truth", []))))}


def _check_resolution(batch, predict, events) -> None:
    h, w = batch.column("height")[0].as_py(), batch.column("width")[0].as_py()
    if (h, w) != (predict.height, predict.width):
        raise UserError(f"events {events} are {h}x{w} but the model expects {predict.height}x{predict.width}")


def _truth(batch, acc: dict) -> None:
    n = batch.num_rows
    labels = batch.column("label").to_pylist() if "label" in batch.schema.names else [None] * n
    acc["truth"].append(np.array([CLASSES.index(x) if x in CLASSES else -1 for x in labels], np.int64))
    if "concepts" in batch.schema.names:
        col = batch.column("concepts")
        acc["truth_concepts"].append(concepts_to_multi_hot(col.to_pylist()))
        acc["has_concepts"].append(np.asarray(col.is_null()) == 0)
    else:
        acc["truth_concepts"].append(np.zeros((n, len(CONCEPTS)), np.float32))
        acc["has_concepts"].append(np.zeros(n, bool))


def _teacher(batch, index, counts: Counter) -> np.ndarray:
    """Teacher probs ``(B, 3)`` per row, NaN where there is no ok label."""
    out = np.full((batch.num_rows, len(CLASSES)), np.nan, np.float32)
    if index is None:
        return out
    for i, eid in enumerate(batch.column("event_id").to_pylist()):
        row = index.rows.get(eid)
        if row is None or not index.ok[row]:
            counts["no_teacher_label"] += 1
            continue
        out[i] = index.probs[row]
    return out


def summarise(arrays: dict) -> dict:
    """Metrics per resolution from :func:`collect`'s arrays (plus the teacher's own accuracy)."""
    truth, teacher = arrays["truth"], arrays["teacher"]
    has_truth, has_teacher = truth >= 0, np.isfinite(teacher).all(1)
    out: dict = {}
    for res in RESOLUTIONS:
        probs, cprobs = arrays[res], arrays[f"{res}_concepts"]
        r = metrics.classification_report(truth[has_truth], probs[has_truth]) if has_truth.any() else {"n": 0}
        if has_teacher.any():
            r["agreement"] = metrics.agreement(probs[has_teacher], teacher[has_teacher])
            r["n_teacher"] = int(has_teacher.sum())
        hc = arrays["has_concepts"]
        if hc.any():
            r["concept_auc"] = metrics.concept_auc(arrays["truth_concepts"][hc], cprobs[hc])
        out[res] = r
    both = has_truth & has_teacher
    if both.any():
        out["teacher"] = {"n": int(both.sum()), "accuracy": metrics.accuracy(truth[both], teacher[both]),
                          "student_accuracy_same_events": metrics.accuracy(truth[both], arrays["full"][both])}
    return out


def evaluate(model: str | Path, events, labels=None, batch_size: int = 64, limit: int | None = None,
             threads: int = 1, skip_bad_files: bool = False) -> dict:
    """Evaluate ``model`` on ``events``; return the JSON-ready report."""
    predict = open_model(model, threads)
    got = collect(predict, events, labels, batch_size, limit, skip_bad_files)
    return {"model": str(model), **predict.meta, "events": str(events), "labels": str(labels) if labels else None,
            "counts": got["counts"], **summarise(got["arrays"])}


@dataclass
class EvaluateConfig:
    """Evaluate a student checkpoint or exported ONNX model against truth and the teacher, full and half resolution."""

    model: str
    """Student checkpoint directory (model.safetensors + config.json) or an exported .onnx file."""
    events: str
    """Events dataset (contract 1); truth label/concepts columns give accuracy, AUC and concept AUC."""
    out: str
    """JSON file for the report (full and half resolution, with this config under "config")."""
    labels: str | None = None
    """Teacher labels (contract 2) for agreement and the teacher's own accuracy."""
    batch_size: int = 64
    """Events per model call."""
    limit: int | None = None
    """Evaluate only the first N events (None: all)."""
    threads: int = 1
    """onnxruntime intra-op threads for an .onnx model."""
    skip_bad_files: bool = False
    """Go on without input files that cannot be read as events; else refuse, naming them."""

    def __post_init__(self):
        for flag, value in (("--batch-size", self.batch_size), ("--threads", self.threads), ("--limit", self.limit)):
            if value is not None and value < 1:
                raise UserError(f"{flag} must be at least 1, got {value}")


def run_evaluate(cfg: EvaluateConfig) -> dict:
    """``nudistill evaluate``: write the report of :func:`evaluate` (and ``cfg``) to ``cfg.out``; return it."""
    from nudistill.config import config_dict

    report = {"config": config_dict(cfg),
              **evaluate(cfg.model, cfg.events, cfg.labels, cfg.batch_size, cfg.limit, cfg.threads,
                         cfg.skip_bad_files)}
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report
