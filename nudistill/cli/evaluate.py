"""`nudistill evaluate`: metrics of a student checkpoint or an exported ONNX model, at full and half resolution.

Example: ``nudistill evaluate --model student/ --events test_events/ --labels test_labels/ --out eval.json``
(``--model model.onnx`` evaluates the exported file through the online scorer.)
Options come from :class:`nudistill.student.evaluate.EvaluateConfig`; the report embeds the resolved config.
"""

from __future__ import annotations

import argparse

from nudistill.cli.dataclass_args import add_dataclass_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a student (checkpoint or ONNX) against truth and the teacher",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.fill = add_arguments  # options from the config dataclass, built when this verb runs
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nudistill.student.evaluate import EvaluateConfig

    add_dataclass_arguments(p, EvaluateConfig)


def run(args: argparse.Namespace) -> int:
    import json

    from nudistill.cli.dataclass_args import config_from_args, say_config
    from nudistill.log import say
    from nudistill.student.evaluate import EvaluateConfig, run_evaluate

    cfg = say_config("evaluate", config_from_args(EvaluateConfig, args))
    report = run_evaluate(cfg)
    line = {res: {k: report[res].get(k) for k in ("n", "accuracy", "macro_auc", "agreement")} for res in ("full", "half")}
    say(f"wrote {cfg.out}: {json.dumps(line)}")
    return 0
