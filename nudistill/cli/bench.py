"""`nudistill bench`: the latency certificate of a shipped model, as JSON on stdout.

Example: ``nudistill bench model.onnx --calls 1000 --write-certificate``
Batch-1 latency at 1 thread over --calls calls after warm-up (p50, p99, max), batch-64 throughput, the
RSS of the scoring process and the CPU model. It runs in a fresh process that imports only numpy and
onnxruntime, as an online filter would, so the RSS is the filter's. `nudistill export` already certifies
every model it writes; --write-certificate replaces that certificate (metrics["latency"] in the model's
metadata and its model.opt.onnx) with this measurement, including its batch-1 samples, which the JSON
printed here leaves out.
"""

from __future__ import annotations

import argparse

from nudistill.cli.args import non_negative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure latency, throughput and RSS of an ONNX model", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a contract-3 ONNX model")
    p.add_argument("--calls", type=positive_int, default=1000, help="timed batch-1 calls after warm-up (default 1000)")
    p.add_argument("--warmup", type=non_negative_int, default=100, help="untimed calls first (default 100)")
    p.add_argument("--threads", type=positive_int, default=1, help="intra-op threads (default 1, the certificate's)")
    p.add_argument("--batch", type=positive_int, default=64, help="batch size for the throughput figure (default 64)")
    p.add_argument("--write-certificate", action="store_true", help="write the result into the model's metadata")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from nudistill.config import from_namespace
    from nudistill.export.certificate import BenchConfig, run_bench

    cert = run_bench(from_namespace(BenchConfig, args))
    print(json.dumps({k: v for k, v in cert.items() if k != "samples_ms"}, indent=2))  # samples: in the model only
    return 0
