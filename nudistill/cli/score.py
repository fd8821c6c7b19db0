"""`nudistill score`: score an events dataset of any size with a shipped model, one output row per event.

Example: ``nudistill score model.onnx events/ --out scores.parquet``
Rows that break contract 1 get ``status = "error: ..."`` and null scores; they are counted, not fatal.
A file that cannot be read as events is refused in one sentence, or skipped with ``--skip-bad-files``.
Options come from :class:`nudistill.online.dataset.ScoreConfig`; the resolved config goes beside the output.
"""

from __future__ import annotations

import argparse

from nudistill.cli.dataclass_args import add_dataclass_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score events with an ONNX model into Parquet", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.fill = add_arguments  # options from the config dataclass, built when this verb runs
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nudistill.online.dataset import ScoreConfig

    add_dataclass_arguments(p, ScoreConfig, positional=("model", "events"))


def run(args: argparse.Namespace) -> int:
    from nudistill.cli.dataclass_args import config_from_args, say_config
    from nudistill.log import say
    from nudistill.online.dataset import ScoreConfig, beside, run_score

    cfg = say_config("score", config_from_args(ScoreConfig, args))
    summary = run_score(cfg)
    bad = sum(summary["errors"].values())
    detail = ", ".join(f"{n} {reason}" for reason, n in sorted(summary["errors"].items()))
    skipped = len(summary["files_skipped"])
    say(f"scored {summary['scored']} of {summary['events']} events into {summary['out']}"
        + (f"; {bad} bad row(s) kept with their status ({detail})" if bad else "")
        + (f"; {skipped} bad input file(s) skipped, listed in {beside(cfg.out, 'summary')}" if skipped else ""))
    return 0 if summary["scored"] or not summary["events"] else 1  # nothing scored: say so to scripts
