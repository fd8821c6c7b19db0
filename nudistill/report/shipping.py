"""The report of a cluster distill-and-export run: the shipped model's latency certificate and its
evaluation (full and half resolution), as JSON, a latency histogram and ``report.md`` beside the model.

The certificate is the one the export wrote into the model (contract 3), measured in a clean process; this
torch-loaded process never times the model, and the histogram is drawn from the certificate's own samples.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nudistill.report import figures


def shipped_certificate(model: str | Path, calls: int = 1000) -> dict:
    """The latency certificate in ``model``'s metadata; a model shipped without one is certified now (clean process)."""
    from nudistill.export.metadata import read_metadata
    from nudistill.online.latency import certify

    cert = json.loads(read_metadata(model).get("metrics") or "{}").get("latency")
    return cert if cert and cert.get("samples_ms") else certify(model, calls=calls)


def write_shipping_report(model: str | Path, events: str, labels: str | None, out: str | Path,
                          calls: int = 1000, limit: int | None = 2000) -> Path:
    """Evaluate ``model`` (ONNX) and report its certificate; write bench.json, evaluation.json, latency.png, report.md."""
    from nudistill.student.evaluate import evaluate

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cert = shipped_certificate(model, calls)
    evaluation = evaluate(model, events, labels, limit=limit)
    (out / "bench.json").write_text(json.dumps(cert, indent=2))
    (out / "evaluation.json").write_text(json.dumps(evaluation, indent=2, default=str))
    figures.latency_histogram(np.asarray(cert["samples_ms"]), out / "latency.png")
    full, half = evaluation.get("full", {}), evaluation.get("half", {})
    lines = [f"# Shipped model `{Path(model).name}`", "",
             "| | accuracy | macro AUC | agreement with teacher | p50 ms | p99 ms | RSS MB |", "|---|---|---|---|---|---|---|",
             f"| full resolution | {full.get('accuracy', float('nan')):.3f} | {full.get('macro_auc', float('nan')):.3f} | "
             f"{full.get('agreement', float('nan')):.3f} | {cert['p50_ms']} | {cert['p99_ms']} | {cert.get('rss_mb')} |",
             f"| half resolution | {half.get('accuracy', float('nan')):.3f} | {half.get('macro_auc', float('nan')):.3f} | "
             f"{half.get('agreement', float('nan')):.3f} | | | |", "",
             f"Measured on {cert['cpu']}, batch 1, 1 thread, {cert['calls']} calls.", "", "![latency](latency.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    return out / "report.md"
