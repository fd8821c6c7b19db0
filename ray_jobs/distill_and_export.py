"""Ray job: train a student with Ray Train (DDP over N workers), export it to a checked ONNX model, then
benchmark and evaluate it and write its report (bench.json, evaluation.json, latency.png, report.md) to --out.

Submit to a cluster (see README and cluster.yaml):
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python ray_jobs/distill_and_export.py --events s3://bucket/events/ --labels s3://bucket/labels/ \
        --out /shared/student --workers 4 --epochs 20
Tiny CPU run against a local head:
    ray start --head && ray job submit --working-dir . -- python ray_jobs/distill_and_export.py \
        --events /tmp/ev --out /tmp/st --alpha 0 --hard-labels truth --concept-source truth --epochs 1 --workers 2
"""

import argparse
import json
import sys
from pathlib import Path

from nudistill.cli.distill import add_arguments, config_of
from nudistill.config import config_dict
from nudistill.errors import UserError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--onnx", help="path of the exported model (default OUT/model.onnx)")
    args = parser.parse_args()
    try:
        cfg = config_of(args)
        print(json.dumps(config_dict(cfg), sort_keys=True), flush=True)  # the resolved config
        from nudistill.export import ExportConfig, export_checkpoint
        from nudistill.student.ray_train import train_with_ray

        train_with_ray(cfg)  # connects to the cluster this job was submitted to (RAY_ADDRESS)
        report = export_checkpoint(ExportConfig(checkpoint=cfg.out, out=args.onnx or str(Path(cfg.out) / "model.onnx"),
                                                events=cfg.events))
        print(json.dumps(report, default=str), flush=True)
        from nudistill.report.shipping import write_shipping_report

        onnx = args.onnx or str(Path(cfg.out) / "model.onnx")
        print(f"report: {write_shipping_report(onnx, cfg.events, cfg.labels, cfg.out)}", flush=True)
    except UserError as exc:
        print(f"distill_and_export: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
