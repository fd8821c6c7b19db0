"""Training data: events (contract 1) joined with teacher labels (contract 2) on ``event_id``, streaming.

The labels table is small per event (probs, concepts), so it is held as an ``event_id -> row`` index;
the events stream in record batches (:func:`nudistill.events.iter_batches`), so a dataset larger than
memory trains. Rows whose label status is not ``ok`` are skipped and counted. The validation split is a
hash of ``event_id``: deterministic, independent of file order and sharding.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch

from nudistill import CLASSES, CONCEPTS
from nudistill.errors import UserError
from nudistill.events import Validator, concepts_to_multi_hot, decode_views, iter_batches, resolve_dataset
from nudistill.shifts import DetectorAugment

LABEL_COLUMNS = ("event_id", "probs", "status", "rationale", "concepts")
HARD_SOURCES = ("truth", "teacher")
CONCEPT_SOURCES = ("teacher", "truth", "none")
_CLASS_INDEX = {c: i for i, c in enumerate(CLASSES)}


def is_val(event_id: str, val_fraction: float) -> bool:
    """Deterministic split: the first 8 bytes of blake2b(event_id) as a fraction below ``val_fraction``."""
    h = int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")
    return h / 2**64 < val_fraction


@dataclass
class LabelIndex:
    """Teacher labels by event: probs ``(N, 3)``, concepts ``(N, K)``, rationale mask ``(N,)``, ok ``(N,)``."""

    rows: dict[str, int]
    probs: np.ndarray
    concepts: np.ndarray
    has_rationale: np.ndarray
    ok: np.ndarray
    teacher: str = ""
    status_counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, uri) -> "LabelIndex":
        """Load the label columns of a contract-2 dataset (file, directory or glob)."""
        ds = resolve_dataset(uri, required=(), what="labels (contract 2)", flag=None)  # columns checked below
        missing = [c for c in LABEL_COLUMNS if c not in ds.schema.names]
        if missing:
            raise UserError(f"labels {uri} lack the column(s) {', '.join(missing)} (contract 2)")
        cols = list(LABEL_COLUMNS) + (["teacher"] if "teacher" in ds.schema.names else [])
        table = ds.to_table(columns=cols)
        ids = table.column("event_id").to_pylist()
        status = table.column("status").to_pylist()
        ok = np.array([s == "ok" for s in status], bool)
        probs = np.full((len(ids), len(CLASSES)), np.nan, np.float32)
        pl = table.column("probs").to_pylist()
        for i, p in enumerate(pl):
            if ok[i] and p is not None and len(p) == len(CLASSES):
                probs[i] = p
        ok &= np.isfinite(probs).all(1)
        teachers = sorted({t for t in table.column("teacher").to_pylist() if t}) if "teacher" in cols else []
        return cls(rows={e: i for i, e in enumerate(ids)}, probs=probs,
                   concepts=concepts_to_multi_hot(table.column("concepts").to_pylist()),
                   has_rationale=np.asarray(table.column("rationale").is_null()) == 0, ok=ok,
                   teacher=",".join(teachers),
                   status_counts=dict(Counter("ok" if o else "not_ok" for o in ok)))


@dataclass
class DataSpec:
    """What to read and which targets to build (a plain, picklable part of the training config)."""

    events: str
    labels: str | None = None
    hard_labels: str = "teacher"
    concept_source: str = "teacher"
    val_fraction: float = 0.15
    height: int = 0
    width: int = 0
    read_batch: int = 256
    skip_bad_files: bool = False


@dataclass
class Survey:
    """The pre-pass over ``event_id``/``height``/``width``: coverage, resolution and split sizes."""

    height: int
    width: int
    n_train: int
    n_val: int
    counts: dict[str, int]


def survey(spec: DataSpec, index: LabelIndex | None) -> Survey:
    """Check that labels cover the events and that all events share one resolution; count the split.

    Raises a UserError in one sentence on mismatched inputs (labels that miss events, mixed resolutions).
    """
    counts: Counter = Counter()
    shape, missing = None, []
    n_train = n_val = 0
    for batch in iter_batches(spec.events, spec.read_batch, columns=["event_id", "height", "width"],
                              skip_bad_files=spec.skip_bad_files):
        ids = batch.column("event_id").to_pylist()
        hs, ws = batch.column("height").to_pylist(), batch.column("width").to_pylist()
        for eid, h, w in zip(ids, hs, ws):
            counts["events"] += 1
            if shape is None:
                shape = (h, w)
            elif (h, w) != shape:
                counts["wrong_shape"] += 1
                continue
            if eid is None:
                continue
            if index is not None:
                row = index.rows.get(eid)
                if row is None:
                    missing.append(eid)
                    continue
                if not index.ok[row]:
                    counts["label_not_ok"] += 1
                    continue
            if is_val(eid, spec.val_fraction):
                n_val += 1
            else:
                n_train += 1
    if shape is None:
        raise UserError(f"events {spec.events} hold no rows")
    if missing:
        raise UserError(f"labels {spec.labels} do not cover the events: {len(missing)} of {counts['events']} event ids "
                        f"(e.g. {missing[0]!r}) have no label row; label these events first")
    if spec.height and (spec.height, spec.width) != shape:
        raise UserError(f"events {spec.events} are {shape[0]}x{shape[1]} but the student expects "
                        f"{spec.height}x{spec.width}")
    if n_train == 0:
        raise UserError(f"no usable training events in {spec.events} ({dict(counts)})")
    return Survey(shape[0], shape[1], n_train, n_val, dict(counts))


class DistillDataset(torch.utils.data.IterableDataset):
    """Streams ``(sample dict)`` of one split, sharded over DDP ranks and loader workers by row number.

    Each sample: ``xz``/``yz`` ``(H, W)`` uint8, ``teacher_probs`` ``(3,)``, ``hard`` int (-1 = none),
    ``truth`` int (-1 = unknown), ``concepts`` ``(K,)``, ``concept_mask`` float.
    """

    def __init__(self, spec: DataSpec, index: LabelIndex | None, split: str, augment: DetectorAugment | None = None,
                 shuffle_buffer: int = 0, seed: int = 0, rank: int = 0, world: int = 1):
        self.spec, self.index, self.split, self.augment = spec, index, split, augment
        self.shuffle_buffer, self.seed, self.rank, self.world = shuffle_buffer, seed, rank, world
        self.epoch = 0
        self.counts: Counter = Counter()

    def set_epoch(self, epoch: int) -> None:
        """Reseed shuffling and augmentation for this epoch."""
        self.epoch = epoch

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        shard, nshards = self.rank * nw + wid, self.world * nw
        rng = np.random.default_rng([self.seed, self.epoch, shard])
        samples = self._samples(shard, nshards, rng)
        return _shuffled(samples, self.shuffle_buffer, rng) if self.shuffle_buffer > 1 else samples

    def _samples(self, shard: int, nshards: int, rng: np.random.Generator):
        spec, want_val = self.spec, self.split == "val"
        validator = Validator((spec.height, spec.width) if spec.height else None)
        i = -1
        for batch in iter_batches(spec.events, spec.read_batch, skip_bad_files=spec.skip_bad_files):
            ok, errors = validator(batch)
            self.counts["invalid_rows"] += len(errors)
            rows = self._rows(batch, ok, want_val)
            if not rows:
                continue
            sub = batch.take(pa.array([r for r, _ in rows]))
            views = decode_views(sub)  # (b, 2, H, W) uint8
            targets = self._targets(sub, [lab for _, lab in rows])
            for j in range(len(rows)):
                i += 1
                if i % nshards != shard:
                    continue
                v = self.augment(views[j], rng) if self.augment else views[j].copy()  # a copy frees the batch
                yield {"xz": v[0], "yz": v[1], **{k: t[j] for k, t in targets.items()}}

    def _rows(self, batch, ok: np.ndarray, want_val: bool) -> list[tuple[int, int]]:
        """``(row in batch, row in labels or -1)`` of valid, labelled rows of this split."""
        out = []
        for r, eid in enumerate(batch.column("event_id").to_pylist()):
            if not ok[r] or is_val(eid, self.spec.val_fraction) != want_val:
                continue
            lab = -1
            if self.index is not None:
                lab = self.index.rows.get(eid, -1)
                if lab < 0 or not self.index.ok[lab]:
                    self.counts["skipped_label"] += 1
                    continue
            out.append((r, lab))
        self.counts["rows"] += len(out)
        return out

    def _targets(self, sub, label_rows: list[int]) -> dict[str, np.ndarray]:
        """Per-row training targets of the selected rows, as arrays."""
        n, spec, idx = sub.num_rows, self.spec, self.index
        truth = np.array([_CLASS_INDEX.get(x, -1) for x in (sub.column("label").to_pylist()
                          if "label" in sub.schema.names else [None] * n)], np.int64)
        if idx is not None:
            probs = idx.probs[label_rows]
        else:  # no teacher: the truth as one-hot "soft" targets
            probs = np.eye(len(CLASSES), dtype=np.float32)[np.maximum(truth, 0)]
        hard = truth if spec.hard_labels == "truth" or idx is None else probs.argmax(1).astype(np.int64)
        if spec.concept_source == "teacher" and idx is not None:
            concepts, mask = idx.concepts[label_rows], idx.has_rationale[label_rows].astype(np.float32)
        elif spec.concept_source != "none" and "concepts" in sub.schema.names:
            col = sub.column("concepts")
            concepts, mask = concepts_to_multi_hot(col.to_pylist()), (np.asarray(col.is_null()) == 0).astype(np.float32)
        else:
            concepts, mask = np.zeros((n, len(CONCEPTS)), np.float32), np.zeros(n, np.float32)
        return {"teacher_probs": probs.astype(np.float32), "hard": hard, "truth": truth,
                "concepts": concepts, "concept_mask": mask}


def _shuffled(samples, size: int, rng: np.random.Generator):
    """A streaming shuffle buffer: memory stays at ``size`` samples."""
    buf = []
    for s in samples:
        if len(buf) < size:
            buf.append(s)
            continue
        k = int(rng.integers(len(buf)))
        buf[k], s = s, buf[k]
        yield s
    rng.shuffle(buf)
    yield from buf
