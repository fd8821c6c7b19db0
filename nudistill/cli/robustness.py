"""`nudistill robustness`: a model's accuracy, AUC and class recall on every named detector shift.

Example: ``nudistill robustness --model run/export/model.onnx --events run/simulate/test --out rob/student``
(``--model`` also takes a student checkpoint directory or a teacher directory; the same ``--seed`` gives
every model the same shifted bytes.) Tiny CPU run, about 15 s on 2 cores::

    nudistill simulate --n 40 --res 64 --out ev64
    nudistill teacher init --tiny --out t0
    nudistill robustness --model t0 --events ev64 --out rob --shifts nominal,gain,dead_channels

Options come from :class:`nudistill.robustness.RobustnessConfig`; the resolved config goes to
OUT/robustness_config.json.
"""

from __future__ import annotations

import argparse

from nudistill.cli.dataclass_args import add_dataclass_arguments, field_docs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("robustness", help="score a model on the robustness suite of detector shifts",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.fill = add_arguments  # options from the config dataclass, built when this verb runs
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nudistill.robustness import RobustnessConfig

    doc = field_docs(RobustnessConfig)["shifts"]
    add_dataclass_arguments(p, RobustnessConfig, overrides={"shifts": {
        "help": f"{doc} Comma-separated, e.g. 'nominal,gain x2,cosmics' (default: the whole suite; --list-shifts)"}})
    p.add_argument("--list-shifts", action="store_true", help="print the suite's shifts with what each does, and exit")


def run(args: argparse.Namespace) -> int:
    from nudistill.cli.dataclass_args import config_from_args, say_config
    from nudistill.log import say
    from nudistill.robustness import RobustnessConfig, markdown_table, run_robustness, shift_doc
    from nudistill.shifts import SUITE

    if args.list_shifts:
        width = max(map(len, SUITE))
        for name in SUITE:
            say(f"{name:<{width}}  {shift_doc(name)}")
        return 0
    cfg = say_config("robustness", config_from_args(RobustnessConfig, args))
    result = run_robustness(cfg)
    say(markdown_table(result["shifts"]))
    say(f"wrote {cfg.out}/robustness.json and robustness.md ({result['n_events']} events, {len(cfg.shifts)} shifts)")
    return 0
