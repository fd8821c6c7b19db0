"""`nudistill score`: score an events dataset of any size with a shipped model, one output row per event.

Example: ``nudistill score model.onnx events/ --out scores.parquet``
Rows that break contract 1 get ``status = "error: ..."`` and null scores; they are counted, not fatal.
"""

from __future__ import annotations

import argparse

from nudistill.cli.args import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score events with an ONNX model into Parquet", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a contract-3 ONNX model (model.opt.onnx beside it is used when present)")
    p.add_argument("events", help="events: a Parquet file, directory, glob or URI (s3://, gs://)")
    p.add_argument("--out", default="scores.parquet", help="Parquet file to write (default scores.parquet)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="events per inference batch (default 64)")
    p.add_argument("--threads", type=positive_int, default=1, help="onnxruntime intra-op threads (default 1)")
    p.add_argument("--limit", type=positive_int, help="score only the first N rows")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nudistill.errors import UserError
    from nudistill.log import say
    from nudistill.online.dataset import score_dataset

    try:
        summary = score_dataset(args.model, args.events, args.out, args.batch_size, args.threads, args.limit)
    except ValueError as exc:  # the scorer's contract checks on the model file
        raise UserError(str(exc)) from None
    bad = sum(summary["errors"].values())
    detail = ", ".join(f"{n} {reason}" for reason, n in sorted(summary["errors"].items()))
    say(f"scored {summary['scored']} of {summary['events']} events into {summary['out']}"
        + (f"; {bad} bad row(s) kept with their status ({detail})" if bad else ""))
    return 0 if summary["scored"] or not summary["events"] else 1  # nothing scored: say so to scripts
