"""Run the demo's stages in order, skipping finished ones, and print the final table.

A stage is finished when RUN/<stage>/_done.json exists (written after it succeeds, with its resolved
config and results); an interrupted stage has none, so a rerun resumes it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from nudistill.config import config_dict, save_config
from nudistill.demo.config import DemoConfig
from nudistill.demo.stages import STAGES
from nudistill.log import say

DONE = "_done.json"


def run_demo(cfg: DemoConfig) -> dict:
    """Run (or resume) every stage; write RUN/summary.json and return it."""
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run / "demo_config.json")
    done: dict = {}
    told = False  # changed settings are named once, at the first finished stage that ran with others
    t_start = time.perf_counter()
    for k, stage in enumerate(STAGES, 1):
        name = stage.__name__
        marker = run / name / DONE
        if marker.is_file():
            record = json.loads(marker.read_text())
            done[name] = record["result"]
            changed = "" if told else changed_settings(record.get("config", {}), config_dict(cfg))
            told = told or bool(changed)
            say(f"[{k}/{len(STAGES)}] {name:<10} done earlier, skipped" + (
                f" (finished stages ran with {changed}; delete {run}/<stage> of each stage to redo with this run's)"
                if changed else ""))
            continue
        say(f"[{k}/{len(STAGES)}] {name:<10} ...")
        t0 = time.perf_counter()
        done[name] = stage(run, cfg, done)
        seconds = time.perf_counter() - t0
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"config": config_dict(cfg), "seconds": round(seconds, 1),
                                      "result": done[name]}, indent=2, default=str))
        say(f"[{k}/{len(STAGES)}] {name:<10} finished in {seconds:.0f} s")
    summary = final_summary(done)
    summary["wall_s_this_run"] = round(time.perf_counter() - t_start, 1)
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    from nudistill.report import write_report

    write_report(run)  # again, now that summary.json holds the final table
    say(final_table(summary))
    say(f"report: {run / 'report' / 'report.md'}")
    return summary


def changed_settings(then: dict, now: dict) -> str:
    """The demo settings a finished stage ran with that differ from this run's ("" when none); ``out`` is
    left out (a moved run directory is the same run)."""
    diff = [f"{key} {then.get(key, 'unset')} (now {now[key]})" for key in now
            if key != "out" and then.get(key, "unset") != now[key]]
    return ", ".join(diff)


def final_summary(done: dict) -> dict:
    ev, bench, label = done["evaluate"], done["bench"], done["label"]
    teacher_s = 1.0 / label["events_per_s_per_replica"] if label.get("events_per_s_per_replica") else None
    return {
        "teacher_accuracy": ev["teacher_full"]["accuracy"], "teacher_auc": ev["teacher_full"]["macro_auc"],
        "teacher_accuracy_half": ev["teacher_half"]["accuracy"],
        "student_accuracy": ev["student_full"]["accuracy"], "student_auc": ev["student_full"]["macro_auc"],
        "student_accuracy_half": ev["student_half"]["accuracy"], "agreement": ev["student_full"]["agreement"],
        "student_concept_auc_macro": ev["student_concept_auc_macro"],
        "student_p50_ms": bench["p50_ms"], "student_p99_ms": bench["p99_ms"], "student_rss_mb": bench.get("rss_mb"),
        "teacher_events_per_s": label["events_per_s"], "teacher_s_per_event": teacher_s,
        "speedup_per_event": teacher_s / (bench["p50_ms"] / 1e3) if teacher_s else None,
        "n_test": ev["n_test"], "teacher_id": label["teacher_id"], "int8": done["export"].get("int8"),
    }


def final_table(s: dict) -> str:
    def f(v, spec=".3f"):
        return "—" if v is None else format(v, spec)

    rows = [
        ("", "teacher (tiny VLM)", "student (ONNX)"),
        ("accuracy, full res", f(s["teacher_accuracy"]), f(s["student_accuracy"])),
        ("accuracy, half res", f(s["teacher_accuracy_half"]), f(s["student_accuracy_half"])),
        ("macro AUC", f(s["teacher_auc"]), f(s["student_auc"])),
        ("agreement", "", f(s["agreement"])),
        ("cost per event", f"{f(s['teacher_s_per_event'] and s['teacher_s_per_event'] * 1e3, '.1f')} ms",
         f"p50 {f(s['student_p50_ms'], '.2f')} / p99 {f(s['student_p99_ms'], '.2f')} ms"),
        ("throughput", f"{f(s['teacher_events_per_s'], '.1f')} events/s (Ray, all replicas)", ""),
        ("speed-up per event", "", f"{f(s['speedup_per_event'], '.0f')}x"),
    ]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(width[i]) for i, c in enumerate(r)) for r in rows]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]]) + f"\n(test set: {s['n_test']} simulated events)"
