"""`nudistill distill`: train a student on teacher labels (Hinton distillation), one process or Ray Train.

Example: ``nudistill distill --events events/ --labels labels/ --out student/ --epochs 10``
Tiny CPU run on truth alone: ``nudistill simulate --n 300 --res 64 --out /tmp/ev`` then
``nudistill distill --events /tmp/ev --out /tmp/st --alpha 0 --hard-labels truth --concept-source truth --epochs 2``
"""

from __future__ import annotations

import argparse
import json

from nudistill.cli.args import fraction, non_negative_int, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="train a student CNN on teacher labels", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The distillation options, shared by the CLI and ``ray_jobs/distill_and_export.py``."""
    p.add_argument("--events", required=True, help="events dataset (contract 1): Parquet file, directory, glob or URI")
    p.add_argument("--labels", help="teacher labels (contract 2) covering every event; omit to train on truth")
    p.add_argument("--out", required=True, help="output directory: model.safetensors + config.json (best by val loss), "
                   "last/ (resume state), metrics.jsonl")
    p.add_argument("--student", help="registered student: lean_pool4 (default, latency-lean), lean_pool2, lean_stride4, "
                   "tiny_pool8 or siamese_mbv2 (the study's baseline)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a student config field, e.g. --set width_mult=0.75 (JSON values; repeatable)")
    p.add_argument("--epochs", type=positive_int, help="total epochs; a resumed run continues up to this (default 10)")
    p.add_argument("--batch-size", type=positive_int, help="events per step per worker (default 32)")
    p.add_argument("--lr", type=positive_float, help="peak AdamW learning rate, warm-up then cosine (default 3e-3)")
    p.add_argument("--alpha", type=fraction, help="weight of the soft-target KL term; 1-alpha weighs the hard CE (default 1)")
    p.add_argument("--temperature", type=positive_float, help="distillation temperature T (default 2)")
    p.add_argument("--concept-weight", type=float, help="weight beta of the concept BCE, masked where no rationale (default 2)")
    p.add_argument("--hard-labels", choices=("teacher", "truth"), help="hard labels of the CE term: teacher argmax or "
                   "the events' truth label (default teacher)")
    p.add_argument("--concept-source", choices=("teacher", "truth", "none"),
                   help="concept targets: teacher rationales, the events' truth concepts, or none (default teacher)")
    p.add_argument("--val-fraction", type=fraction, help="share of events held out for validation by event_id hash (default 0.15)")
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                   help="turn off shifts, gain jitter, noise hits and 2x degradation")
    p.add_argument("--max-steps-per-epoch", type=non_negative_int, help="cap optimiser steps per epoch (default 0: all)")
    p.add_argument("--seed", type=int, help="seed of initialisation, shuffling and augmentation (default 0)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="training device (default auto: cuda when available)")
    p.add_argument("--loader-workers", type=int, help="DataLoader worker processes (default -1: 2 on GPU, 0 on CPU)")
    p.add_argument("--workers", type=positive_int, help="Ray Train workers; >1 runs the same loop under TorchTrainer "
                   "with DDP (default 1: no Ray)")
    p.add_argument("--no-resume", dest="resume", action="store_false", default=None,
                   help="start afresh even when --out holds a previous run's last/ checkpoint")


def parse_overrides(items: list[str]) -> dict:
    """``["width_mult=0.75", "norm=gn"]`` -> ``{"width_mult": 0.75, "norm": "gn"}`` (JSON values, else strings)."""
    from nudistill.errors import UserError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r} is not KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def config_of(args: argparse.Namespace):
    """The DistillConfig of parsed arguments."""
    from nudistill.config import from_namespace
    from nudistill.student.config import DistillConfig

    return from_namespace(DistillConfig, args, student_overrides=parse_overrides(args.overrides))


def run(args: argparse.Namespace) -> int:
    from nudistill.config import config_dict
    from nudistill.log import say

    cfg = config_of(args)
    say(f"distill: {json.dumps(config_dict(cfg), sort_keys=True)}")
    if cfg.workers > 1:
        from nudistill.student.ray_train import train_with_ray

        result = train_with_ray(cfg)
    else:
        from nudistill.student.train import train

        result = train(cfg)
    say(json.dumps({"out": cfg.out, **{k: v for k, v in result.items() if k != "survey"}}, default=str))
    return 0
