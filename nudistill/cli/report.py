"""`nudistill report RUN_DIR`: draw the run's figures and write RUN_DIR/report/report.md.

Example: ``nudistill report runs/demo``
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the run report (report.md and PNG figures)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a run directory made by `nudistill demo` or ray_jobs/distill_and_export.py")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nudistill.log import say
    from nudistill.report import write_report

    say(f"wrote {write_report(args.run_dir)}")
    return 0
