"""The exported graph: a student wrapped so that the ONNX file maps raw uint8 views to probabilities.

The student's own ``forward`` does the preprocessing (uint8 -> float, pooling, ADC scale); the wrapper adds
softmax and sigmoid so the online filter reads probabilities directly (contract 3). Tracing uses batch 2
with N marked dynamic, so batch 1 is not baked into any reshape (STYLE 5).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nudistill.online import INPUTS, OUTPUTS

OPSET = 17
"""Pinned ONNX opset: supported by every onnxruntime >= 1.14 and by its int8 quantizer."""
TRACE_BATCH = 2


class ScoringHead(nn.Module):
    """``(xz, yz)`` uint8 ``(N, H, W)`` -> ``(probs (N, 3), concepts (N, K))`` float32."""

    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student

    def forward(self, xz: torch.Tensor, yz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        class_logits, concept_logits = self.student(xz, yz)
        return torch.softmax(class_logits, dim=-1), torch.sigmoid(concept_logits)


def export_graph(student: nn.Module, path: str | Path, opset: int = OPSET) -> Path:
    """Trace ``student`` (eval mode) with batch 2 and write a bare ONNX graph (no metadata yet)."""
    head = ScoringHead(student).eval()
    h, w = student.cfg.height, student.cfg.width
    dummy = torch.zeros(TRACE_BATCH, h, w, dtype=torch.uint8)  # (2, H, W) uint8
    dynamic = {name: {0: "N"} for name in (*INPUTS, *OUTPUTS)}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of dynamo=True, which needs onnxscript (not a
        # dependency); for a plain CNN both give the same graph.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        # the noise floor samples the input every 8th pixel (a strided Slice): nothing there to fold
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        torch.onnx.export(head, (dummy, dummy), str(path), dynamo=False, opset_version=opset,
                          input_names=list(INPUTS), output_names=list(OUTPUTS), dynamic_axes=dynamic,
                          do_constant_folding=True)
    return Path(path)


def torch_scores(student: nn.Module, views, batch_size: int = 64) -> tuple:
    """PyTorch reference outputs for ``views`` (n, 2, H, W) uint8 numpy: (probs (n, 3), concepts (n, K))."""
    head = ScoringHead(student).eval()
    probs, concepts = [], []
    with torch.no_grad():
        for lo in range(0, len(views), batch_size):
            v = torch.from_numpy(np.ascontiguousarray(views[lo: lo + batch_size]))
            p, c = head(v[:, 0], v[:, 1])
            probs.append(p.numpy())
            concepts.append(c.numpy())
    return np.concatenate(probs), np.concatenate(concepts)
