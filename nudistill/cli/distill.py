"""`nudistill distill`: train a student on teacher labels (Hinton distillation), one process or Ray Train.

Example: ``nudistill distill --events events/ --labels labels/ --out student/ --epochs 10``
Tiny CPU run on truth alone: ``nudistill simulate --n 300 --res 64 --out /tmp/ev`` then
``nudistill distill --events /tmp/ev --out /tmp/st --alpha 0 --hard-labels truth --concept-source truth --epochs 2``
Options come from :class:`nudistill.student.config.DistillConfig`; the resolved config goes to
OUT/distill_config.json, and ``--config OUT/distill_config.json`` reruns it.
"""

from __future__ import annotations

import argparse

from nudistill.cli.dataclass_args import add_dataclass_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="train a student CNN on teacher labels", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.fill = add_arguments  # options from the config dataclass, built when this verb runs
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The distillation options, shared by the CLI and ``ray_jobs/distill_and_export.py``."""
    from nudistill.student.config import DistillConfig

    add_dataclass_arguments(p, DistillConfig, flags={"student_overrides": "--set"})


def run(args: argparse.Namespace) -> int:
    import json

    from nudistill.cli.dataclass_args import config_from_args, say_config
    from nudistill.log import say
    from nudistill.student.config import DistillConfig
    from nudistill.student.run import run_distill

    cfg = say_config("distill", config_from_args(DistillConfig, args))
    result = run_distill(cfg)
    say(json.dumps({"out": cfg.out, **{k: v for k, v in result.items() if k != "survey"}}, default=str))
    return 0
