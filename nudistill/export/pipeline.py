"""The whole export of one checkpoint: trace, metadata, checks, offline-optimised graph, latency certificate,
optional int8.

Every model it ships carries its latency certificate in ``metrics["latency"]`` (contract 3), measured by
:func:`nudistill.online.latency.certify` in a clean process, never in this torch-loaded one.
Nothing reaches ``out`` until every check has passed: files are built in a temporary directory beside it
and renamed at the end. The resolved config and the check results go to ``<stem>.export.json``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from nudistill import CLASSES
from nudistill.config import config_dict
from nudistill.errors import UserError
from nudistill.export.checks import check_batches, check_onnx, check_parity
from nudistill.export.graph import OPSET, export_graph, torch_scores
from nudistill.export.metadata import build_metadata, save_atomic, set_metadata, update_metadata
from nudistill.log import get_logger
from nudistill.online.latency import certify
from nudistill.online.scorer import Scorer, optimized_path

log = get_logger("export")
MIN_CHECK_EVENTS = 256


@dataclass
class ExportConfig:
    """Settings of ``nudistill export``."""

    checkpoint: str
    """Student checkpoint directory (model.safetensors + config.json)."""
    out: str = "model.onnx"
    """Path of the fp32 ONNX model; model.opt.onnx, model.int8.onnx and model.export.json go beside it."""
    events: str | None = None
    """Events (contract 1) for the parity and accuracy checks; None: parity on events simulated at the model's
    size, and accuracy only where that is the simulator's own size, labelled as simulated."""
    check_events: int = MIN_CHECK_EVENTS
    """Events compared with PyTorch (at least 256)."""
    tolerance: float = 1e-4
    """Largest |Δprob| (and |Δconcept|) allowed between ONNX Runtime and PyTorch."""
    opset: int = OPSET
    """ONNX opset (pinned)."""
    teacher: str | None = None
    """Teacher id for the metadata; default: the one recorded in the checkpoint."""
    optimize: bool = True
    """Also write the graph optimised offline by onnxruntime (model.opt.onnx)."""
    int8: bool = False
    """Also try static QDQ int8; written only when it passes the agreement and accuracy gates."""
    calibration: str | None = None
    """Events for int8 calibration (default: simulated, disjoint from the check events)."""
    calibration_events: int = 256
    """Number of calibration events."""
    min_agreement: float = 0.99
    """int8 gate: argmax agreement with fp32 on the check events."""
    max_accuracy_drop: float = 0.5
    """int8 gate: accuracy drop against truth, in points."""
    seed: int = 0
    """Seed of simulated check events."""
    latency_calls: int = 1000
    """Batch-1 calls of the latency certificate written into the model (clean process); 0 skips it (tests)."""

    def __post_init__(self):
        if self.check_events < MIN_CHECK_EVENTS:
            raise UserError(f"--check-events must be at least {MIN_CHECK_EVENTS}, got {self.check_events}")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise UserError(f"--min-agreement must lie between 0 and 1, got {self.min_agreement}")
        if not self.max_accuracy_drop > 0:
            raise UserError(f"--max-accuracy-drop must be positive, got {self.max_accuracy_drop}")
        if not self.tolerance > 0:
            raise UserError(f"--tolerance must be positive, got {self.tolerance}")
        if not str(self.out).endswith(".onnx"):
            raise UserError(f"--out must end in .onnx, got {self.out}")
        if self.latency_calls < 0:
            raise UserError(f"--latency-calls must be 0 or more, got {self.latency_calls}")
        if self.calibration_events < 1:
            raise UserError(f"--calibration-events must be positive, got {self.calibration_events}")


def load_events(uri: str | None, n: int, shape: tuple[int, int], seed: int = 0, start: int = 0
                ) -> tuple[np.ndarray, np.ndarray | None, str]:
    """``n`` valid events of ``shape``: (views (n, 2, H, W) uint8, class indices (n,) or None, source)."""
    from nudistill.events import Validator, decode_views, iter_batches, resolve_dataset

    if uri is None:
        if shape[0] != shape[1]:
            raise UserError(f"the simulator makes square maps only; give --events for {shape[0]}x{shape[1]}")
        from nudistill.simulate import simulate_table

        table = simulate_table(n, res=shape[0], seed=seed, start=start)
        labels = np.array([CLASSES.index(x) for x in table.column("label").to_pylist()])
        return decode_views(table), labels, f"simulated (seed {seed}, events {start}..{start + n - 1})"
    has_label = "label" in resolve_dataset(uri).schema.names
    columns = ["event_id", "xz", "yz", "height", "width"] + (["label"] if has_label else [])
    validate, views, labels, got = Validator(expected_shape=shape), [], [], 0
    for batch in iter_batches(uri, batch_size=256, columns=columns):
        ok, _ = validate(batch)
        batch = batch.filter(ok)
        if has_label:
            known = np.array([x is not None for x in batch.column("label").to_pylist()], dtype=bool)
            batch = batch.filter(known)
            labels += [CLASSES.index(x) for x in batch.column("label").to_pylist()]
        views.append(decode_views(batch))
        got += batch.num_rows
        if got >= n:
            break
    if got < n:
        raise UserError(f"{uri} has only {got} valid {shape[0]}x{shape[1]} events, the export needs {n}")
    return np.concatenate(views)[:n], (np.array(labels[:n]) if has_label else None), str(uri)


SIMULATED_NOTE = "simulated nominal events, not yours"


def accuracy_metrics(probs: np.ndarray, labels: np.ndarray | None, source: str, simulated: bool = False,
                     shape: tuple[int, int] | None = None) -> dict:
    """Accuracy and macro one-vs-rest AUC of the exported model on the check events, and where they come from.

    Events the export simulated itself stand in for a detector only at the simulator's own size: a student
    of another size was trained on someone else's detector, and its accuracy on toy events says nothing
    about it (a 500x500 student read "31.6%"), so then only parity is checked and no accuracy is given.
    """
    from nudistill.simulate import SimConfig

    out: dict = {"check_events": source}
    if labels is None:
        return out
    if simulated and tuple(shape or ()) != (SimConfig.res, SimConfig.res):
        return out | {"accuracy_skipped": f"the check events were simulated at {shape[0]}x{shape[1]}, not the "
                      f"simulator's {SimConfig.res}x{SimConfig.res}; pass --events for accuracy on yours"}
    from sklearn.metrics import roc_auc_score

    out |= {"accuracy": float((probs.argmax(1) == labels).mean()), "n_events": len(labels),
            "accuracy_on": SIMULATED_NOTE if simulated else f"{len(labels)} events of {source}"}
    if len(np.unique(labels)) == len(CLASSES):
        out["auc_macro"] = float(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    return out


def _write_optimized(src: Path, dst: Path) -> None:
    """onnxruntime's offline optimisation at the extended level: fusions that run on any CPU (no NCHWc)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(dst)
    so.log_severity_level = 3
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])


def write_model(student, out: Path, teacher: str, metrics: dict, opset: int = OPSET, optimize: bool = True,
                check=None, latency_calls: int = 0) -> Path:
    """Trace ``student`` to ``out`` with contract-3 metadata, run the checker and ``check(path)`` on the
    model and on its optimised graph, certify its latency over ``latency_calls`` calls (stored in
    ``metrics["latency"]``; 0 leaves it as given), and only then move both into place."""
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as tmp:
        model_path = Path(tmp) / out.name
        export_graph(student, model_path, opset)
        meta = build_metadata(student.cfg, teacher, metrics, {"opset": str(opset)})
        save_atomic(set_metadata(onnx.load(str(model_path)), meta), model_path)
        check_onnx(model_path)
        opt_path = optimized_path(model_path)
        if optimize:
            _write_optimized(model_path, opt_path)
        for path in (model_path, opt_path) if optimize else (model_path,):
            if check is not None:
                check(path)
        if latency_calls:
            metrics["latency"] = certify(model_path, calls=latency_calls)  # measures what is about to ship
            update_metadata(model_path, {"metrics": json.dumps(metrics, sort_keys=True)})  # rewrites both files
        model_path.replace(out)
        if optimize:
            opt_path.replace(optimized_path(out))  # renamed second: never older than the model it optimises
        elif optimized_path(out).exists():
            optimized_path(out).unlink()  # a stale optimised graph of an earlier export must not be loaded
    return out


def export_checkpoint(cfg: ExportConfig) -> dict:
    """Export, check and write ``cfg.out`` (+ siblings); return the report also saved as ``<stem>.export.json``."""
    from nudistill.student import load_student

    student = load_student(cfg.checkpoint)
    meta_in = getattr(student, "meta", {}) or {}
    shape = (student.cfg.height, student.cfg.width)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    views, labels, source = load_events(cfg.events, cfg.check_events, shape, cfg.seed)
    reference = torch_scores(student, views)  # (n, 3), (n, K) from PyTorch
    report: dict = {"config": config_dict(cfg), "student": student.cfg.name, "opset": cfg.opset}
    metrics = accuracy_metrics(reference[0], labels, source, simulated=cfg.events is None, shape=shape)
    val = meta_in.get("val") if isinstance(meta_in.get("val"), dict) else {}
    metrics.update(agreement=val.get("agreement", meta_in.get("agreement")),  # with the teacher, from training
                   latency=None,  # the certificate, measured by write_model in a clean process
                   training={k: v for k, v in meta_in.items() if k != "teacher"})
    teacher = cfg.teacher or meta_in.get("teacher", "unknown")

    def check(path: Path) -> None:
        scorer = Scorer(path, optimized=False, warmup=1)
        report["parity"].append(check_parity(reference, scorer, views, cfg.tolerance))
        report["batches"][path.name] = check_batches(scorer, views)

    report.update(metrics=metrics, parity=[], batches={})
    write_model(student, out, teacher, metrics, cfg.opset, cfg.optimize, check, cfg.latency_calls)
    report["files"] = {"model": str(out), "optimized": str(optimized_path(out)) if cfg.optimize else None}
    if cfg.int8:
        report["int8"] = _int8(cfg, out, shape, views, labels)
    report_path = out.with_name(out.name[: -len(".onnx")] + ".export.json")
    report_path.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    report["files"]["report"] = str(report_path)
    return report


def int8_path(path: Path) -> Path:
    """``model.onnx`` -> ``model.int8.onnx``."""
    return path.with_name(path.name[: -len(".onnx")] + ".int8.onnx")


def _int8(cfg: ExportConfig, out: Path, shape, views: np.ndarray, labels: np.ndarray | None) -> dict:
    """Calibrate on events disjoint from the check events, gate, write model.int8.onnx or refuse."""
    from nudistill.export.quantize import quantize_checked

    calib, _, source = load_events(cfg.calibration, cfg.calibration_events, shape, cfg.seed,
                                   start=cfg.check_events)  # simulated: the next events of the same run
    dst = int8_path(out)
    if dst.exists():
        dst.unlink()  # never leave an int8 model of an earlier export beside this one
    result = quantize_checked(out, dst, calib, views, labels, cfg.min_agreement, cfg.max_accuracy_drop)
    result["calibration_source"] = source
    return result
