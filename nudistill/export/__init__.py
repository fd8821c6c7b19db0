"""Contract 3 (docs/contracts.md): export a student checkpoint to a checked, self-describing ONNX model.

    from nudistill.export import ExportConfig, export_checkpoint
    report = export_checkpoint(ExportConfig(checkpoint="ckpt/", out="model.onnx"))

- :mod:`.graph`     the traced graph: uint8 views in, softmax ``probs`` and sigmoid ``concepts`` out;
- :mod:`.metadata`  ``metadata_props`` of contract 3, and the latency certificate written into them;
- :mod:`.certificate` the bench stage: a certificate measured in a clean process, optionally written in;
- :mod:`.checks`    the checker, PyTorch parity on real events, batch 1 and 64;
- :mod:`.quantize`  optional static QDQ int8, written only when it keeps agreement and accuracy;
- :mod:`.pipeline`  the whole export: config, events, checks, offline-optimised graph, certificate, atomic writes.
"""

from nudistill.export.metadata import read_metadata, update_metadata
from nudistill.export.pipeline import ExportConfig, export_checkpoint

__all__ = ["ExportConfig", "export_checkpoint", "read_metadata", "update_metadata"]
