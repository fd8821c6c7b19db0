"""`nudistill show`: render events (XZ and YZ, log colour scale, label and concepts) to a PNG.

Example: ``nudistill show events/ --n 8 --out events.png``
Options come from :class:`nudistill.show.ShowConfig`.
"""

from __future__ import annotations

import argparse

from nudistill.cli.dataclass_args import add_dataclass_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="render events to a PNG", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.fill = add_arguments  # options from the config dataclass, built when this verb runs
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nudistill.show import ShowConfig

    add_dataclass_arguments(p, ShowConfig, positional=("events",))


def run(args: argparse.Namespace) -> int:
    from nudistill.cli.dataclass_args import config_from_args, say_config
    from nudistill.log import say
    from nudistill.show import ShowConfig, run as show

    say(f"wrote {show(say_config('show', config_from_args(ShowConfig, args)))}")
    return 0
