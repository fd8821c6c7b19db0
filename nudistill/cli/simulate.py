"""`nudistill simulate`: write toy LArTPC events (contract 1 plus truth columns) as sharded Parquet.

Example: ``nudistill simulate --n 2000 --res 512 --out events/``  (tiny: ``--n 50 --res 128``)
"""

from __future__ import annotations

import argparse

from nudistill.cli.args import fraction, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="simulate labelled LArTPC events", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output directory for part-*.parquet shards")
    p.add_argument("--n", type=positive_int, default=1000, help="number of events (default 1000)")
    p.add_argument("--res", type=positive_int, default=512, help="pixel-map side in pixels, both views (default 512, as in the study)")
    p.add_argument("--seed", type=int, default=0, help="master seed; the same seed gives identical events for any sharding (default 0)")
    p.add_argument("--start", type=int, default=0, help="index of the first event, to make disjoint slices of one run (default 0)")
    p.add_argument("--cc-fraction", type=fraction, default=0.74, help="fraction of charged-current events, split evenly nue/numu (default 0.74, the study's mix)")
    p.add_argument("--pitch", dest="pitch_cm", type=positive_float, default=0.3, help="pixel pitch in cm at 512 px; other --res keep the same frame in cm (default 0.3)")
    p.add_argument("--rows-per-file", type=positive_int, default=1000, help="rows per Parquet shard (default 1000)")
    p.add_argument("--detector", choices=("nominal", "randomized"), default="nominal",
                   help="nominal: one detector for every event (see --condition); randomized: each event draws its "
                        "own noise, threshold, noise hits, blips, dead/noisy channels, gain, lifetime, cosmics, pitch "
                        "and diffusion from ranges wider than any real detector (domain randomisation). The values "
                        "used are written as columns named as below (default nominal)")
    p.add_argument("--condition", action="append", default=[], metavar="NAME=VALUE", type=_condition,
                   help="change one nominal detector condition; repeatable. Names and nominal values: " + _conditions_help())
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
    from pathlib import Path

    from nudistill.config import from_namespace, save_config
    from nudistill.log import say
    from nudistill.simulate import SimConfig, write_dataset

    cfg = from_namespace(SimConfig, args, conditions=dict(args.condition))
    t0 = time.perf_counter()
    files = write_dataset(cfg, args.out)
    save_config(cfg, Path(args.out) / "_simulate.json")
    dt = time.perf_counter() - t0
    say(f"wrote {cfg.n} events at {cfg.res}x{cfg.res} in {len(files)} file(s) to {args.out} ({cfg.n / dt:.0f} events/s)")
    return 0
