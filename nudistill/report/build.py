"""``report.md`` of a run directory: figures plus the numbers beside the study's (arXiv 2509.08461).

Reads what the demo stages leave (RUN/evaluate, RUN/bench, RUN/label, RUN/teacher_calibrate, RUN/robustness,
RUN/summary.json);
a missing piece leaves its section out with a note instead of failing the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nudistill import CLASSES, CONCEPTS
from nudistill.errors import UserError
from nudistill.report import figures

ROBUSTNESS = "Accuracy under detector shifts"
"""Title of the robustness figure, with each model's table below it."""

# The study's numbers: LLaMA 3.2 Vision 11B (QLoRA) vs a Siamese MobileNetV2-style CNN, on its own data.
PAPER = {
    "VLM teacher (paper)": {"accuracy": 0.87, "auc": 0.96, "time": "3.3 s", "memory": "25 GB", "half_res_acc": 0.85},
    "CNN (paper)": {"accuracy": 0.68, "auc": 0.93, "time": "20 ms", "memory": "1 GB", "half_res_acc": 0.49},
}


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def comparison_table(summary: dict) -> str:
    """Markdown table: this run's teacher and student beside the paper's VLM and CNN."""
    rows = [
        ("tiny VLM teacher (this run)", summary.get("teacher_accuracy"), summary.get("teacher_auc"),
         summary.get("teacher_s_per_event") and f"{summary['teacher_s_per_event'] * 1e3:.1f} ms",
         summary.get("teacher_rss_mb") and f"{summary['teacher_rss_mb']:.0f} MB", summary.get("teacher_accuracy_half")),
        ("student CNN (this run)", summary.get("student_accuracy"), summary.get("student_auc"),
         summary.get("student_p50_ms") and f"{summary['student_p50_ms']:.2f} ms",
         summary.get("student_rss_mb") and f"{summary['student_rss_mb']:.0f} MB", summary.get("student_accuracy_half")),
    ]
    rows += [(k, v["accuracy"], v["auc"], v["time"], v["memory"], v["half_res_acc"]) for k, v in PAPER.items()]
    out = ["| model | accuracy | macro AUC | time per event | memory | accuracy at half resolution |",
           "|---|---|---|---|---|---|"]
    out += [f"| {name} | {_fmt(a)} | {_fmt(auc)} | {t or '—'} | {m or '—'} | {_fmt(h)} |" for name, a, auc, t, m, h in rows]
    return "\n".join(out)


def _examples(run: Path, fig_dir: Path) -> Path | None:
    ex = _json(run / "evaluate" / "examples.json")
    views_path = run / "evaluate" / "examples.npy"
    if not ex or not views_path.is_file():
        return None
    views = np.load(views_path)
    titles = [f"{e['event_id']} truth {e['label']}" for e in ex]
    captions = []
    for e in ex:
        concepts = ", ".join(f"{n} {p:.2f}" for n, p in e["student_concepts"][:3])
        captions.append(f"truth: {e['label']}  concepts: {', '.join(e['truth_concepts']) or '—'}\n"
                        f"teacher: {e['teacher_pred']} ({e['teacher_conf']:.2f})\n"
                        f"  \"{e['rationale'] or '(no rationale)'}\"\n"
                        f"student: {e['student_pred']} ({e['student_conf']:.2f})\n  top concepts: {concepts}")
    return figures.example_grid(views, captions, titles, fig_dir / "examples.png")


def write_report(run_dir: str | Path) -> Path:
    """Draw every figure the run allows and write ``RUN/report/report.md``; returns its path."""
    run = Path(run_dir)
    pred_path = run / "evaluate" / "predictions.npz"
    if not pred_path.is_file():
        raise UserError(f"{run} has no evaluate/predictions.npz; run the evaluate stage (or `nudistill demo`) first")
    out = run / "report"
    p = dict(np.load(pred_path))
    y = p["y"]
    figs: dict[str, Path | None] = {}
    figs["ROC curves per class"] = figures.roc_curves(y, {"teacher": p["teacher_full"], "student": p["student_full"]}, out / "roc.png")
    figs["Confusion matrices"] = figures.confusion_matrices(y, {"teacher": p["teacher_full"], "student": p["student_full"]}, out / "confusion.png")
    rel = {"teacher (uncalibrated)": p["teacher_uncal_full"], "teacher": p["teacher_full"], "student": p["student_full"]}
    figs["Reliability before and after calibration"] = figures.reliability(y, rel, out / "reliability.png")
    acc = {m: {r: float((p[f"{m}_{r}"].argmax(1) == y).mean()) for r in ("full", "half")} for m in ("teacher", "student")}
    figs["Accuracy at full vs half resolution"] = figures.resolution_bars(acc, out / "resolution.png")
    samples = (_json(run / "bench" / "bench.json") or {}).get("samples_ms")  # the certificate's own batch-1 times
    figs["Scoring latency"] = figures.latency_histogram(np.asarray(samples), out / "latency.png") if samples else None
    figs["Example events"] = _examples(run, out)
    robust = {m: r for m in ("teacher", "student") if (r := _json(run / "robustness" / m / "robustness.json"))}
    figs[ROBUSTNESS] = (figures.robustness_bars({m: r["shifts"] for m, r in robust.items()},
                                            out / "robustness.png") if robust else None)
    summary = _json(run / "summary.json") or {}
    metrics = _json(run / "evaluate" / "metrics.json") or {}
    md = _markdown(run, figs, summary, metrics, {ROBUSTNESS: robustness_section(robust)})
    (out / "report.md").write_text(md)
    return out / "report.md"


def robustness_section(results: dict[str, dict]) -> str:
    """Markdown under the robustness figure: each model's table (RUN/robustness/<model>/robustness.json)."""
    if not results:
        return ""
    from nudistill.robustness import markdown_table  # only when a robustness run exists

    lines = ["Each row applies one named detector condition (docs/contracts.md vocabulary and level) to every test event, "
             "with the same bytes for every model. Δ is the change in accuracy from nominal; a low minimum class "
             "recall or predicted counts piling onto one class mean the shift pushes events into one class.", ""]
    for model, r in results.items():
        lines += [f"### {model} ({r['model']['kind']}, {r['n_events']} events)", "", markdown_table(r["shifts"]), ""]
    return "\n".join(lines)


def _markdown(run: Path, figs: dict, summary: dict, metrics: dict, under: dict[str, str] | None = None) -> str:
    """The report text; ``under`` holds extra markdown (tables) placed below the figure of the same title."""
    lines = [f"# nudistill run report: `{run.name}`", ""]
    if summary:
        lines += ["## This run beside the study", "",
                  "The study's numbers come from its own (real, simulated-detector) dataset and an 11B model on a GPU; "
                  "this run uses the toy simulator, a tiny teacher and this machine's CPU. **Different datasets: compare the "
                  "pattern (teacher vs student, full vs half resolution, cost per event), not the values.**", "",
                  comparison_table(summary), ""]
        if summary.get("speedup_per_event"):
            lines += [f"Student vs teacher cost per event on this machine: **{summary['speedup_per_event']:.0f}x faster**, "
                      f"agreement {_fmt(summary.get('agreement'))}.", ""]
    calib = _json(run / "distill" / "calibration.json")
    if calib:
        lines += ["## Student calibration", "",
                  f"Class logits scaled by 1/T (T = {calib['temperature']:.3f}) and shifted by "
                  + ", ".join(f"{c} {b:+.2f}" for c, b in zip(CLASSES, calib["bias"]))
                  + f", fitted ({calib['mode']}) on {calib['n']} labelled events ({', '.join(map(str, calib['events']))}): "
                  f"NLL {calib['nll_before']:.3f} -> {calib['nll_after']:.3f}, ECE {calib['ece_before']:.3f} -> "
                  f"{calib['ece_after']:.3f}, accuracy {calib['accuracy_before']:.3f} -> {calib['accuracy_after']:.3f} on those events.", ""]
    concept = metrics.get("student_concept_auc") or {}
    if concept:
        lines += ["## Student concepts (AUC against truth)", "",
                  "| " + " | ".join(CONCEPTS) + " | macro |", "|" + "---|" * (len(CONCEPTS) + 1),
                  "| " + " | ".join(_fmt(concept.get(c)) for c in CONCEPTS) + f" | {_fmt(concept.get('macro'))} |", ""]
        probe = _json(run / "distill" / "concept_probe.json")
        lines += [f"From the concept probe fitted on the truth concepts of {probe['n']} events "
                  f"({', '.join(map(str, probe['events']))}; held-out AUC on {probe['held_out']} of them: macro "
                  f"{_fmt(probe['held_out_auc'].get('macro'))}), in place of the concept head distilled from the "
                  "teacher's rationales.", ""] if probe else \
                 ["From the concept head distilled from the teacher's rationales.", ""]
    for title, path in figs.items():
        lines += [f"## {title}", ""]
        lines += [f"![{title}]({path.name})", ""] if path else ["(not available in this run)", ""]
        if (under or {}).get(title):
            lines += [under[title]]
    lines += ["Classes are in contract order: " + ", ".join(CLASSES) + ".", ""]
    return "\n".join(lines)


@dataclass
class ReportConfig:
    """Draw a run's figures and write RUN/report/report.md (``nudistill report``)."""

    run_dir: str
    """A run directory made by `nudistill demo` or ray_jobs/distill_and_export.py."""


def run_report(cfg: ReportConfig) -> Path:
    """Write the report of ``cfg.run_dir`` and its config as RUN/report/report_config.json; return report.md."""
    from nudistill.config import save_config

    path = write_report(cfg.run_dir)
    save_config(cfg, path.parent / "report_config.json")
    return path
