"""`nudistill export`: a student checkpoint to a checked, self-describing ONNX model (contract 3).

Example: ``nudistill export runs/student --events my_events/ --out model.onnx``  (+ ``--int8`` to try static int8)
Writes model.onnx (portable), model.opt.onnx (optimised offline; what the scorer loads), model.export.json
(the resolved config and every check), and model.int8.onnx only when int8 keeps >= 99% argmax agreement and
loses <= 0.5 accuracy points. The parity and accuracy checks run on --events; without it the export checks
parity on simulated events and gives accuracy only for a student of the simulator's size, labelled as such.
Options come from :class:`nudistill.export.ExportConfig`.
"""

from __future__ import annotations

import argparse

from nudistill.cli.dataclass_args import add_dataclass_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a student checkpoint to ONNX (checked)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.fill = add_arguments  # options from the config dataclass, built when this verb runs
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nudistill.export.pipeline import ExportConfig

    add_dataclass_arguments(p, ExportConfig, positional=("checkpoint",))


def accuracy_line(metrics: dict) -> str:
    """``accuracy 91.2% on 256 events of E``, the simulated-events caveat, or why there is none."""
    if metrics.get("accuracy") is not None:
        return f"accuracy {100 * metrics['accuracy']:.1f}% on {metrics['accuracy_on']}"
    return metrics.get("accuracy_skipped") or f"no accuracy: {metrics['check_events']} carry no truth label"


def run(args: argparse.Namespace) -> int:
    from nudistill.cli.dataclass_args import config_from_args, say_config
    from nudistill.export import ExportConfig, export_checkpoint
    from nudistill.log import say

    cfg = say_config("export", config_from_args(ExportConfig, args))
    report = export_checkpoint(cfg)
    worst = max(p["max_abs_dprob"] for p in report["parity"])
    say(f"wrote {report['files']['model']} and {report['files']['optimized'] or 'no optimised graph'}: checker ok, "
        f"max |Δprob| vs PyTorch {worst:.2g} on {cfg.check_events} events of {report['metrics']['check_events']}, "
        f"batch 1 and 64 ok; {accuracy_line(report['metrics'])}")
    q = report.get("int8")
    if q is None:
        return 0
    if q["accepted"]:
        say(f"wrote {q['path']}: agreement {100 * q['agreement']:.2f}%, accuracy drop {q['accuracy_drop_points']:.2f} "
            f"points, median {q['int8_median_ms']} ms vs fp32 {q['fp32_median_ms']} ms"
            + ("; int8 is slower here, so ship the fp32 model" if q["int8_median_ms"] > q["fp32_median_ms"] else ""))
        return 0
    say(f"int8 refused: {'; '.join(q['refused_because'])} (fp32 median {q['fp32_median_ms']} ms, "
        f"int8 {q['int8_median_ms']} ms); the fp32 model stands")
    return 1
