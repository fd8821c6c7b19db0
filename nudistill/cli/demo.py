"""`nudistill demo`: the whole pipeline on an embedded default (simulated events, a tiny teacher, a local Ray).

Stages, each in RUN_DIR/<stage>/: simulate (plus a domain-randomised copy of the train set), teacher (build + fine-tune), calibrate, label (Ray, 2 replicas),
distill, export (ONNX, verified; int8 where it passes), bench, evaluate (full and half resolution), report.
A rerun skips finished stages and resumes an interrupted one.

Example: ``nudistill demo --out runs/demo``  (``--quick`` for a ~3-minute CI run)
"""

from __future__ import annotations

import argparse

from nudistill.cli.args import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on simulated events", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="run directory; each stage writes RUN_DIR/<stage>/ (default runs/demo)")
    p.add_argument("--events", type=positive_int, default=2000, help="training events to simulate (default 2000)")
    p.add_argument("--quick", action="store_true", help="a small, fast run for CI (~3 minutes on 2 cores)")
    p.add_argument("--res", type=positive_int, default=512, help="pixel-map side of the simulated events (default 512)")
    p.add_argument("--teacher-steps", type=positive_int, default=500, help="fine-tune steps of the tiny teacher (default 500)")
    p.add_argument("--student", help="student name from the registry (default: the latency-lean default)")
    p.add_argument("--student-epochs", type=positive_int, default=8, help="distillation epochs (default 8)")
    p.add_argument("--replicas", type=positive_int, default=2, help="teacher replicas in the labelling job (default 2)")
    p.add_argument("--train-detector", choices=("randomized", "nominal"), default="randomized",
                   help="detector of the teacher's fine-tuning events: randomized draws each event's noise, "
                        "thresholds, gain, lifetime, dead/noisy channels, blips and cosmics (default); nominal trains "
                        "on one detector. The student always learns through the same randomisation as augmentation")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nudistill.config import from_namespace
    from nudistill.demo import DemoConfig, run_demo

    run_demo(from_namespace(DemoConfig, args))
    return 0
