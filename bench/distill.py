"""The distillation acceptance run: three students, one budget, against truth and beside the teacher; prints JSON.

(i) ``soft``: teacher soft labels only (alpha 1, KL at T), teacher concepts, no truth;
(ii) ``hard``: teacher argmax labels only (alpha 0), teacher concepts;
(iii) ``truth``: truth labels and truth concepts.
Goal: (i) within 1 point of the teacher's accuracy, (i) >= (ii), and (i)'s concept macro AUC >= 0.85 against
truth concepts. All three are evaluated on held-out test events at full and half resolution.

Run with a trained teacher (labels the events first with ``nudistill label``)::

    nudistill simulate --n 3000 --res 512 --seed 10 --out /tmp/b/train
    nudistill simulate --n 1000 --res 512 --seed 11 --out /tmp/b/test
    python bench/distill.py --train-events /tmp/b/train --test-events /tmp/b/test --teacher TEACHER_DIR --out /tmp/b/run

or with labels made already (``--train-labels L1 --test-labels L2``). Soft and hard students differ by about
one seed's noise here, so compare them with ``--seeds 0,1,2`` (the table then holds means and the spread) on a
test set of a few thousand events. The acceptance run (README, Measured) used ``--epochs 16 --seeds 0,1,2`` on
the default demo's labels and 2,000 other test events; at 8 epochs soft trailed hard by 0.35 points.
``--stand-in-teacher`` uses truth with
noise instead of a teacher (for developing the trainer; its numbers are NOT the acceptance and say so).
Tiny CPU run: the same with ``--res 64`` events, ``--n 200``, ``--epochs 1 --stand-in-teacher``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RECIPES = {
    "soft": dict(alpha=1.0, hard_labels="teacher", concept_source="teacher"),
    "hard": dict(alpha=0.0, hard_labels="teacher", concept_source="teacher"),
    "truth": dict(alpha=0.0, hard_labels="truth", concept_source="truth"),
}


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train-events", required=True, help="training events (contract 1 with truth)")
    p.add_argument("--test-events", required=True, help="held-out test events (contract 1 with truth)")
    p.add_argument("--out", required=True, help="work directory: labels, students, evaluations, bench.json")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--teacher", help="teacher directory: label train and test events with `nudistill label`")
    src.add_argument("--train-labels", help="teacher labels of the training events (then --test-labels too)")
    src.add_argument("--stand-in-teacher", action="store_true", help="truth + noise labels (development only)")
    p.add_argument("--test-labels", help="teacher labels of the test events")
    p.add_argument("--students", default="lean_pool4", help="comma-separated student names (default lean_pool4)")
    p.add_argument("--recipes", default="soft,hard,truth", help="which of soft,hard,truth to train")
    p.add_argument("--epochs", type=int, default=6, help="epochs per student (the shared budget)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--concept-weight", type=float, default=2.0)
    p.add_argument("--seeds", default="0",
                   help="comma-separated training seeds; with several, each recipe is trained once per seed and "
                        "the table reports the mean and the spread (soft vs hard differ by about one seed's noise)")
    return p.parse_args(argv)


def labels_for(args, out: Path) -> tuple[str, str]:
    """Train and test label paths, labelling with the teacher or making stand-in labels when asked."""
    if args.train_labels:
        if not args.test_labels:
            sys.exit("--train-labels needs --test-labels")
        return args.train_labels, args.test_labels
    paths = []
    for split, events in (("train", args.train_events), ("test", args.test_events)):
        dst = out / f"labels_{split}"
        if args.teacher:
            from nudistill.cli import main

            if main(["label", "--events", events, "--teacher", args.teacher, "--out", str(dst)]) != 0:
                sys.exit(f"labelling {events} failed")
        else:
            import pyarrow.parquet as pq

            from nudistill.events import resolve_dataset
            from nudistill.student.stand_in import stand_in_labels

            dst.mkdir(parents=True, exist_ok=True)
            table = resolve_dataset(events).to_table(columns=["event_id", "label", "concepts"])
            pq.write_table(stand_in_labels(table, noise=1.5, seed=1 if split == "train" else 2), dst / "labels.parquet")
        paths.append(str(dst))
    return paths[0], paths[1]


def cost(student_dir: Path) -> dict:
    """Parameters and MACs of a trained student (the latency estimate; bench/online.py measures p50/p99)."""
    from nudistill.student import load_student
    from nudistill.student.profile import count_macs, count_params

    m = load_student(student_dir)
    return {"params": count_params(m), "gmac": round(count_macs(m) / 1e9, 4)}


def teacher_concepts(test_events: str, test_labels: str) -> dict | None:
    """AUC against truth of the concepts the teacher's rationales name on the test events (0/1 scores).

    The student learns its concepts from these rationales, so this is roughly its ceiling for soft/hard
    recipes. None when the test labels carry no rationales.
    """
    from nudistill import metrics
    from nudistill.events import concepts_to_multi_hot, resolve_dataset

    labels = resolve_dataset(test_labels, required=("event_id",), what="labels", flag=None).to_table(
        columns=["event_id", "concepts", "rationale"])
    named = {e: c for e, c, r in zip(*(labels.column(k).to_pylist() for k in ("event_id", "concepts", "rationale")))
             if r is not None}
    if not named:
        return None
    truth = resolve_dataset(test_events).to_table(columns=["event_id", "concepts"])
    pairs = [(t, named[e]) for e, t in zip(truth.column("event_id").to_pylist(), truth.column("concepts").to_pylist())
             if e in named]
    out = metrics.concept_auc(concepts_to_multi_hot([t for t, _ in pairs]), concepts_to_multi_hot([n for _, n in pairs]))
    return {**out, "events": len(pairs)}


def row(report: dict) -> dict:
    """The headline numbers of one evaluation."""
    full, half = report["full"], report["half"]
    return {"accuracy": full["accuracy"], "accuracy_half_res": half["accuracy"], "macro_auc": full["macro_auc"],
            "ece": full["ece"], "agreement": full.get("agreement"),
            "concept_macro_auc": (full.get("concept_auc") or {}).get("macro")}


def mean_of(runs: list[dict]) -> dict:
    """Mean of each number over seeds, plus the accuracy's spread (sample sd; 0 for one seed)."""
    import numpy as np

    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float))]
    out = {k: float(np.mean([r[k] for r in runs])) for k in keys}
    out["accuracy_sd"] = float(np.std([r["accuracy"] for r in runs], ddof=1)) if len(runs) > 1 else 0.0
    out["seeds"] = len(runs)
    return out


def main(argv=None) -> dict:
    import torch

    from nudistill.student.evaluate import evaluate
    from nudistill.student.train import train

    args = parse(argv)
    seeds = [int(x) for x in args.seeds.split(",")]
    torch.set_num_threads(1)
    out = Path(args.out)
    train_labels, test_labels = labels_for(args, out)
    result: dict = {"teacher_source": "stand-in (truth + noise), NOT the acceptance" if args.stand_in_teacher
                    else (args.teacher or train_labels),
                    "budget": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                               "temperature": args.temperature, "concept_weight": args.concept_weight,
                               "seeds": seeds},
                    "students": {}, "runs": {}}
    for name in args.students.split(","):
        for recipe in args.recipes.split(","):
            runs = []
            for seed in seeds:
                d = out / (f"{name}_{recipe}" if len(seeds) == 1 else f"{name}_{recipe}_s{seed}")
                t0 = time.time()
                train(dict(events=args.train_events, labels=train_labels, out=str(d), student=name,
                           epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, temperature=args.temperature,
                           seed=seed, concept_weight=args.concept_weight, **RECIPES[recipe]))
                report = evaluate(d, args.test_events, test_labels)
                (d / "eval_test.json").write_text(json.dumps(report, indent=2))
                if report.get("teacher"):
                    result["teacher"] = {k: report["teacher"][k] for k in ("n", "accuracy")}
                runs.append({**row(report), **cost(d), "train_seconds": round(time.time() - t0)})
                result["runs"][f"{name}/{recipe}/seed{seed}"] = runs[-1]
                print(json.dumps({f"{name}/{recipe}/seed{seed}": runs[-1]}), file=sys.stderr)
            result["students"][f"{name}/{recipe}"] = mean_of(runs)
    if not args.stand_in_teacher:
        result["teacher_named_concepts_auc"] = teacher_concepts(args.test_events, test_labels)
    result["goals"] = goals(result)
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


def goals(result: dict) -> dict:
    """The acceptance goals per student name, where the runs exist (soft within 1 point of the teacher, >= hard)."""
    teacher = (result.get("teacher") or {}).get("accuracy")
    out = {}
    for key, r in result["students"].items():
        name, recipe = key.split("/")
        if recipe != "soft":
            continue
        hard = result["students"].get(f"{name}/hard")
        out[name] = {
            "soft_within_1pt_of_teacher": teacher is not None and r["accuracy"] >= teacher - 0.01,
            "soft_ge_hard": hard is not None and r["accuracy"] >= hard["accuracy"],
            "concept_macro_auc_ge_0.85": (r["concept_macro_auc"] or 0) >= 0.85,
        }
    return out


if __name__ == "__main__":
    main()
