"""`nudistill demo`: the whole pipeline on an embedded default (simulated events, a tiny teacher, a local Ray).

Stages, each in RUN_DIR/<stage>/: simulate (plus a domain-randomised copy of the train set), teacher (build + fine-tune), calibrate, label (Ray, 2 replicas),
distill, export (ONNX, verified; int8 where it passes), bench, evaluate (full and half resolution), report.
A rerun skips finished stages and resumes an interrupted one.

Example: ``nudistill demo --out runs/demo``  (``--quick`` for a ~3-minute CI run)
Options come from :class:`nudistill.demo.DemoConfig`; the resolved config goes to RUN_DIR/demo_config.json.
"""

from __future__ import annotations

import argparse

from nudistill.cli.dataclass_args import add_dataclass_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on simulated events", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.fill = add_arguments  # options from the config dataclass, built when this verb runs
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nudistill.demo.config import DemoConfig

    add_dataclass_arguments(p, DemoConfig)


def run(args: argparse.Namespace) -> int:
    from nudistill.cli.dataclass_args import config_from_args, say_config
    from nudistill.demo import DemoConfig, run_demo

    run_demo(say_config("demo", config_from_args(DemoConfig, args)))
    return 0
