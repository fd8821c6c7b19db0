"""The bench stage: a shipped model's latency certificate, measured in a clean process, optionally written in.

    from nudistill.export.certificate import BenchConfig, run_bench
    cert = run_bench(BenchConfig(model="model.onnx", calls=1000, write_certificate=True))

``nudistill export`` already writes a certificate into every model it ships (contract 3); the bench stage
re-measures one (on this machine, with other settings) and, with ``write_certificate``, replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass

from nudistill.errors import UserError
from nudistill.export.metadata import write_latency_certificate
from nudistill.online.latency import certify


@dataclass
class BenchConfig:
    """Settings of ``nudistill bench``."""

    model: str
    """A contract-3 ONNX model."""
    calls: int = 1000
    """Timed batch-1 calls after warm-up."""
    warmup: int = 100
    """Untimed calls before timing."""
    threads: int = 1
    """Intra-op threads (the certificate's is 1)."""
    batch: int = 64
    """Batch size of the throughput figure."""
    write_certificate: bool = False
    """Write the result into the model's metadata as metrics["latency"] (and into its model.opt.onnx)."""

    def __post_init__(self):
        for name, low in (("calls", 1), ("warmup", 0), ("threads", 1), ("batch", 1)):
            if getattr(self, name) < low:
                raise UserError(f"--{name} must be at least {low}, got {getattr(self, name)}")


def run_bench(cfg: BenchConfig) -> dict:
    """Measure ``cfg.model`` in a clean process; with ``write_certificate``, store the result in the model."""
    cert = certify(cfg.model, cfg.calls, cfg.warmup, cfg.threads, cfg.batch)
    if cfg.write_certificate:
        cert["written_to"] = [str(p) for p in write_latency_certificate(cfg.model, cert)]
    return cert
