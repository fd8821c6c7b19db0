"""The demo's evaluation: teacher and shipped student against truth on the test set, full and half resolution.

Writes RUN/evaluate/predictions.npz (arrays for the report), metrics.json and a few example events with
the teacher's rationale and the student's top concepts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nudistill import CLASSES, CONCEPTS, metrics
from nudistill.events import concepts_to_multi_hot, read_labelled

N_EXAMPLES = 6


def load_test(uri: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """Valid labelled test events: views (N, 2, H, W), y (N,), truth concepts (N, K), other columns."""
    data = read_labelled(uri, extra=("concepts",))
    return data.views, data.y, concepts_to_multi_hot([r.get("concepts") for r in data.rows]), data.rows


def _teacher_probs(teacher_dir: str, views: np.ndarray, half: np.ndarray) -> dict[str, np.ndarray]:
    from nudistill.teacher import load_teacher

    t = load_teacher(teacher_dir)
    logp_full = t.logprobs(views)
    return {"teacher_full": t.probs_from_logprobs(logp_full), "teacher_half": t.score(half),
            "teacher_uncal_full": metrics.softmax(logp_full), "_teacher": t}


def _student_probs(model: str, events: str, y: np.ndarray) -> dict[str, np.ndarray]:
    """The shipped model at full and half resolution, as ``nudistill evaluate`` scores it (same events, same order)."""
    from nudistill.student.evaluate import collect, open_model

    arrays = collect(open_model(model), events)["arrays"]
    if not np.array_equal(arrays["truth"], y):
        raise RuntimeError(f"{events}: the student's events are not the teacher's (order or validity differ)")
    return {"student_full": arrays["full"], "student_half": arrays["half"], "student_concepts": arrays["full_concepts"]}


def _examples(run: Path, teacher, views, y, rows, p: dict) -> None:
    """One event per class first, then the most confident disagreements between teacher and student."""
    picks = [int(np.flatnonzero(y == c)[0]) for c in range(len(CLASSES)) if (y == c).any()]
    disagree = np.flatnonzero(p["teacher_full"].argmax(1) != p["student_full"].argmax(1))
    picks += [int(i) for i in disagree if int(i) not in picks][: N_EXAMPLES - len(picks)]
    picks += [i for i in range(len(y)) if i not in picks][: N_EXAMPLES - len(picks)]
    tp = p["teacher_full"][picks]
    rationales = teacher.rationales(views[picks], tp.argmax(1))
    ex = []
    for k, i in enumerate(picks):
        conc = p["student_concepts"][i]
        ex.append({"event_id": rows[i]["event_id"], "label": rows[i]["label"], "truth_concepts": rows[i]["concepts"],
                   "teacher_pred": CLASSES[int(tp[k].argmax())], "teacher_conf": float(tp[k].max()),
                   "rationale": rationales[k], "student_pred": CLASSES[int(p["student_full"][i].argmax())],
                   "student_conf": float(p["student_full"][i].max()),
                   "student_concepts": [[CONCEPTS[j], float(conc[j])] for j in np.argsort(-conc)]})
    np.save(run / "evaluate" / "examples.npy", views[picks])
    (run / "evaluate" / "examples.json").write_text(json.dumps(ex, indent=2))


def evaluate_run(run: Path, done: dict) -> dict:
    """Evaluate teacher and student on the demo's test set; return the headline numbers."""
    from nudistill.shifts import degrade_resolution

    views, y, truth_concepts, rows = load_test(done["simulate"]["test"])
    half = degrade_resolution(views, 2)
    p = _teacher_probs(done["teacher"]["dir"], views, half)
    teacher = p.pop("_teacher")
    p |= _student_probs(done["export"]["model"], done["simulate"]["test"], y)
    (run / "evaluate").mkdir(parents=True, exist_ok=True)
    np.savez(run / "evaluate" / "predictions.npz", y=y, truth_concepts=truth_concepts, **p)
    m = {f"{who}_{res}": metrics.classification_report(y, p[f"{who}_{res}"], reference=p[f"teacher_{res}"] if who == "student" else None)
         for who in ("teacher", "student") for res in ("full", "half")}
    m["teacher_uncal_full"] = metrics.classification_report(y, p["teacher_uncal_full"])
    m["student_concept_auc"] = metrics.concept_auc(truth_concepts, p["student_concepts"])
    (run / "evaluate" / "metrics.json").write_text(json.dumps(m, indent=2))
    _examples(run, teacher, views, y, rows, p)
    return {k: {"accuracy": v["accuracy"], "macro_auc": v["macro_auc"], "agreement": v.get("agreement")}
            for k, v in m.items() if isinstance(v, dict) and "accuracy" in v} | {
            "student_concept_auc_macro": m["student_concept_auc"]["macro"], "n_test": int(len(y))}
