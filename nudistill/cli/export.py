"""`nudistill export`: a student checkpoint to a checked, self-describing ONNX model (contract 3).

Example: ``nudistill export runs/student --out model.onnx``  (+ ``--int8`` to try static int8)
Writes model.onnx (portable), model.opt.onnx (optimised offline; what the scorer loads), model.export.json,
and model.int8.onnx only when int8 keeps >= 99% argmax agreement and loses <= 0.5 accuracy points.
"""

from __future__ import annotations

import argparse

from nudistill.cli.args import fraction, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a student checkpoint to ONNX (checked)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="student checkpoint directory (model.safetensors + config.json)")
    p.add_argument("--out", default="model.onnx", help="ONNX file to write; siblings go beside it (default model.onnx)")
    p.add_argument("--events", help="events for the PyTorch parity check (default: simulated at the model's resolution)")
    p.add_argument("--check-events", type=positive_int, default=256, help="events compared with PyTorch, at least 256 (default 256)")
    p.add_argument("--tolerance", type=positive_float, default=1e-4, help="largest |Δprob| allowed against PyTorch (default 1e-4)")
    p.add_argument("--teacher", help="teacher id for the metadata (default: the one recorded in the checkpoint)")
    p.add_argument("--no-optimize", dest="optimize", action="store_false", help="skip the offline-optimised model.opt.onnx")
    p.add_argument("--int8", action="store_true", help="also try static QDQ int8; written only if it passes the gates")
    p.add_argument("--calibration", help="events for int8 calibration (default: simulated, disjoint from the check events)")
    p.add_argument("--calibration-events", type=positive_int, default=256, help="number of calibration events (default 256)")
    p.add_argument("--min-agreement", type=fraction, default=0.99, help="int8 gate: argmax agreement with fp32 (default 0.99)")
    p.add_argument("--max-accuracy-drop", type=positive_float, default=0.5, help="int8 gate: accuracy drop in points (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of simulated check events (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from nudistill.config import config_dict, from_namespace
    from nudistill.export import ExportConfig, export_checkpoint
    from nudistill.log import get_logger, say

    cfg = from_namespace(ExportConfig, args)
    get_logger("export").info("export config: %s", json.dumps(config_dict(cfg)))
    report = export_checkpoint(cfg)
    worst = max(p["max_abs_dprob"] for p in report["parity"])
    acc = report["metrics"].get("accuracy")
    say(f"wrote {report['files']['model']} and {report['files']['optimized'] or 'no optimised graph'}: checker ok, "
        f"max |Δprob| vs PyTorch {worst:.2g} on {cfg.check_events} events, batch 1 and 64 ok"
        + (f", accuracy {100 * acc:.1f}%" if acc is not None else ""))
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
