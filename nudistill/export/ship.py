"""``distill_and_export(cfg)``: the cluster path in one call (``ray_jobs/distill_and_export.py``).

Ray Train distillation, a checked ONNX export, then the shipping report (bench.json, evaluation.json,
latency.png, report.md) beside the checkpoint. Each step is the same library call its own verb makes.
"""

from __future__ import annotations

from pathlib import Path

from nudistill.student.config import DistillConfig


def distill_and_export(cfg: DistillConfig, onnx: str | None = None) -> dict:
    """Train ``cfg`` under Ray Train, export to ``onnx`` (default OUT/model.onnx) and report; return both reports."""
    from nudistill.export.pipeline import ExportConfig, export_checkpoint
    from nudistill.report.shipping import write_shipping_report
    from nudistill.student.run import run_distill

    run_distill(cfg, use_ray=True)  # on a cluster, the workers land on worker nodes, not on the head
    onnx = onnx or str(Path(cfg.out) / "model.onnx")
    report = export_checkpoint(ExportConfig(checkpoint=cfg.out, out=onnx, events=cfg.events))
    return {"export": report, "report": str(write_shipping_report(onnx, cfg.events, cfg.labels, cfg.out))}
