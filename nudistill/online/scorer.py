"""The online scorer: load a contract-3 ONNX model and score raw two-view pixel maps (docs/contracts.md).

This module imports only numpy, onnxruntime and the standard library, never torch or ray, so a
trigger-adjacent filter can copy it alone beside the model file: an online filter must score an event
well under the study's 20 ms budget (arXiv 2509.08461) without a deep-learning framework in memory. A
test imports it where torch and ray cannot be imported.

    from nudistill.online import Scorer
    scorer = Scorer("model.onnx")            # 1 intra-op thread, no spinning, warmed up
    out = scorer.score(xz, yz)               # (H, W) or (N, H, W) uint8 -> {"probs", "concepts"}
    keep = scorer.select(xz, yz, {"nue_cc": 0.5})

Which file is loaded: export writes ``model.onnx`` (portable, standard ONNX ops) and beside it
``model.opt.onnx``, the same graph optimised offline by onnxruntime at the *extended* level (fused
conv+activation, folded constants; CPU-provider ops, but no hardware-specific layout). Given
``model.onnx``, the scorer loads ``model.opt.onnx`` when it exists and is not older, because the
session then starts faster; the hardware-specific NCHWc layout pass still runs at load, for this CPU.
``optimized=False`` loads exactly the file named.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import onnxruntime as ort

INPUTS: tuple[str, str] = ("xz", "yz")
"""Graph input names, uint8 [N, H, W] each (contract 3)."""
OUTPUTS: tuple[str, str] = ("probs", "concepts")
"""Graph output names, float32 [N, 3] and [N, K] (contract 3)."""
METADATA_KEYS: tuple[str, ...] = (
    "classes", "concepts", "height", "width", "teacher", "student", "metrics", "nudistill_version", "created",
)
"""metadata_props every shipped model carries (contract 3)."""
OPTIMIZED_SUFFIX = ".opt.onnx"
"""The offline-optimised graph sits beside ``model.onnx`` as ``model.opt.onnx``."""


def optimized_path(path: str | os.PathLike) -> Path:
    """``model.onnx`` -> ``model.opt.onnx`` (the offline-optimised sibling)."""
    path = Path(path)
    stem = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.name
    return path.with_name(stem + OPTIMIZED_SUFFIX)


def read_contract(meta: Mapping[str, str], where: str = "model") -> dict[str, Any]:
    """Parse and validate contract-3 metadata; raise ValueError naming the missing or bad key."""
    missing = [k for k in METADATA_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{where} lacks the contract-3 metadata {', '.join(missing)}; export it with `nudistill export`")
    try:
        classes, concepts = json.loads(meta["classes"]), json.loads(meta["concepts"])
        height, width = int(meta["height"]), int(meta["width"])
        metrics = json.loads(meta["metrics"])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where} has unreadable contract-3 metadata: {exc}") from None
    if not (isinstance(classes, list) and len(classes) == 3 and len(set(classes)) == 3):
        raise ValueError(f"{where}: metadata classes must list 3 distinct names, got {meta['classes']}")
    if not (isinstance(concepts, list) and len(set(concepts)) == len(concepts)):
        raise ValueError(f"{where}: metadata concepts must list distinct names, got {meta['concepts']}")
    if height <= 0 or width <= 0:
        raise ValueError(f"{where}: metadata height and width must be positive, got {height}x{width}")
    return {"classes": tuple(classes), "concepts": tuple(concepts), "height": height, "width": width,
            "metrics": metrics, "teacher": meta["teacher"], "student": meta["student"],
            "nudistill_version": meta["nudistill_version"], "created": meta["created"]}


def session_options(threads: int = 1, spin: bool = False, optimize: bool = True) -> ort.SessionOptions:
    """Options for a latency-bound filter: ``threads`` intra-op threads, one inter-op, spinning off by default.

    Spinning threads burn a core while idle between events, which a filter sharing its node cannot afford.
    """
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.log_severity_level = 3  # errors only: the NCHWc notice is expected
    spin_flag = "1" if spin else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin_flag)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin_flag)
    return so


class Scorer:
    """Scores events with a contract-3 model; the contract is read from the file, not assumed."""

    def __init__(self, path: str | os.PathLike, threads: int = 1, spin: bool = False,
                 optimized: bool = True, warmup: int = 3):
        if int(threads) < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path} is not a file")
        opt = optimized_path(path)
        use_opt = optimized and opt != path and opt.is_file() and opt.stat().st_mtime >= path.stat().st_mtime
        self.path = opt if use_opt else path
        self.threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), session_options(threads, spin),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
            raise ValueError(f"{self.path} is not a loadable ONNX model: {exc}") from None
        self.contract = read_contract(self.session.get_modelmeta().custom_metadata_map, str(self.path))
        self.classes: tuple[str, ...] = self.contract["classes"]
        self.concepts: tuple[str, ...] = self.contract["concepts"]
        self.shape: tuple[int, int] = (self.contract["height"], self.contract["width"])
        self._check_graph()
        for _ in range(warmup):
            self.score(np.zeros(self.shape, np.uint8), np.zeros(self.shape, np.uint8))

    def _check_graph(self) -> None:
        """The graph's inputs and outputs must match the contract and the metadata."""
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if set(inputs) != set(INPUTS) or not set(OUTPUTS) <= set(outputs):
            raise ValueError(f"{self.path}: graph inputs {sorted(inputs)} / outputs {sorted(outputs)} break contract 3 "
                             f"(want inputs {list(INPUTS)}, outputs {list(OUTPUTS)})")
        for name in INPUTS:
            node = inputs[name]
            if node.type != "tensor(uint8)" or len(node.shape) != 3 or tuple(node.shape[1:]) != self.shape:
                raise ValueError(f"{self.path}: input {name} is {node.type}{node.shape}, metadata says uint8[N, "
                                 f"{self.shape[0]}, {self.shape[1]}]")
        for name, k in zip(OUTPUTS, (len(self.classes), len(self.concepts))):
            dim = outputs[name].shape[-1]
            if isinstance(dim, int) and dim != k:
                raise ValueError(f"{self.path}: output {name} has {dim} columns, metadata names {k}")

    def _check_view(self, name: str, view: Any) -> np.ndarray:
        """One view as a C-contiguous uint8 (N, H, W) array, or ValueError naming what is wrong."""
        if not isinstance(view, np.ndarray):
            raise ValueError(f"{name} must be a numpy array, got {type(view).__name__}")
        if view.dtype != np.uint8:
            raise ValueError(f"{name} has dtype {view.dtype}, the model wants uint8 raw pixel maps")
        if view.ndim not in (2, 3):
            raise ValueError(f"{name} has shape {view.shape}; want (H, W) for one event or (N, H, W) for a batch")
        if tuple(view.shape[-2:]) != self.shape:
            raise ValueError(f"{name} has resolution {view.shape[-2]}x{view.shape[-1]}, the model wants "
                             f"{self.shape[0]}x{self.shape[1]}")
        view = np.asarray(view)  # drops ndarray subclasses (matrix, memmap) before reshaping
        view = view[None] if view.ndim == 2 else view
        if view.shape[0] == 0:
            raise ValueError(f"{name} is an empty batch (0 events)")
        return np.ascontiguousarray(view)  # copies only strided or non-C-ordered input

    def score(self, xz: np.ndarray, yz: np.ndarray) -> dict[str, np.ndarray]:
        """Score one event ((H, W) views) or a batch ((N, H, W) views).

        Returns ``{"probs": (N, 3), "concepts": (N, K)}`` float32, or ``(3,)`` and ``(K,)`` for one event.
        """
        a, b = self._check_view("xz", xz), self._check_view("yz", yz)
        if np.ndim(xz) != np.ndim(yz) or a.shape[0] != b.shape[0]:
            raise ValueError(f"xz and yz differ in batch: xz {np.shape(xz)}, yz {np.shape(yz)}")
        probs, concepts = self.session.run(list(OUTPUTS), {"xz": a, "yz": b})
        if np.ndim(xz) == 2:
            return {"probs": probs[0], "concepts": concepts[0]}
        return {"probs": probs, "concepts": concepts}

    def select(self, xz: np.ndarray, yz: np.ndarray, thresholds: Mapping[str, float]) -> np.ndarray | bool:
        """The filter decision: keep an event when any named class or concept reaches its threshold."""
        return apply_policy(self.score(xz, yz), thresholds, self.classes, self.concepts)


def apply_policy(scores: Mapping[str, np.ndarray], thresholds: Mapping[str, float],
                 classes: tuple[str, ...], concepts: tuple[str, ...]) -> np.ndarray | bool:
    """Keep mask (N,) bool (or one bool) for ``thresholds`` such as ``{"nue_cc": 0.5}``; keys are ORed."""
    if not thresholds:
        raise ValueError("a filter policy needs at least one threshold, e.g. {'nue_cc': 0.5}")
    probs = np.atleast_2d(scores["probs"])
    concept_probs = np.atleast_2d(scores["concepts"])
    keep = np.zeros(probs.shape[0], dtype=bool)
    for name, p in thresholds.items():
        try:
            p = float(p)
        except (TypeError, ValueError):
            p = float("nan")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"threshold for {name!r} must be a probability in [0, 1], got {thresholds[name]!r}")
        if name in classes:
            keep |= probs[:, classes.index(name)] >= p
        elif name in concepts:
            keep |= concept_probs[:, concepts.index(name)] >= p
        else:
            raise ValueError(f"{name!r} is neither a class ({', '.join(classes)}) nor a concept ({', '.join(concepts)})")
    return bool(keep[0]) if np.ndim(scores["probs"]) == 1 else keep
