"""`nudistill report RUN_DIR`: draw the run's figures and write RUN_DIR/report/report.md.

Example: ``nudistill report runs/demo``
Options come from :class:`nudistill.report.build.ReportConfig`; the config goes to RUN_DIR/report/report_config.json.
"""

from __future__ import annotations

import argparse

from nudistill.cli.dataclass_args import add_dataclass_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the run report (report.md and PNG figures)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.fill = add_arguments  # options from the config dataclass, built when this verb runs
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nudistill.report.build import ReportConfig

    add_dataclass_arguments(p, ReportConfig, positional=("run_dir",))


def run(args: argparse.Namespace) -> int:
    from nudistill.cli.dataclass_args import config_from_args, say_config
    from nudistill.log import say
    from nudistill.report.build import ReportConfig, run_report

    say(f"wrote {run_report(say_config('report', config_from_args(ReportConfig, args)))}")
    return 0
