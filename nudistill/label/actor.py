"""The three map stages of labelling: a cheap contract-1 prefilter, the views made into what the teacher sees,
and the teacher actor (STYLE 6).

All take and return pyarrow tables. The prefilter drops rows already committed (resume) and marks rows that
break contract 1 in an ``_error`` column; :func:`prepare` pools the other rows' views to the teacher's tile and
clears cosmic muons, on CPU workers ahead of the replicas, so a replica's time goes to the model and 16x fewer
view bytes travel to it (512² to 128²); the actor labels the rest and turns every row, good or bad, into a
contract-2 row. None imports Ray: they run and test without a cluster.
"""

from __future__ import annotations

import os
import time
import uuid

import numpy as np
import pyarrow as pa

from nudistill.events import DUPLICATE_ID, Validator, decode_views, encode_views
from nudistill.label.outdir import OutputDir, rows_key
from nudistill.labels import error_rows, ok_rows

ROW = "row_hash"  # Ray Data's per-row identity: a hash of the source file and the row's position in it
ERROR = "_error"
REPLICA, BUSY = "_replica", "_busy_s"  # per-batch stats, stripped by the sink


def prefilter(batch: pa.Table, done: np.ndarray, dup_winner: dict[str, int] | None = None,
              dup_rows: np.ndarray | None = None) -> pa.Table:
    """Drop committed rows; add ``_error`` (null or a contract-2 status) for rows that break contract 1.

    ``done`` is the sorted uint64 ``source_row`` of committed rows. Duplicates are given either as
    ``dup_rows``, the sorted row hashes of rows whose event id an earlier row (smaller row hash) keeps,
    or as ``dup_winner``, which maps each event id seen more than once to the row that keeps it.
    """
    rows = batch.column(ROW).to_numpy()
    if len(done):
        pos = np.clip(np.searchsorted(done, rows), 0, len(done) - 1)
        batch = batch.filter(pa.array(done[pos] != rows))
    ok, errors = Validator(track_duplicates=False)(batch)
    status: list[str | None] = [None] * batch.num_rows
    bad = iter(errors)
    for i in np.flatnonzero(~ok):
        status[i] = next(bad).status
    ids, rows = batch.column("event_id").to_pylist(), batch.column(ROW).to_numpy()
    if dup_rows is not None:
        dup = np.zeros(len(rows), bool)
        if len(dup_rows):
            dup = dup_rows[np.clip(np.searchsorted(dup_rows, rows), 0, len(dup_rows) - 1)] == rows
    else:
        dup_winner = dup_winner or {}
        dup = np.array([eid in dup_winner and dup_winner[eid] != int(row) for eid, row in zip(ids, rows)], bool)
    for i in np.flatnonzero(dup):
        if status[i] is None:
            eid = ids[i]
            status[i] = f"error: {DUPLICATE_ID} (event_id {eid!r} appears more than once; an earlier row keeps it)"
    return batch.append_column(ERROR, pa.array(status, pa.string()))


def prepare(batch: pa.Table, view_size: int | None) -> pa.Table:
    """The views of rows without ``_error`` as the teacher sees them (:func:`nudistill.pooling.pool_views` at
    ``view_size``, the teacher's ``TeacherSpec.view_size``), in the same columns; rows with ``_error`` pass
    untouched. Rows of different sizes are prepared per size; the row order is kept."""
    from nudistill.pooling import pool_views

    good = ~batch.column(ERROR).is_valid().to_numpy(zero_copy_only=False)
    if not good.any():
        return batch
    shape = np.stack([batch.column(c).to_numpy(zero_copy_only=False) for c in ("height", "width")], 1)
    parts, order = [], []
    for hw in np.unique(shape[good], axis=0):
        idx = np.flatnonzero(good & (shape == hw).all(1))
        rows = batch.take(idx)
        for name, col in encode_views(pool_views(decode_views(rows), view_size)).items():  # xz, yz, height, width
            i = rows.schema.get_field_index(name)
            rows = rows.set_column(i, rows.schema.field(i), col.cast(rows.schema.field(i).type))
        parts.append(rows)
        order.append(idx)
    order.append(np.flatnonzero(~good))
    parts.append(batch.take(order[-1]))
    return pa.concat_tables(parts).take(np.argsort(np.concatenate(order), kind="stable"))


class LabelActor:
    """Holds one teacher replica; ``__call__`` labels a batch and returns contract-2 rows."""

    def __init__(self, teacher: str, out: str, rationale: str = "none", quantize: str | None = None,
                 adapter: str | None = None, max_attempts: int = 2, threads: int = 1,
                 fault_poison_event: str | None = None, prepared: bool = False):
        """``prepared``: the batches come through :func:`prepare` at this teacher's ``view_size``."""
        import torch

        from nudistill.teacher import RationalePolicy, load_teacher

        torch.set_num_threads(max(1, threads))
        self.teacher = load_teacher(teacher, quantize=quantize, adapter=adapter)
        self.teacher_id = self.teacher.teacher_id
        self.policy = RationalePolicy.parse(rationale)
        self.out = OutputDir(out)
        self.max_attempts = max_attempts
        self.fault_poison_event = fault_poison_event
        self.replica = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.prepared = prepared

    def __call__(self, batch: pa.Table) -> pa.Table:
        t0 = time.perf_counter()
        bad = batch.column(ERROR).is_valid()
        rejected = batch.filter(bad)
        parts = [error_rows(rejected.column("event_id").to_pylist(), rejected.column(ERROR).to_pylist(),
                            self.teacher_id, rejected.column(ROW).to_numpy())]
        good = batch.filter(pa.compute.invert(bad))
        if good.num_rows:
            key = "batch-" + rows_key(good.column(ROW).to_numpy())
            crashed = self.out.begin(key)  # a crash from here to end() counts against this batch
            parts.append(self._label(good) if crashed < self.max_attempts else self._label_isolating(good))
            self.out.end(key)
        table = pa.concat_tables(parts)
        busy = np.zeros(table.num_rows, np.float32)
        busy[:1] = time.perf_counter() - t0
        return table.append_column(REPLICA, pa.array([self.replica] * table.num_rows, pa.string())) \
                    .append_column(BUSY, pa.array(busy))

    def _label(self, good: pa.Table) -> pa.Table:
        """Label a batch in one teacher call; a Python error falls back to one row at a time."""
        ids = good.column("event_id").to_pylist()
        try:
            self._fault_hook(ids)
            res = self.teacher.label(decode_views(good), ids, self.policy, self.prepared)
        except Exception:  # noqa: BLE001 - isolate the row that raised; the rest still get labels
            return self._label_isolating(good)
        return ok_rows(ids, res["probs"], res["rationale"], res["concepts"], self.teacher_id, good.column(ROW).to_numpy())

    def _label_isolating(self, good: pa.Table) -> pa.Table:
        """Label row by row; a row that killed the process ``max_attempts`` times is quarantined."""
        parts = []
        for i in range(good.num_rows):
            row = good.slice(i, 1)
            eid, src = row.column("event_id")[0].as_py(), row.column(ROW).to_numpy()
            key = f"row-{int(src[0]):016x}"
            crashed = self.out.begin(key)
            if crashed >= self.max_attempts:
                status = f"error: quarantined (the teacher process died {crashed} times on this event)"
                parts.append(error_rows([eid], [status], self.teacher_id, src))
            else:
                try:
                    self._fault_hook([eid])
                    res = self.teacher.label(decode_views(row), [eid], self.policy, self.prepared)
                    parts.append(ok_rows([eid], res["probs"], res["rationale"], res["concepts"], self.teacher_id, src))
                except Exception as exc:  # noqa: BLE001
                    detail = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                    parts.append(error_rows([eid], [f"error: teacher_error ({detail})"], self.teacher_id, src))
            self.out.end(key)
        return pa.concat_tables(parts)

    def _fault_hook(self, ids: list[str]) -> None:
        """Test-only: die like a segfaulting kernel when the poison event is in the batch."""
        if self.fault_poison_event is not None and self.fault_poison_event in ids:
            os._exit(86)
