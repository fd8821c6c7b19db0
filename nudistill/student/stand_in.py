"""A stand-in teacher for tests and development: contract-2 labels derived from truth with noise.

It is NOT the teacher: acceptance numbers (bench/distill.py) come from real teacher labels. It exists so the
trainer can be tested and developed without a VLM: probabilities are a softened one-hot of the truth with
Gaussian logit noise (so some labels are wrong and confidences vary), concepts are the truth concepts with
random drops, some rationales are missing (null) and some rows fail (status ``error: ...``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from nudistill import CLASSES
from nudistill.metrics import softmax

STAND_IN_ID = "stand-in-truth-noise"


def stand_in_labels(events: pa.Table, noise: float = 1.0, no_rationale: float = 0.2, errors: float = 0.02,
                    concept_drop: float = 0.1, seed: int = 0) -> pa.Table:
    """Contract-2 labels for ``events`` (needs ``label``; uses ``concepts`` when present)."""
    rng = np.random.default_rng(seed)
    n = events.num_rows
    truth = np.array([CLASSES.index(x) for x in events.column("label").to_pylist()])
    logits = 3.0 * np.eye(len(CLASSES))[truth] + noise * rng.normal(size=(n, len(CLASSES)))
    probs = softmax(logits)
    truth_concepts = events.column("concepts").to_pylist() if "concepts" in events.schema.names else [[]] * n
    status, rationale, concepts, plist = [], [], [], []
    for i in range(n):
        bad = rng.random() < errors
        status.append("error: stand_in (simulated teacher failure)" if bad else "ok")
        plist.append(None if bad else probs[i].tolist())
        kept = [c for c in truth_concepts[i] or [] if rng.random() >= concept_drop]
        has = not bad and rng.random() >= no_rationale
        rationale.append(("I see " + ", ".join(kept) + ".") if has else None)
        concepts.append(kept if has else [])
    pred = [CLASSES[int(p.argmax())] for p in probs]
    return pa.table({
        "event_id": events.column("event_id"),
        "probs": pa.array(plist, pa.list_(pa.float32(), len(CLASSES))),
        "pred": pa.array([p if s == "ok" else None for p, s in zip(pred, status)], pa.string()),
        "confidence": pa.array([float(max(p)) if p else None for p in plist], pa.float32()),
        "rationale": pa.array(rationale, pa.string()),
        "concepts": pa.array(concepts, pa.list_(pa.string())),
        "teacher": pa.array([STAND_IN_ID] * n, pa.string()),
        "status": pa.array(status, pa.string()),
    })
