"""The demo's stages. Each is ``stage(run, cfg, done) -> dict``: it writes RUN/<stage>/ and returns the
numbers later stages and the final table need; ``done`` holds the results of the stages before it.
Each stage is either resumable itself (fine-tune, labelling, distillation) or cheap to redo.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from nudistill import CLASSES, CONCEPTS
from nudistill.demo.config import DemoConfig


def simulate(run: Path, cfg: DemoConfig, done: dict) -> dict:
    """Train, calibration and test sets: disjoint slices of one simulated run, read out by the nominal detector.

    With ``train_detector=randomized`` the train events are also written read out by a randomised
    detector (one draw per event; the simulator gives an event the same physics under either): the
    teacher fine-tunes on truth over both. The teacher labels the nominal train events and the student
    learns those labels through the same detector randomisation as augmentation: an NC event with a cosmic
    muon overlaid keeps its clean NC target instead of the numu_cc the teacher may call it. The calibration
    events are written under a randomised detector too: the student's calibration fits both readouts, so its
    class bias holds over the conditions it will meet rather than the nominal one alone.
    """
    from nudistill.simulate import SimConfig

    sizes = {"train": cfg.events, "calib": cfg.calib_events, "test": cfg.test_events}
    out, start = {}, 0
    for name, n in sizes.items():
        out[name] = _simulate_set(SimConfig(n=n, res=cfg.res, seed=cfg.seed, start=start, rows_per_file=500,
                                            out=str(run / "simulate" / name)))
        start += n
    out["teacher_train"], out["student_calib"] = out["train"], [out["calib"]]
    if cfg.train_detector == "randomized":
        out["teacher_train"] = _simulate_set(SimConfig(n=cfg.events, res=cfg.res, seed=cfg.seed, rows_per_file=500,
                                                       detector="randomized",
                                                       out=str(run / "simulate" / "train_randomized")))
        out["student_calib"] = [out["calib"], _simulate_set(SimConfig(
            n=cfg.calib_events, res=cfg.res, seed=cfg.seed, start=cfg.events, rows_per_file=500, detector="randomized",
            out=str(run / "simulate" / "calib_randomized")))]
    return out | {"sizes": sizes}


def _simulate_set(sim) -> str:
    from nudistill.simulate import run as simulate_run

    simulate_run(sim)  # `nudistill simulate`'s run: the events and their _simulate.json
    return str(sim.out)


def teacher(run: Path, cfg: DemoConfig, done: dict) -> dict:
    """Build the tiny Mllama teacher and fine-tune it (full, from scratch) on the train set's truth: each event
    read out by the nominal detector and, with ``train_detector=randomized``, once more by a randomised one.

    Both readouts, not the randomised one alone: on the default demo the teacher's calibration-set accuracy
    rose from 0.817 to 0.867 (NLL 0.483 -> 0.356), same steps, same events."""
    from nudistill.teacher.finetune import FinetuneConfig
    from nudistill.teacher.stages import TeacherInitConfig, finetune_teacher, run_init

    base = run / "teacher" / "init"
    if not base.is_dir():  # built aside and renamed, so a kill mid-build leaves no half teacher behind
        tmp = run / "teacher" / "init.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        run_init(TeacherInitConfig(out=str(tmp)))
        tmp.rename(base)
    sets = done["simulate"]
    randomized = [sets["teacher_train"]] if cfg.train_detector == "randomized" else []
    ft = FinetuneConfig(base=str(base), events=sets["train"], more_events=randomized,
                        out=str(run / "teacher" / "model"),
                        mode="full", max_steps=cfg.teacher_steps, epochs=1000.0, batch_size=16,
                        vision_warmup=cfg.vision_warmup)
    result = finetune_teacher(ft)
    return {"dir": result.out, "steps": result.steps, "seconds": round(result.seconds, 1),
            "final_loss": result.history[-1].get("loss") if result.history else None}


def calibrate(run: Path, cfg: DemoConfig, done: dict) -> dict:
    """Fit the teacher's temperature on the calibration set (Guo et al. 2017); store it in teacher.json."""
    from nudistill.teacher.stages import CalibrateConfig, calibrate_teacher

    out = calibrate_teacher(CalibrateConfig(teacher=done["teacher"]["dir"], events=done["simulate"]["calib"]))
    (run / "calibrate").mkdir(parents=True, exist_ok=True)
    (run / "calibrate" / "calibration.json").write_text(json.dumps(out, indent=2))
    return out


def label(run: Path, cfg: DemoConfig, done: dict) -> dict:
    """Label the train set with the Ray labelling job on an embedded local Ray."""
    from nudistill.label import LabelConfig, run_label

    summary = run_label(LabelConfig(events=done["simulate"]["train"], teacher=done["teacher"]["dir"],
                                    out=str(run / "label"), replicas=cfg.replicas, rationale=cfg.rationale))
    busy = [r["events_per_busy_s"] for r in summary["replicas"].values() if r.get("events_per_busy_s")]
    return {"dir": str(run / "label"), "ok": summary["ok"], "events_per_s": summary["events_per_s"],
            "events_per_s_per_replica": float(np.mean(busy)) if busy else None, "teacher_id": summary["teacher_id"]}


def distill(run: Path, cfg: DemoConfig, done: dict) -> dict:
    """Distil the teacher's soft labels and rationale concepts into the default student (with the train events'
    truth as the hard target, weighted 1 - ``student_alpha``), then calibrate its class
    scores on the held-out calibration events against truth (as the teacher's) and fit its concept probe on the
    truth concepts of every simulated event outside the test set (train and calibration, both readouts)."""
    from nudistill.student.config import DistillConfig
    from nudistill.student.registry import DEFAULT_STUDENT
    from nudistill.student.run import run_distill

    sim = done["simulate"]
    calib = sim.get("student_calib", [sim["calib"]])  # a run simulated before calib_randomized existed: nominal only
    result = run_distill(DistillConfig(events=sim["train"], labels=done["label"]["dir"], out=str(run / "distill"),
                                       student=cfg.student or DEFAULT_STUDENT, epochs=cfg.student_epochs,
                                       alpha=cfg.student_alpha, hard_labels="truth",
                                       calibration_events=calib, concept_events=list(dict.fromkeys(
                                           [sim["train"], sim.get("teacher_train", sim["train"]), *calib]))))
    return {"dir": str(run / "distill"), **{k: v for k, v in result.items() if isinstance(v, (int, float, str))}}


def export(run: Path, cfg: DemoConfig, done: dict) -> dict:
    """Export to ONNX with checks; int8 too where it passes its gates (refusal is recorded, not fatal)."""
    from nudistill.export.pipeline import ExportConfig, export_checkpoint

    result = export_checkpoint(ExportConfig(checkpoint=done["distill"]["dir"], out=str(run / "export" / "model.onnx"),
                                            events=done["simulate"]["test"], teacher=done["label"]["teacher_id"],
                                            int8=True, calibration=done["simulate"]["calib"],
                                            calibration_events=min(256, cfg.calib_events)))
    (run / "export" / "export.json").write_text(json.dumps(result, indent=2, default=str))
    return {"model": str(run / "export" / "model.onnx"), "int8": result.get("int8")}


def bench(run: Path, cfg: DemoConfig, done: dict) -> dict:
    """Latency certificate in a fresh process (no torch, no Ray in memory), written into the shipped model;
    its samples (bench.json) feed the report's histogram."""
    from nudistill.export.certificate import BenchConfig, run_bench

    (run / "bench").mkdir(parents=True, exist_ok=True)
    cert = run_bench(BenchConfig(model=done["export"]["model"], calls=cfg.bench_calls, write_certificate=True))
    (run / "bench" / "bench.json").write_text(json.dumps(cert, indent=2))
    return cert


def evaluate(run: Path, cfg: DemoConfig, done: dict) -> dict:
    """Teacher and student against truth on the test set, at full and half resolution."""
    from nudistill.demo.evaluation import evaluate_run

    return evaluate_run(run, done)


def robustness(run: Path, cfg: DemoConfig, done: dict) -> dict:
    """The shipped student and the teacher on every named detector shift of the test set (the same bytes for both)."""
    from nudistill.robustness import RobustnessConfig, headline, run_robustness

    models = {"student": done["export"]["model"], "teacher": done["teacher"]["dir"]}
    return {name: headline(run_robustness(RobustnessConfig(model=model, events=done["simulate"]["test"],
                                                           out=str(run / "robustness" / name), seed=cfg.seed,
                                                           limit=cfg.robustness_events)))
            for name, model in models.items()}


def report(run: Path, cfg: DemoConfig, done: dict) -> dict:
    from nudistill.report import write_report

    return {"report": str(write_report(run))}


STAGES = [simulate, teacher, calibrate, label, distill, export, bench, evaluate, robustness, report]
__all__ = ["STAGES", "CLASSES", "CONCEPTS"]
