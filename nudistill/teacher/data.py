"""Labelled events for fine-tuning, calibration and evaluation, read once into memory (pooled views)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nudistill import CLASSES
from nudistill.errors import UserError
from nudistill.events import Validator, decode_views, iter_batches
from nudistill.log import get_logger
from nudistill.pooling import pool_views

log = get_logger("teacher")


@dataclass
class Labelled:
    """Events with truth: views (N, 2, h, w) uint8, y (N,) int, rationale/concepts/event_id lists."""

    views: np.ndarray
    y: np.ndarray
    rationale: list[str | None]
    concepts: list[list[str]]
    event_id: list[str]

    def __len__(self) -> int:
        return len(self.y)

    @staticmethod
    def join(parts: list[Labelled]) -> Labelled:
        """One set holding every event of ``parts``, in order (views must share their size)."""
        if len(parts) == 1:
            return parts[0]
        return Labelled(np.concatenate([p.views for p in parts]), np.concatenate([p.y for p in parts]),
                        [r for p in parts for r in p.rationale], [c for p in parts for c in p.concepts],
                        [e for p in parts for e in p.event_id])

    def take(self, idx) -> Labelled:
        idx = np.asarray(idx)
        return Labelled(self.views[idx], self.y[idx], [self.rationale[i] for i in idx],
                        [self.concepts[i] for i in idx], [self.event_id[i] for i in idx])


def load_labelled(uri, limit: int | None = None, view_size: int | None = None, skip: int = 0) -> Labelled:
    """Valid rows with a label from ``uri`` (after skipping ``skip`` rows), views max-pooled to ``view_size``."""
    views, y, rationale, concepts, ids = [], [], [], [], []
    validator, bad, seen = Validator(), 0, 0
    stop = None if limit is None else skip + limit
    for batch in iter_batches(uri, batch_size=256, limit=stop):
        start = max(0, skip - seen)
        seen += batch.num_rows
        if start >= batch.num_rows:
            continue
        batch = batch.slice(start)
        ok, errors = validator(batch)
        bad += len(errors)
        names = batch.schema.names
        labels = batch.column("label").to_pylist() if "label" in names else [None] * batch.num_rows
        ok &= np.array([lab is not None for lab in labels], bool)
        if not ok.any():
            continue
        batch = batch.filter(ok)
        views.append(pool_views(decode_views(batch), view_size))
        y += [CLASSES.index(lab) for lab, k in zip(labels, ok) if k]
        rationale += batch.column("rationale").to_pylist() if "rationale" in names else [None] * batch.num_rows
        concepts += [c or [] for c in batch.column("concepts").to_pylist()] if "concepts" in names \
            else [[] for _ in range(batch.num_rows)]
        ids += batch.column("event_id").to_pylist()
    if bad:
        log.warning("%d event rows broke contract 1 or had no label and were skipped", bad)
    if not y:
        raise UserError(f"{uri} holds no valid labelled events (a 'label' column with one of {', '.join(CLASSES)})")
    return Labelled(np.concatenate(views), np.array(y), rationale, concepts, ids)
