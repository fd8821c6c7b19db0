"""`nudistill bench`: the latency certificate of a shipped model, as JSON on stdout.

Example: ``nudistill bench model.onnx --calls 1000 --write-certificate``
Batch-1 latency at 1 thread over --calls calls after warm-up (p50, p99, max), batch-64 throughput, the
RSS of the scoring process and the CPU model. It runs in a fresh process that imports only numpy and
onnxruntime, as an online filter would, so the RSS is the filter's. `nudistill export` already certifies
every model it writes; --write-certificate replaces that certificate (metrics["latency"] in the model's
metadata and its model.opt.onnx) with this measurement, including its batch-1 samples, which the JSON
printed here leaves out; the JSON holds the resolved config under "config".
Options come from :class:`nudistill.export.certificate.BenchConfig`.
"""

from __future__ import annotations

import argparse

from nudistill.cli.dataclass_args import add_dataclass_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure latency, throughput and RSS of an ONNX model", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.fill = add_arguments  # options from the config dataclass, built when this verb runs
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from nudistill.export.certificate import BenchConfig

    add_dataclass_arguments(p, BenchConfig, positional=("model",))


def run(args: argparse.Namespace) -> int:
    import json

    from nudistill.cli.dataclass_args import config_from_args
    from nudistill.config import config_dict
    from nudistill.export.certificate import BenchConfig, run_bench

    cfg = config_from_args(BenchConfig, args)
    cert = run_bench(cfg)
    shown = {k: v for k, v in cert.items() if k != "samples_ms"}  # the samples: in the written certificate only
    print(json.dumps({"config": config_dict(cfg), **shown}, indent=2))  # stdout stays one JSON document
    return 0
