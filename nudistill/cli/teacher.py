"""`nudistill teacher`: build, fine-tune, calibrate and evaluate the VLM teacher.

    nudistill teacher init --tiny --out teacher0
    nudistill teacher finetune --base teacher0 --events events --out teacher1 --full --epochs 2 --vision-warmup 300
    nudistill teacher calibrate --teacher teacher1 --events calib
    nudistill teacher eval --teacher teacher1 --events test --rationales 200
"""

from __future__ import annotations

import argparse
import json

from nudistill.cli.args import non_negative_int, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("teacher", help="build, fine-tune, calibrate or evaluate the VLM teacher", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="teacher_verb", metavar="SUBVERB", required=True)

    q = verbs.add_parser("init", help="build a teacher directory from a config")
    q.add_argument("--tiny", action="store_true", required=True, help="the tiny Mllama teacher (the only kind built here)")
    q.add_argument("--out", required=True, help="output teacher directory")
    q.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    q.set_defaults(func=run_init)

    q = verbs.add_parser("finetune", help="fine-tune on labelled events (LoRA, QLoRA or full)")
    q.add_argument("--base", required=True, help="teacher directory or hub id to start from")
    q.add_argument("--events", required=True, help="labelled events (file, directory, glob or URI)")
    q.add_argument("--out", required=True, help="output teacher directory; rerun to resume from its checkpoint")
    mode = q.add_mutually_exclusive_group()
    mode.add_argument("--lora-r", type=positive_int, help="LoRA rank on vision and text projections (default mode, r=8)")
    mode.add_argument("--qlora", action="store_const", const="qlora", dest="mode", help="4-bit NF4 base plus LoRA")
    mode.add_argument("--full", action="store_const", const="full", dest="mode", help="train all weights (tiny base from scratch)")
    q.add_argument("--limit", type=positive_int, help="use at most this many events")
    q.add_argument("--epochs", type=positive_float, default=1.0, help="passes over the events (default 1)")
    q.add_argument("--max-steps", type=positive_int, help="stop after this many optimiser steps")
    q.add_argument("--batch-size", type=positive_int, default=16, help="events per step (default 16)")
    q.add_argument("--lr", type=positive_float, help="peak learning rate (default 2e-3 full, 2e-4 LoRA)")
    q.add_argument("--vision-warmup", type=non_negative_int, default=0,
                   help="steps of supervised vision-tower warm-up first (a from-scratch tiny base needs ~200)")
    q.add_argument("--image-lr-scale", type=positive_float, default=1.0,
                   help="learning-rate multiplier for the vision tower, projector and cross-attention (default 1)")
    q.add_argument("--no-rationale", dest="rationale", action="store_false", help="train the label sentence only")
    q.add_argument("--checkpoint-every", type=positive_int, default=100, help="steps between checkpoints (default 100)")
    q.add_argument("--threads", type=positive_int, help="torch CPU threads")
    q.add_argument("--seed", type=int, default=0, help="shuffling seed (default 0)")
    q.add_argument("--eval-events", help="held-out labelled events for a learning curve")
    q.add_argument("--eval-limit", type=positive_int, default=500, help="held-out events to score (default 500)")
    q.add_argument("--eval-every", type=positive_int, help="steps between held-out evaluations (default: end only)")
    q.set_defaults(func=run_finetune, rationale=True)

    for name, helptext in (("calibrate", "fit the temperature on labelled events"),
                           ("eval", "accuracy, NLL, ECE and rationale concept F1 on labelled events")):
        q = verbs.add_parser(name, help=helptext)
        q.add_argument("--teacher", required=True, help="teacher directory or hub id")
        q.add_argument("--events", required=True, help="labelled events")
        q.add_argument("--limit", type=positive_int, help="use at most this many events")
        q.add_argument("--quantize", choices=["4bit"], help="load the base in 4-bit NF4")
        q.add_argument("--trust-remote-code", action="store_true", help="allow model code from the checkpoint")
        q.add_argument("--threads", type=positive_int, help="torch CPU threads")
        if name == "eval":
            q.add_argument("--rationales", type=non_negative_int, default=0, help="events to explain for concept F1")
        q.set_defaults(func=run_calibrate if name == "calibrate" else run_eval)


def _threads(args) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def run_init(args: argparse.Namespace) -> int:
    from nudistill.log import say
    from nudistill.teacher.tiny import TinyConfig, build_tiny_teacher

    out = build_tiny_teacher(args.out, TinyConfig(seed=args.seed))
    say(f"tiny Mllama teacher written to {out}")
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from nudistill.config import from_namespace
    from nudistill.log import say
    from nudistill.teacher.finetune import FinetuneConfig, held_out_eval, run_finetune

    cfg = from_namespace(FinetuneConfig, args, mode=args.mode or "lora", lora_r=args.lora_r or 8)
    eval_fn = held_out_eval(args.eval_events, args.eval_limit) if args.eval_events else None
    result = run_finetune(cfg, eval_fn=eval_fn, eval_every=args.eval_every)
    last = result.history[-1] if result.history else {}
    say(json.dumps({k: last[k] for k in last if k != "rationale_example"}))
    say(f"teacher written to {result.out}: {result.steps} steps on {result.events} events in {result.seconds:.0f} s")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    import dataclasses

    from nudistill.log import say
    from nudistill.teacher import load_teacher
    from nudistill.teacher.calibrate import calibrate
    from nudistill.teacher.data import load_labelled

    _threads(args)
    teacher = load_teacher(args.teacher, quantize=args.quantize, trust_remote_code=args.trust_remote_code)
    data = load_labelled(args.events, limit=args.limit, view_size=teacher.spec.view_size)
    result = calibrate(data.y, teacher.logprobs(data.views), teacher.temperature)
    teacher.spec.temperature = result.temperature_after
    teacher.spec.save(teacher.root)
    say(json.dumps(dataclasses.asdict(result)))
    say(f"temperature {result.temperature_before:.3g} -> {result.temperature_after:.3g}: NLL {result.nll_before:.4f} -> "
        f"{result.nll_after:.4f}, ECE {result.ece_before:.4f} -> {result.ece_after:.4f} on {result.events} events")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from nudistill.log import say
    from nudistill.teacher import load_teacher
    from nudistill.teacher.calibrate import evaluate
    from nudistill.teacher.data import load_labelled

    _threads(args)
    teacher = load_teacher(args.teacher, quantize=args.quantize, trust_remote_code=args.trust_remote_code)
    data = load_labelled(args.events, limit=args.limit, view_size=teacher.spec.view_size)
    say(json.dumps(dict(evaluate(teacher, data, rationales=args.rationales), teacher=teacher.teacher_id)))
    return 0
