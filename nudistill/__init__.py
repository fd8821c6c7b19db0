"""nudistill: distil a LArTPC vision-language teacher into a fast two-view CNN.

The class and concept orders below are part of every data contract (docs/contracts.md):
probability vectors, ONNX outputs and confusion matrices all use them.
"""

__version__ = "0.1.0"

CLASSES: tuple[str, ...] = ("nue_cc", "numu_cc", "nc")
"""Event classes, in contract order."""

CONCEPTS: tuple[str, ...] = (
    "muon_track",
    "em_shower",
    "displaced_shower",
    "proton_stub",
    "pion_track",
    "hadronic_activity_only",
)
"""Physics concepts that rationales name and the student predicts, in contract order."""
