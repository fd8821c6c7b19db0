"""`nudistill robustness`: a model's accuracy, AUC and class recall on every named detector shift.

Example: ``nudistill robustness --model run/export/model.onnx --events run/simulate/test --out rob/student``
(``--model`` also takes a student checkpoint directory or a teacher directory; the same ``--seed`` gives
every model the same shifted bytes.) Tiny CPU run, about 15 s on 2 cores::

    nudistill simulate --n 40 --res 64 --out ev64
    nudistill teacher init --tiny --out t0
    nudistill robustness --model t0 --events ev64 --out rob --shifts nominal,gain,dead_channels
"""

from __future__ import annotations

import argparse

from nudistill.cli.args import non_negative_int, positive_int


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("robustness", help="score a model on the robustness suite of detector shifts",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a shipped model.onnx, a student checkpoint directory or a teacher directory")
    p.add_argument("--events", help="labelled events (contract 1 with `label`): Parquet file, directory, glob or URI")
    p.add_argument("--out", help="output directory for robustness.json, robustness.md and the resolved config")
    p.add_argument("--shifts", type=_names, help="comma-separated suite names, e.g. 'nominal,gain x2,cosmics' "
                   "(a vocabulary name takes all its levels; default: the whole suite; nominal is always added)")
    p.add_argument("--limit", type=positive_int, help="read only the first N event rows (default: all)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the shifts, shared by every model (default 0)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="events per model call (default 64)")
    p.add_argument("--threads", type=positive_int, help="intra-op threads for ONNX Runtime and PyTorch "
                   "(default: 1 for .onnx, PyTorch's own default otherwise)")
    p.add_argument("--list-shifts", action="store_true", help="print the suite's shifts with what each does, and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nudistill.config import config_dict, from_namespace
    from nudistill.errors import UserError
    from nudistill.log import say
    from nudistill.robustness import RobustnessConfig, markdown_table, run_robustness, shift_doc
    from nudistill.shifts import SUITE

    if args.list_shifts:
        width = max(map(len, SUITE))
        for name in SUITE:
            say(f"{name:<{width}}  {shift_doc(name)}")
        return 0
    missing = [f"--{k}" for k in ("model", "events", "out") if getattr(args, k) is None]
    if missing:
        raise UserError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required (or use --list-shifts)")
    cfg = from_namespace(RobustnessConfig, args)
    say(f"robustness config: {config_dict(cfg)}")
    result = run_robustness(cfg)
    say(markdown_table(result["shifts"]))
    say(f"wrote {cfg.out}/robustness.json and robustness.md ({result['n_events']} events, {len(cfg.shifts)} shifts)")
    return 0
