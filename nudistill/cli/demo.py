"""`nudistill demo`: the whole pipeline on an embedded default (simulated events, a tiny teacher, a local Ray).

Example: ``nudistill demo --out runs/demo`` (``--quick`` for a ~3-minute CI run).
Until the later stages land, the demo simulates events and renders them.
"""

from __future__ import annotations

import argparse

from nudistill.cli.args import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on simulated events", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="run directory; each stage writes RUN_DIR/<stage>/ (default runs/demo)")
    p.add_argument("--events", type=positive_int, default=2000, help="training events to simulate (default 2000)")
    p.add_argument("--quick", action="store_true", help="a small, fast run for CI")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nudistill.log import say
    from nudistill.show import render
    from nudistill.simulate import SimConfig, write_dataset

    out = Path(args.out)
    n = 50 if args.quick else args.events
    write_dataset(SimConfig(n=n, res=512, seed=0), out / "simulate" / "train")
    png = render(str(out / "simulate" / "train"), out / "simulate" / "events.png", n=8)
    say(f"simulated {n} events into {out / 'simulate' / 'train'}; drew 8 of them in {png}")
    return 0
