"""`nudistill simulate`: write toy LArTPC events (contract 1 plus truth columns) as sharded Parquet.

Example: ``nudistill simulate --n 2000 --res 512 --out events/``  (tiny: ``--n 50 --res 128``)
Options come from :class:`nudistill.simulate.SimConfig`; the resolved config goes to OUT/_simulate.json.
"""

from __future__ import annotations

import argparse

from nudistill.cli.dataclass_args import add_dataclass_arguments, field_docs


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nudistill.simulate import SimConfig

    add_dataclass_arguments(p, SimConfig, flags={"pitch_cm": "--pitch", "conditions": "--condition"}, overrides={
        "conditions": {"type": _condition, "metavar": "NAME=VALUE",
                       "help": field_docs(SimConfig)["conditions"] + " Repeatable. Names and nominal values: "
                       + _conditions_help()}})


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="simulate labelled LArTPC events", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.fill = add_arguments  # options from the config dataclass, built when this verb runs
    p.set_defaults(func=run)


def _conditions_help() -> str:
    from nudistill.detector import Detector

    return ", ".join(f"{k}={v:g}" for k, v in Detector().to_dict().items()) + " (units: see nudistill/detector.py)"


def _condition(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=NUMBER, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    import time

    from nudistill.cli.dataclass_args import config_from_args, say_config
    from nudistill.log import say
    from nudistill.simulate import SimConfig, run as simulate

    cfg = say_config("simulate", config_from_args(SimConfig, args))
    t0 = time.perf_counter()
    files = simulate(cfg)
    dt = time.perf_counter() - t0
    say(f"wrote {cfg.n} events at {cfg.res}x{cfg.res} in {len(files)} file(s) to {cfg.out} ({cfg.n / dt:.0f} events/s)")
    return 0
