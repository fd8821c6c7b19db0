"""Ray job: label a production events dataset with the VLM teacher (contract 2), resumable, exactly once.

The same options and the same library call as ``nudistill label`` (nudistill.label.run_label); run_label
connects to the cluster this job was submitted to (RAY_ADDRESS).

Submit to a cluster (see README and cluster.yaml):
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python ray_jobs/label_dataset.py --events s3://bucket/events/ --teacher /models/teacher \
        --out s3://bucket/labels/ --replicas 8 --gpus-per-replica 1
Tiny CPU run against a local head:
    ray start --head && ray job submit --working-dir . -- python ray_jobs/label_dataset.py \
        --events events/ --teacher teacher/ --out labels/ --replicas 1
"""

import argparse
import sys

from nudistill.cli.dataclass_args import config_from_args, parse_args, say_config
from nudistill.cli.label import add_arguments
from nudistill.errors import UserError
from nudistill.label import LabelConfig, run_label


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    try:
        run_label(say_config("label", config_from_args(LabelConfig, parse_args(parser))))
    except UserError as exc:
        print(f"label_dataset: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
