"""`nudistill show`: render events (XZ and YZ, log colour scale, label and concepts) to a PNG.

Example: ``nudistill show events/ --n 8 --out events.png``
"""

from __future__ import annotations

import argparse

from nudistill.cli.args import non_negative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="render events to a PNG", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("events", help="events: a Parquet file, directory, glob or URI (s3://, gs://)")
    p.add_argument("--out", default="events.png", help="PNG file to write (default events.png)")
    p.add_argument("--n", type=positive_int, default=8, help="number of events to draw (default 8)")
    p.add_argument("--start", type=non_negative_int, default=0, help="skip this many valid events first (default 0)")
    p.add_argument("--cols", type=positive_int, default=2, help="events per row of the grid (default 2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nudistill.log import say
    from nudistill.show import render

    path = render(args.events, args.out, n=args.n, start=args.start, cols=args.cols)
    say(f"wrote {path}")
    return 0
