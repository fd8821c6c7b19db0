"""`nudistill label`: label an events dataset with the teacher on Ray (contract 2), resumable, exactly once.

Example (embedded local Ray): ``nudistill label --events events/ --teacher teacher/ --out labels/ --replicas 2``
On a cluster, submit ``ray_jobs/label_dataset.py`` with the same options (README).
Options come from :class:`nudistill.label.LabelConfig`; the labels directory records the resolved config.
"""

from __future__ import annotations

import argparse

from nudistill.cli.dataclass_args import add_dataclass_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The labelling options, shared by the CLI and the Ray job script."""
    from nudistill.label.config import LabelConfig

    add_dataclass_arguments(p, LabelConfig, flags={"no_progress_timeout_s": "--no-progress-timeout"},
                            overrides={"fault_poison_event": {"help": argparse.SUPPRESS}})  # a test-only fault hook


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="label events with the teacher on Ray", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.fill = add_arguments  # options from the config dataclass, built when this verb runs
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nudistill.cli.dataclass_args import config_from_args, say_config
    from nudistill.label import LabelConfig, run_label

    run_label(say_config("label", config_from_args(LabelConfig, args)))
    return 0
