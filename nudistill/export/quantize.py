"""Optional static int8 (QDQ) with calibration on real events, written only when it earns its place.

Naive int8 of a trained two-view CNN on these sparse images dropped argmax agreement with fp32 to 28%, and
int8 is not always faster on this CPU, so the quantized model is compared with fp32 on held-out events and
written only when argmax agreement >= ``min_agreement`` and the accuracy drop <= ``max_accuracy_drop`` points.
Otherwise it is refused with the numbers.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from nudistill.export.checks import check_batches, check_onnx, onnx_scores
from nudistill.export.metadata import save_atomic, set_metadata
from nudistill.log import get_logger
from nudistill.online import Scorer

log = get_logger("export")


class _Calibration(CalibrationDataReader):
    """onnxruntime CalibrationDataReader over (n, 2, H, W) uint8 events, ``batch`` at a time."""

    def __init__(self, views: np.ndarray, batch: int = 16):
        self.views, self.batch, self.pos = views, batch, 0

    def get_next(self) -> dict | None:
        if self.pos >= len(self.views):
            return None
        v = self.views[self.pos: self.pos + self.batch]
        self.pos += self.batch
        return {"xz": np.ascontiguousarray(v[:, 0]), "yz": np.ascontiguousarray(v[:, 1])}

    def rewind(self) -> None:
        self.pos = 0


QUANTIZED = ("/backbone_xz/", "/backbone_yz/", "/neck/", "/class_head/", "/concept_head/")
"""Name parts of the nodes that int8 export quantizes (the CNN and its heads); the rest stays float."""


def _quantize(fp32_path: Path, out_path: Path, calibration: np.ndarray) -> None:
    """Static QDQ: uint8 activations, per-channel int8 weights, min-max calibration.

    The nodes that produce the graph outputs (softmax, sigmoid) stay float: quantized probabilities would
    move in steps of 1/255 and no longer sum to one. So does the whole front end before the CNN (the noise
    floor, the isolated-hit filter, the pools, the cosmic tagger): its values are ADC counts compared with
    fixed levels, and its masks are 0/1. Quantized, the tagger's masks cut pixels it had not tagged
    (agreement 0.89), and the floor, calibrated on events whose floors were mostly 0, had no range for its
    levels (agreement 0.918, a probability off by 0.94); the convolutions, where int8 pays, are all quantized.
    """
    reader = _Calibration(calibration)
    with tempfile.TemporaryDirectory() as tmp:
        prep = Path(tmp) / "prep.onnx"
        quant_pre_process(str(fp32_path), str(prep), skip_symbolic_shape=True)
        graph = onnx.load(str(prep)).graph
        outputs = {o.name for o in graph.output}
        final = [n.name for n in graph.node if outputs & set(n.output) or not any(q in n.name for q in QUANTIZED)]
        quantize_static(str(prep), str(out_path), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=final)


def _median_ms(scorer: Scorer, views: np.ndarray, calls: int = 100) -> float:
    """Median batch-1 latency, a quick comparison (``nudistill bench`` is the certificate)."""
    times = []
    for i in range(calls):
        v = views[i % len(views)]
        t0 = time.perf_counter()
        scorer.score(v[0], v[1])
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def compare(fp32: Scorer, int8: Scorer, views: np.ndarray, labels: np.ndarray | None) -> dict:
    """Argmax agreement, accuracy of both (when labels exist) and batch-1 medians on ``views``."""
    p32, _ = onnx_scores(fp32, views)
    p8, _ = onnx_scores(int8, views)
    out = {"events": len(views), "agreement": float((p32.argmax(1) == p8.argmax(1)).mean()),
           "max_abs_dprob": float(np.abs(p32 - p8).max()),
           "fp32_median_ms": round(_median_ms(fp32, views), 3), "int8_median_ms": round(_median_ms(int8, views), 3)}
    if labels is not None:
        out["accuracy_fp32"] = float((p32.argmax(1) == labels).mean())
        out["accuracy_int8"] = float((p8.argmax(1) == labels).mean())
        out["accuracy_drop_points"] = 100.0 * (out["accuracy_fp32"] - out["accuracy_int8"])
    return out


def quantize_checked(fp32_path: Path, out_path: Path, calibration: np.ndarray, views: np.ndarray,
                     labels: np.ndarray | None, min_agreement: float = 0.99, max_accuracy_drop: float = 0.5) -> dict:
    """Quantize, compare with fp32 on ``views``, write ``out_path`` only if both gates pass; return the numbers."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_int8 = Path(tmp) / "int8.onnx"
        _quantize(fp32_path, tmp_int8, calibration)
        model = onnx.load(str(tmp_int8))
        meta = {p.key: p.value for p in onnx.load(str(fp32_path), load_external_data=False).metadata_props}
        set_metadata(model, meta)
        onnx.save(model, str(tmp_int8))
        fp32, int8 = Scorer(fp32_path, optimized=False, warmup=1), Scorer(tmp_int8, optimized=False, warmup=1)
        result = compare(fp32, int8, views, labels)
        result.update(calibration_events=len(calibration), min_agreement=min_agreement,
                      max_accuracy_drop_points=max_accuracy_drop)
        reasons = []
        if not result["agreement"] >= min_agreement:
            reasons.append(f"argmax agreement with fp32 {100 * result['agreement']:.1f}% < {100 * min_agreement:g}%")
        if labels is None:
            reasons.append("the check events have no truth labels, so the accuracy drop cannot be measured")
        elif not result["accuracy_drop_points"] <= max_accuracy_drop:
            reasons.append(f"accuracy drops {result['accuracy_drop_points']:.2f} points > {max_accuracy_drop:g}")
        result["accepted"] = not reasons
        result["refused_because"] = reasons
        if reasons:
            return result
        check_onnx(tmp_int8)
        result.update(check_batches(int8, views))
        set_metadata(model, {"quantization": json.dumps(result, sort_keys=True)})
        save_atomic(model, out_path)
        result["path"] = str(out_path)
        log.info("int8 written to %s", out_path)
        return result
