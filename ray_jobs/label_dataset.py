"""Ray job: label a production events dataset with the VLM teacher (contract 2), resumable, exactly once.

Submit to a cluster (see README and cluster.yaml):
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python ray_jobs/label_dataset.py --events s3://bucket/events/ --teacher /models/teacher \
        --out s3://bucket/labels/ --replicas 8 --gpus-per-replica 1
Tiny CPU run against a local head:
    ray start --head && ray job submit --working-dir . -- python ray_jobs/label_dataset.py \
        --events events/ --teacher teacher/ --out labels/ --replicas 1
"""

import argparse
import json
import sys

from nudistill.cli.label import add_arguments
from nudistill.config import config_dict, from_namespace
from nudistill.errors import UserError
from nudistill.label import LabelConfig
from nudistill.label.pipeline import ensure_ray, run_label


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    try:
        cfg = from_namespace(LabelConfig, parser.parse_args())
        print(json.dumps(config_dict(cfg), sort_keys=True), flush=True)  # the resolved config
        ensure_ray()  # connects to the cluster this job was submitted to (RAY_ADDRESS)
        run_label(cfg)
    except UserError as exc:
        print(f"label_dataset: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
