"""Ray job: train a student with Ray Train (DDP over N workers), export it to a checked ONNX model, then
benchmark and evaluate it and write its report (bench.json, evaluation.json, latency.png, report.md) to --out.

The options are `nudistill distill`'s (DistillConfig) plus --onnx; the work is one library call,
nudistill.export.ship.distill_and_export, which connects to the cluster this job was submitted to (RAY_ADDRESS).

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

from nudistill.cli.dataclass_args import config_from_args, parse_args, say_config
from nudistill.cli.distill import add_arguments
from nudistill.errors import UserError
from nudistill.student.config import DistillConfig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--onnx", help="path of the exported model (default OUT/model.onnx)")
    try:
        args = parse_args(parser)
        from nudistill.export.ship import distill_and_export

        result = distill_and_export(say_config("distill", config_from_args(DistillConfig, args)), args.onnx)
        print(json.dumps(result["export"], default=str), flush=True)
        print(f"report: {result['report']}", flush=True)
    except UserError as exc:
        print(f"distill_and_export: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
