"""Contract 2 (docs/contracts.md): the teacher's labels, one row per input event, keyed by ``event_id``.

Columns: ``event_id``, ``probs`` (fixed_size_list<float32>[3], CLASSES order, null unless ok),
``pred``, ``confidence``, ``rationale`` (null when the policy skipped it), ``concepts``, ``teacher``,
``status`` (``ok`` or ``error: <reason> (<detail>)``). nudistill adds ``source_row`` (uint64), the
input row's identity (a hash of its file and position), which is what makes resume exactly-once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nudistill import CLASSES

LABEL_SCHEMA = pa.schema([
    pa.field("event_id", pa.string()),
    pa.field("probs", pa.list_(pa.float32(), len(CLASSES))),
    pa.field("pred", pa.string()),
    pa.field("confidence", pa.float32()),
    pa.field("rationale", pa.string()),
    pa.field("concepts", pa.list_(pa.string())),
    pa.field("teacher", pa.string()),
    pa.field("status", pa.string()),
    pa.field("source_row", pa.uint64()),
])

OK = "ok"


def ok_rows(event_ids: Sequence[str], probs: np.ndarray, rationale: Sequence[str | None],
            concepts: Sequence[Sequence[str]], teacher: str, source_row: np.ndarray) -> pa.Table:
    """Contract-2 rows for labelled events; ``probs`` is (B, 3) float32."""
    probs = np.asarray(probs, np.float32).reshape(-1, len(CLASSES))
    n = len(probs)
    flat = pa.array(probs.reshape(-1), pa.float32())
    return pa.table({
        "event_id": pa.array(list(event_ids), pa.string()),
        "probs": pa.FixedSizeListArray.from_arrays(flat, len(CLASSES)),
        "pred": pa.array([CLASSES[i] for i in probs.argmax(1)], pa.string()),
        "confidence": pa.array(probs.max(1) if n else np.zeros(0, np.float32), pa.float32()),
        "rationale": pa.array(list(rationale), pa.string()),
        "concepts": pa.array([list(c) for c in concepts], pa.list_(pa.string())),
        "teacher": pa.array([teacher] * n, pa.string()),
        "status": pa.array([OK] * n, pa.string()),
        "source_row": pa.array(np.asarray(source_row, np.uint64), pa.uint64()),
    }, schema=LABEL_SCHEMA)


def error_rows(event_ids: Sequence[str | None], statuses: Sequence[str], teacher: str,
               source_row: np.ndarray) -> pa.Table:
    """Contract-2 rows for events that were not labelled: null probs, the reason in ``status``."""
    n = len(statuses)
    return pa.table({
        "event_id": pa.array(list(event_ids), pa.string()),
        "probs": pa.nulls(n, LABEL_SCHEMA.field("probs").type),
        "pred": pa.nulls(n, pa.string()),
        "confidence": pa.nulls(n, pa.float32()),
        "rationale": pa.nulls(n, pa.string()),
        "concepts": pa.array([[] for _ in range(n)], pa.list_(pa.string())),
        "teacher": pa.array([teacher] * n, pa.string()),
        "status": pa.array(list(statuses), pa.string()),
        "source_row": pa.array(np.asarray(source_row, np.uint64), pa.uint64()),
    }, schema=LABEL_SCHEMA)


def probs_matrix(table: pa.Table) -> np.ndarray:
    """(N, 3) float32 probs of a contract-2 table (NaN rows where probs is null)."""
    col = table.column("probs").combine_chunks()
    out = np.full((len(col), len(CLASSES)), np.nan, np.float32)
    valid = np.asarray(col.is_valid())
    if valid.any():
        out[valid] = np.asarray(col.filter(pa.array(valid)).flatten(), np.float32).reshape(-1, len(CLASSES))
    return out


def is_ok(table: pa.Table) -> np.ndarray:
    """(N,) bool: rows whose status is ok."""
    return np.asarray(pc.equal(table.column("status"), OK).fill_null(False))
