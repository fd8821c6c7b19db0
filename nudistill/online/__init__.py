"""The online side of a shipped model: numpy and onnxruntime only, never torch or ray (docs/design.md).

- :mod:`.scorer`   :class:`Scorer`, the contract-3 reader and the filter policy (what a trigger-adjacent filter runs);
- :mod:`.latency`  the latency certificate, always measured in a clean process (:func:`~.latency.certify`);
- :mod:`.certify`  that clean process's entry point (``python -m nudistill.online.certify``, called by ``certify``);
- :mod:`.dataset`  streaming scoring of a whole events dataset to Parquet (``nudistill score``; reads with pyarrow).

    from nudistill.online import Scorer
    scorer = Scorer("model.onnx")
"""

from nudistill.online.scorer import (
    INPUTS,
    METADATA_KEYS,
    OPTIMIZED_SUFFIX,
    OUTPUTS,
    Scorer,
    apply_policy,
    optimized_path,
    read_contract,
    session_options,
)

__all__ = ["INPUTS", "METADATA_KEYS", "OPTIMIZED_SUFFIX", "OUTPUTS", "Scorer", "apply_policy", "optimized_path",
           "read_contract", "session_options"]
