"""`nudistill bench`: the latency certificate of a shipped model, as JSON on stdout.

Example: ``nudistill bench model.onnx --calls 1000 --write-certificate``
Batch-1 latency at 1 thread over --calls calls after warm-up (p50, p99, max), batch-64 throughput, the
RSS of the scoring process and the CPU model. It runs in a fresh process that imports only numpy and
onnxruntime, as an online filter would, so the RSS is the filter's. --write-certificate stores the result
as metrics["latency"] in the model's metadata (and its model.opt.onnx).
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
    import subprocess
    import sys

    from nudistill.errors import UserError

    cmd = [sys.executable, "-m", "nudistill.online_bench", args.model, "--calls", str(args.calls),
           "--warmup", str(args.warmup), "--threads", str(args.threads), "--batch", str(args.batch)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "the benchmark failed"
        raise UserError(last.removeprefix("error: "))
    cert = json.loads(proc.stdout)
    if args.write_certificate:
        from nudistill.export.metadata import write_latency_certificate

        cert["written_to"] = [str(p) for p in write_latency_certificate(args.model, cert)]
    print(json.dumps(cert, indent=2))
    return 0
