"""Post-hoc calibration of a trained student against truth: a temperature and a bias per class.

A distilled student learns the teacher's confidences, not its own: it is more accurate than its teacher
(trained on the teacher's train-set labels, which are 0.92 right where the teacher is 0.86 on new events), so
its probabilities are too soft, and it inherits the teacher's lean away from ``nc`` (on the default demo's
test events the teacher gives ``nc`` a mean probability of 0.26 and the student 0.25, against a truth share
of 0.30). Both are fixed on held-out labelled events, as the teacher's temperature is, by bias-corrected
temperature scaling (BCTS; Alexandari, Kundaje & Shrikumar 2020, "Maximum likelihood with bias-corrected
calibration is hard-to-beat at label shift adaptation"):

    calibrated class logits = a * logits + b,   a = 1/T > 0, b per class (b[0] = 0)

with (a, b) minimising the NLL of the truth. The NLL is convex in (a, b), so L-BFGS finds the optimum. Both
live in the student's config (``logit_scale``, ``logit_bias``) and so inside its ONNX graph. ``temperature``
fits ``a`` alone and keeps every argmax; ``bias`` (BCTS) moves decisions towards the classes' shares in the
calibration events: those events should hold the class mix the model will see, as for the teacher.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nudistill import metrics
from nudistill.errors import UserError
from nudistill.metrics import nll
from nudistill.log import get_logger

log = get_logger("student")
MODES = ("bias", "temperature")
MIN_EVENTS = 30
"""Fewer labelled events than this cannot fit three numbers that a filter will rely on."""


def fit(y: np.ndarray, logits: np.ndarray, mode: str = "bias") -> tuple[float, np.ndarray]:
    """The (scale, bias) minimising the NLL of ``y`` under softmax(scale * logits + bias); bias is 0 for
    ``temperature`` mode and has bias[0] = 0 (softmax ignores a common shift)."""
    import torch

    if mode not in MODES:
        raise UserError(f"calibration {mode!r} must be one of {', '.join(MODES)}")
    z = torch.as_tensor(np.asarray(logits, np.float64))
    t = torch.as_tensor(np.asarray(y, np.int64))
    scale = torch.ones((), dtype=torch.float64, requires_grad=True)
    free = torch.zeros(z.shape[1] - 1, dtype=torch.float64, requires_grad=mode == "bias")
    params = [scale, free] if mode == "bias" else [scale]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=200, tolerance_grad=1e-10, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        bias = torch.cat([free.new_zeros(1), free])
        loss = torch.nn.functional.cross_entropy(scale * z + bias, t)
        loss.backward()
        return loss

    opt.step(closure)
    a, b = float(scale.detach()), np.concatenate([[0.0], free.detach().numpy()])
    if not (np.isfinite(a) and a > 0 and np.isfinite(b).all()):
        raise UserError(f"calibration found no positive temperature (scale {a:.3g}): the model's class scores do "
                        "not rank the calibration events' truth; check that they are the events the model is meant for")
    return a, b


def calibrate_checkpoint(directory: str | Path, events: str | list[str], mode: str = "bias", batch_size: int = 64,
                         skip_bad_files: bool = False) -> dict:
    """Fit ``mode`` on the labelled ``events`` (one dataset or several) for the student checkpoint in ``directory``
    and store it there.

    A checkpoint calibrated before is calibrated again from its current outputs (the two affine maps compose),
    so calibrating twice on the same events changes nothing. Returns the report stored in the checkpoint's
    ``meta.calibration`` and in ``directory/calibration.json``.
    """
    from nudistill.student.checkpoint import read_config, write_config
    from nudistill.student.evaluate import collect, open_model

    directory = Path(directory)
    doc = read_config(directory)
    sets = [events] if isinstance(events, (str, Path)) else list(events)
    predict = open_model(directory)
    parts = [collect(predict, uri, batch_size=batch_size, skip_bad_files=skip_bad_files, resolutions=("full",))["arrays"]
             for uri in sets]
    y = np.concatenate([a["truth"] for a in parts])
    probs = np.concatenate([a["full"] for a in parts])
    keep = y >= 0
    y, logits = y[keep], np.log(np.clip(probs[keep], 1e-12, 1.0))
    if len(y) < MIN_EVENTS or len(np.unique(y)) < 2:
        raise UserError(f"calibration events {', '.join(map(str, sets))}: {len(y)} events with a truth label in "
                        f"{len(np.unique(y))} classes; calibration needs at least {MIN_EVENTS} in two or more classes")
    a, b = fit(y, logits, mode)
    old_a = float(doc["student"].get("logit_scale", 1.0))
    old_b = np.asarray(doc["student"].get("logit_bias") or np.zeros(logits.shape[1]), np.float64)
    before, after = metrics.softmax(logits), metrics.softmax(a * logits + b)
    report = {"mode": mode, "events": [str(u) for u in sets], "n": int(len(y)), "temperature": 1.0 / a,
              "bias": [float(v) for v in b], "class_counts": np.bincount(y, minlength=logits.shape[1]).tolist(),
              "nll_before": nll(y, logits), "nll_after": nll(y, logits, a, b),
              "ece_before": metrics.ece(y, before), "ece_after": metrics.ece(y, after),
              "accuracy_before": metrics.accuracy(y, before), "accuracy_after": metrics.accuracy(y, after)}
    doc["student"]["logit_scale"] = a * old_a
    doc["student"]["logit_bias"] = [float(v) for v in a * old_b + b]
    doc.setdefault("meta", {})["calibration"] = report
    write_config(directory, doc)
    (directory / "calibration.json").write_text(json.dumps(report, indent=2) + "\n")  # a copy for people and the report
    log.info("calibrated %s on %d events (%s): T %.3f, bias %s; accuracy %.3f -> %.3f, NLL %.3f -> %.3f",
             directory, len(y), mode, 1.0 / a, np.round(b, 3).tolist(), report["accuracy_before"],
             report["accuracy_after"], report["nll_before"], report["nll_after"])
    return report
