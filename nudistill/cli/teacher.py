"""`nudistill teacher`: build, fine-tune, calibrate and evaluate the VLM teacher.

    nudistill teacher init --tiny --out teacher0
    nudistill teacher finetune --base teacher0 --events events --out teacher1 --full --epochs 2 --vision-warmup 300
    nudistill teacher calibrate --teacher teacher1 --events calib
    nudistill teacher eval --teacher teacher1 --events test --rationales 200

Options come from the configs in :mod:`nudistill.teacher.stages`; each sub-verb prints its resolved config
and writes it into the teacher directory (init_config.json, finetune_config.json, calibrate_config.json).
"""

from __future__ import annotations

import argparse
import json

from nudistill.cli.dataclass_args import add_dataclass_arguments

SUBVERBS = {  # sub-verb -> (help, config class name in nudistill.teacher.stages)
    "init": ("build a teacher directory from a config", "TeacherInitConfig"),
    "finetune": ("fine-tune on labelled events (LoRA, QLoRA or full)", "TeacherFinetuneConfig"),
    "calibrate": ("fit the temperature on labelled events", "CalibrateConfig"),
    "eval": ("accuracy, NLL, ECE and rationale concept F1 on labelled events", "TeacherEvalConfig"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("teacher", help="build, fine-tune, calibrate or evaluate the VLM teacher", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="teacher_verb", metavar="SUBVERB", required=True)
    for name, (helptext, cls_name) in SUBVERBS.items():
        q = verbs.add_parser(name, help=helptext, description=helptext)
        q.fill = lambda parser, cls_name=cls_name: add_arguments(parser, cls_name)
        q.set_defaults(func=globals()[f"run_{name}"])


def add_arguments(p: argparse.ArgumentParser, cls_name: str) -> None:
    from nudistill.teacher import stages

    add_dataclass_arguments(p, getattr(stages, cls_name))
    if cls_name == "TeacherFinetuneConfig":  # the modes as the short flags the README uses
        p.add_argument("--full", action="store_const", const="full", dest="mode", help="--mode full: train all weights")
        p.add_argument("--qlora", action="store_const", const="qlora", dest="mode",
                       help="--mode qlora: 4-bit NF4 base plus LoRA")


def _config(args: argparse.Namespace, verb: str):
    from nudistill.cli.dataclass_args import config_from_args, say_config

    return say_config(f"teacher {verb}", config_from_args(args._config_cls, args))


def run_init(args: argparse.Namespace) -> int:
    from nudistill.log import say
    from nudistill.teacher.stages import run_init as init

    say(f"tiny Mllama teacher written to {init(_config(args, 'init'))}")
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from nudistill.log import say
    from nudistill.teacher.stages import finetune_teacher

    result = finetune_teacher(_config(args, "finetune"))
    last = result.history[-1] if result.history else {}
    say(json.dumps({k: last[k] for k in last if k != "rationale_example"}))
    say(f"teacher written to {result.out}: {result.steps} steps on {result.events} events in {result.seconds:.0f} s")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from nudistill.log import say
    from nudistill.teacher.stages import calibrate_teacher

    r = calibrate_teacher(_config(args, "calibrate"))
    say(json.dumps(r))
    say(f"temperature {r['temperature_before']:.3g} -> {r['temperature_after']:.3g}: NLL {r['nll_before']:.4f} -> "
        f"{r['nll_after']:.4f}, ECE {r['ece_before']:.4f} -> {r['ece_after']:.4f} on {r['events']} events")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from nudistill.log import say
    from nudistill.teacher.stages import run_eval as evaluate

    say(json.dumps(evaluate(_config(args, "eval"))))
    return 0
