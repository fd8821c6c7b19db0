"""`nudistill label`: label an events dataset with the teacher on Ray (contract 2), resumable, exactly once.

Example (embedded local Ray): ``nudistill label --events events/ --teacher teacher/ --out labels/ --replicas 2``
On a cluster, submit ``ray_jobs/label_dataset.py`` with the same options (README).
"""

from __future__ import annotations

import argparse

from nudistill.cli.args import non_negative_float, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The labelling options, shared by the CLI and the Ray job script."""
    p.add_argument("--events", required=True, help="events: a Parquet file, directory, glob or URI (s3://, gs://)")
    p.add_argument("--teacher", required=True, help="teacher directory or hub id")
    p.add_argument("--out", required=True, help="labels directory or URI; rerun into it to resume (one teacher per directory)")
    p.add_argument("--replicas", type=positive_int, default=1, help="teacher actor replicas (default 1)")
    p.add_argument("--gpus-per-replica", type=non_negative_float, default=0.0,
                   help="GPUs per replica, fractions allowed (default 0: CPU)")
    p.add_argument("--cpus-per-replica", type=non_negative_float,
                   help="CPUs reserved per replica (default: 1 with GPUs, else a share leaving one CPU for I/O)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="events per teacher call (default 16)")
    p.add_argument("--rationale", default="fraction:0.1",
                   help="which events get a rationale: all, none, below:<confidence> or fraction:<p> (default fraction:0.1)")
    p.add_argument("--max-events", type=positive_int, help="label only the first N events (in file order)")
    p.add_argument("--quantize", choices=["4bit"], help="load the teacher's base in 4-bit NF4 (QLoRA recipe)")
    p.add_argument("--adapter", help="a peft adapter directory to apply to the teacher")
    p.add_argument("--max-attempts", type=positive_int, default=2,
                   help="process deaths tolerated on a batch, then on a row, before it is quarantined (default 2)")
    p.add_argument("--no-progress-timeout", dest="no_progress_timeout_s", type=non_negative_float, default=900.0,
                   help="fail (resumably) when nothing progresses for this many seconds (default 900)")
    p.add_argument("--fault-poison-event", help=argparse.SUPPRESS)  # test-only fault hook


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="label events with the teacher on Ray", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nudistill.config import from_namespace
    from nudistill.label import LabelConfig, run_label

    cfg = from_namespace(LabelConfig, args)
    run_label(cfg)
    return 0
