"""`nudistill evaluate`: metrics of a student checkpoint or an exported ONNX model, at full and half resolution.

Example: ``nudistill evaluate --model student/ --events test_events/ --labels test_labels/ --out eval.json``
(``--model model.onnx`` evaluates the exported file through the online scorer.)
"""

from __future__ import annotations

import argparse

from nudistill.cli.args import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a student (checkpoint or ONNX) against truth and the teacher",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="student checkpoint directory (model.safetensors + config.json) "
                   "or an exported .onnx file")
    p.add_argument("--events", required=True, help="events dataset (contract 1); truth `label`/`concepts` columns "
                   "give accuracy, AUC and concept AUC")
    p.add_argument("--labels", help="teacher labels (contract 2) for agreement and the teacher's own accuracy")
    p.add_argument("--out", required=True, help="JSON file for the report (full and half resolution)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="events per model call (default 64)")
    p.add_argument("--limit", type=positive_int, help="evaluate only the first N events")
    p.add_argument("--threads", type=positive_int, default=1, help="onnxruntime intra-op threads for .onnx (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from nudistill.log import say
    from nudistill.student.evaluate import evaluate

    report = evaluate(args.model, args.events, args.labels, args.batch_size, args.limit, args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    line = {res: {k: report[res].get(k) for k in ("n", "accuracy", "macro_auc", "agreement")} for res in ("full", "half")}
    say(f"wrote {out}: {json.dumps(line)}")
    return 0
