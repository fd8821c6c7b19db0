"""Planning and resume in bounded driver memory: read units, per-file commit records, duplicate ids.

A row's identity is Ray Data's ``row_hash``: splitmix64(md5-seed(file path) + row index). The
finalizer is a bijection, so a committed ``source_row`` gives back its file and row index; the sink
uses that to commit per input file (``part-<file key>-<rows key>.parquet``), and a file whose every
row is committed gets a marker in ``_done/``. Planning then works file by file:

* a file with a marker is skipped without opening it or its parts (no view bytes read);
* another file is cut into read units (its Parquet row groups); a unit whose rows are all committed
  is skipped, the rest are read and the prefilter drops their committed rows;
* duplicate event ids are found from the ``event_id`` column alone: each row's 128-bit id hash goes
  to one of a few bucket files on disk, and each bucket is sorted with numpy on its own, so the
  driver never holds every id.

Nothing here imports Ray; it runs and tests without a cluster.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROW_HASH = "row_hash"
BUCKET_ROWS = 1_000_000  # id hashes sorted at once when finding duplicates (24 bytes each)
ID_BATCH = 262_144  # event ids read at once
_M64 = (1 << 64) - 1
_C1, _C2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_C1_INV, _C2_INV = pow(_C1, -1, 1 << 64), pow(_C2, -1, 1 << 64)


def path_seed(path: str) -> int:
    """The per-file seed of Ray Data's row hash."""
    return int.from_bytes(hashlib.md5(path.encode("utf-8")).digest()[:8], "little")


def file_key(path: str) -> str:
    return f"{path_seed(path):016x}"


def row_hashes(path: str, start: int, stop: int) -> np.ndarray:
    """Ray Data's ``row_hash`` of rows ``start..stop`` of ``path`` (``read_parquet(include_row_hash=True)``)."""
    return hash_rows(path, np.arange(start, stop, dtype=np.uint64))


def hash_rows(path: str, idx: np.ndarray) -> np.ndarray:
    """Ray Data's ``row_hash`` of the rows ``idx`` of ``path``."""
    x = np.uint64(path_seed(path)) + np.asarray(idx, np.uint64)
    x ^= x >> np.uint64(30)
    x *= np.uint64(_C1)
    x ^= x >> np.uint64(27)
    x *= np.uint64(_C2)
    x ^= x >> np.uint64(31)
    return x


def _unhash(rows: np.ndarray) -> np.ndarray:
    """seed + row index of each row hash (the inverse of the splitmix64 finalizer)."""
    x = np.asarray(rows, np.uint64).copy()
    x ^= (x >> np.uint64(31)) ^ (x >> np.uint64(62))
    x *= np.uint64(_C2_INV)
    x ^= (x >> np.uint64(27)) ^ (x >> np.uint64(54))
    x *= np.uint64(_C1_INV)
    x ^= (x >> np.uint64(30)) ^ (x >> np.uint64(60))
    return x


class Locator:
    """Which input file (index into ``paths``) and which row of it a row hash names; -1 when none."""

    def __init__(self, paths: list[str], num_rows: list[int]):
        seeds = np.array([path_seed(p) for p in paths], np.uint64)
        self.order = np.argsort(seeds, kind="stable")
        self.seeds = seeds[self.order]
        self.sizes = np.asarray(num_rows, np.uint64)[self.order]
        self.keys = [file_key(p) for p in paths]

    def locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keys = _unhash(rows)
        pos = np.searchsorted(self.seeds, keys, side="right").astype(np.int64) - 1
        ok = pos >= 0
        idx = keys - self.seeds[np.clip(pos, 0, None)]
        ok &= idx < self.sizes[np.clip(pos, 0, None)]
        return np.where(ok, self.order[np.clip(pos, 0, None)], -1), np.where(ok, idx, 0).astype(np.int64)


@dataclass
class Plan:
    """What a run reads: ``units`` (path, row group, first row, end row) and the committed rows inside them."""

    n_in: int
    committed: int
    units: list[dict] = field(default_factory=list)
    done_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    rows_to_read: int = 0

    @property
    def todo(self) -> int:
        return self.n_in - self.committed


def _limits(num_rows: list[int], max_events: int | None) -> list[int]:
    """Rows of each file in scope: all, or the first ``max_events`` rows in file order."""
    left = max_events if max_events else sum(num_rows)
    out = []
    for n in num_rows:
        out.append(min(n, left))
        left -= out[-1]
    return out


def plan(files, out, max_events: int | None = None) -> Plan:
    """Read units of ``files`` (a preflight ``Files``) not yet committed in ``out`` (an ``OutputDir``).

    Marks each file found fully committed as done, so the next plan skips it without reading."""
    limits = _limits(files.num_rows, max_events)
    locator = Locator(files.paths, files.num_rows)
    done_keys = out.done_files()
    by_key = out.parts_by_file()
    legacy = by_key.pop("", [])
    legacy_idx: dict[int, np.ndarray] = {}
    if legacy:  # parts written before per-file commits: located once, then marked done file by file
        rows = out.rows_of(legacy)
        which, idx = locator.locate(rows)
        legacy_idx = {int(f): np.sort(idx[which == f]) for f in np.unique(which) if f >= 0}
    result = Plan(n_in=sum(limits), committed=0)
    done_parts = []
    for i, (path, n, lim) in enumerate(zip(files.paths, files.num_rows, limits)):
        key = locator.keys[i]
        if lim == 0:
            continue
        if key in done_keys:
            result.committed += lim
            continue
        which, idx = locator.locate(out.rows_of(by_key.get(key, [])))
        idx = np.unique(np.concatenate([idx[which == i], legacy_idx.get(i, np.zeros(0, np.int64))]))
        if len(idx) == n:
            out.mark_done(key)
            result.committed += lim
            continue
        result.committed += int(np.searchsorted(idx, lim))
        start = 0
        for rg, rg_rows in enumerate(_rg_rows(files, path)):
            stop, end = start + rg_rows, min(start + rg_rows, lim)
            if start >= end:
                break
            lo, hi = np.searchsorted(idx, start), np.searchsorted(idx, end)
            if hi - lo < end - start:
                result.units.append({"path": path, "rg": rg, "start": start, "stop": end})
                result.rows_to_read += end - start
                done_parts.append(hash_rows(path, idx[lo:hi]))
            start = stop
    if done_parts:
        result.done_rows = np.sort(np.concatenate(done_parts))
    return result


_RG_CACHE: dict[tuple[str, str], list[int]] = {}


def _rg_rows(files, path: str) -> list[int]:
    key = (files.filesystem.type_name, path)
    if key not in _RG_CACHE:
        with files.filesystem.open_input_file(path) as f:
            meta = pq.read_metadata(f)
        _RG_CACHE[key] = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    return _RG_CACHE[key]


def read_units(batch: pa.Table, filesystem, max_rows: int = 0):
    """Map stage (a generator): the rows of each read unit in ``batch`` with their ``row_hash``, in tables of at
    most ``max_rows`` rows (0: a whole unit at once). A unit is one row group; reading it a record batch at a
    time keeps one task's memory near ``max_rows`` events instead of a whole row group (262 MB for 500 events
    at 512²), and each table becomes its own Ray block."""
    for path, rg, start, stop in zip(*(batch.column(c).to_pylist() for c in ("path", "rg", "start", "stop"))):
        with filesystem.open_input_file(path) as f:
            pf = pq.ParquetFile(f)
            first = sum(pf.metadata.row_group(i).num_rows for i in range(rg))
            size = max_rows or pf.metadata.row_group(rg).num_rows
            at = first  # file row of this record batch's first row
            for rb in pf.iter_batches(batch_size=size, row_groups=[rg]):
                lo, hi = max(start, at), min(stop, at + rb.num_rows)
                if lo < hi:
                    t = pa.Table.from_batches([rb.slice(lo - at, hi - lo)])
                    if ROW_HASH in t.column_names:
                        t = t.drop_columns([ROW_HASH])
                    yield t.append_column(ROW_HASH, pa.array(row_hashes(path, lo, hi), pa.uint64()))
                at += rb.num_rows
                if at >= stop:
                    break


def _id_hashes(ids: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of each non-null id (128 bits: collisions are out of reach) and the valid mask."""
    import pandas as pd

    valid = np.asarray(ids.is_valid())
    vals = np.asarray(ids.filter(pa.array(valid)).to_numpy(zero_copy_only=False), dtype=object)
    h1 = pd.util.hash_array(vals, hash_key="nudistill-id-one", categorize=False)
    h2 = pd.util.hash_array(vals, hash_key="nudistill-id-two", categorize=False)
    return h1, h2, valid


def duplicate_rows(files, max_events: int | None = None) -> np.ndarray:
    """Sorted row hashes of rows whose event id an earlier row (smaller row hash) already has.

    Reads only the ``event_id`` column, in batches; id hashes are spilled to bucket files and each
    bucket is sorted on its own, so memory stays at one bucket whatever the dataset's size."""
    limits = _limits(files.num_rows, max_events)
    n_buckets = max(1, math.ceil(sum(limits) / BUCKET_ROWS))
    rec = np.dtype([("h1", np.uint64), ("h2", np.uint64), ("row", np.uint64)])
    losers = []
    with tempfile.TemporaryDirectory(prefix="nudistill-ids-") as tmp:
        paths = [os.path.join(tmp, f"b{k}") for k in range(n_buckets)]
        sinks = [open(p, "wb") for p in paths]
        try:
            for path, lim in zip(files.paths, limits):
                start = 0
                with files.filesystem.open_input_file(path) as f:
                    for b in pq.ParquetFile(f).iter_batches(batch_size=ID_BATCH, columns=["event_id"]):
                        if start >= lim:
                            break
                        ids = b.column(0).slice(0, lim - start)
                        h1, h2, valid = _id_hashes(ids)
                        r = np.empty(len(h1), rec)
                        r["h1"], r["h2"] = h1, h2
                        r["row"] = row_hashes(path, start, start + len(ids))[valid]
                        bucket = (h1 % np.uint64(n_buckets)).astype(np.int64)
                        for k in np.unique(bucket):
                            sinks[k].write(r[bucket == k].tobytes())
                        start += len(ids)
        finally:
            for s in sinks:
                s.close()
        for p in paths:
            r = np.fromfile(p, rec)
            os.remove(p)
            if len(r) < 2:
                continue
            r = r[np.lexsort((r["row"], r["h2"], r["h1"]))]
            same = (r["h1"][1:] == r["h1"][:-1]) & (r["h2"][1:] == r["h2"][:-1])
            if same.any():
                losers.append(r["row"][1:][same])
    return np.sort(np.concatenate(losers)) if losers else np.zeros(0, np.uint64)
