"""Contract 1 (docs/contracts.md): the events Parquet schema, row validation, decoding and streaming reads.

One row per event: ``event_id`` (string), ``xz``/``yz`` (binary, ``height*width`` uint8 bytes,
row-major, z along the beam in columns), ``height``/``width`` (int32) and an optional ``label``.
Other columns pass through untouched. A bad row never stops a job: :class:`Validator` reports it
with its reason and the rest go on.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from nudistill import CLASSES, CONCEPTS, preflight
from nudistill.errors import UserError

VIEWS: tuple[str, str] = ("xz", "yz")
"""View columns, in the order they are stacked by :func:`decode_views`."""

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("xz", pa.binary()),
        pa.field("yz", pa.binary()),
        pa.field("height", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("label", pa.string(), nullable=True),
    ]
)
"""The required columns of contract 1."""

TRUTH_FIELDS = [
    pa.field("concepts", pa.list_(pa.string())),
    pa.field("rationale", pa.string()),
]
"""Truth columns the simulator adds (used to fine-tune the teacher)."""

REQUIRED_COLUMNS = ("event_id", "xz", "yz", "height", "width")

# Reason codes, stable across releases: summaries count errors by these.
BAD_SHAPE = "bad_shape"
NULL_VIEW = "null_view"
BYTE_COUNT = "byte_count"
UNKNOWN_LABEL = "unknown_label"
DUPLICATE_ID = "duplicate_id"
NULL_ID = "null_id"


@dataclass(frozen=True)
class RowError:
    """One row that broke contract 1."""

    event_id: str | None
    reason: str  # one of the reason codes above
    detail: str  # a sentence naming the rule

    @property
    def status(self) -> str:
        """The contract-2 status string for this row."""
        return f"error: {self.reason} ({self.detail})"


def reason_of(status: str) -> str:
    """The reason code of a contract-2 status such as ``error: byte_count (...)``."""
    if not status.startswith("error:"):
        return status
    return status[len("error:"):].strip().split(" ", 1)[0]


class Validator:
    """Checks record batches against contract 1, remembering ids to catch duplicates across batches.

    ``expected_shape`` (H, W), when given, also rejects events of another resolution.
    ``track_duplicates=False`` leaves duplicate ids to the caller (a distributed job decides globally).
    """

    def __init__(self, expected_shape: tuple[int, int] | None = None, track_duplicates: bool = True):
        self.expected_shape = expected_shape
        self.track_duplicates = track_duplicates
        self._seen: set[str] = set()

    def __call__(self, batch: pa.RecordBatch | pa.Table) -> tuple[np.ndarray, list[RowError]]:
        """Return ``(ok_mask (B,) bool, errors)``; errors hold one entry per bad row, first rule broken."""
        missing = [c for c in REQUIRED_COLUMNS if c not in batch.schema.names]
        if missing:
            raise UserError(f"the events lack the required column(s) {', '.join(missing)} (contract 1)")
        n = batch.num_rows
        ids = batch.column("event_id").to_pylist()
        reasons: list[tuple[str, str] | None] = [None] * n

        def flag(mask: np.ndarray, reason: str, detail) -> None:
            for i in np.flatnonzero(mask):
                if reasons[i] is None:
                    reasons[i] = (reason, detail(i) if callable(detail) else detail)

        h = _int_column(batch, "height")
        w = _int_column(batch, "width")
        flag(np.array([i is None for i in ids], dtype=bool), NULL_ID, "event_id is null")
        flag((h <= 0) | (w <= 0), BAD_SHAPE, lambda i: f"height={h[i]} and width={w[i]} must be positive")
        if self.expected_shape is not None:
            eh, ew = self.expected_shape
            flag((h != eh) | (w != ew), BAD_SHAPE, lambda i: f"shape {h[i]}x{w[i]} differs from the expected {eh}x{ew}")
        for view in VIEWS:
            col = batch.column(view)
            flag(np.asarray(col.is_null()), NULL_VIEW, f"view {view} is null")
            lengths = pc.binary_length(col).fill_null(-1).to_numpy(zero_copy_only=False)
            flag(lengths != h * w, BYTE_COUNT, lambda i, v=view, L=lengths: f"{v} has {L[i]} bytes, expected height*width={h[i] * w[i]}")
        if "label" in batch.schema.names:
            labels = batch.column("label")
            # a null label is allowed (production data); is_in reports null as not found, so allow it apart
            known = np.asarray(pc.is_in(labels, value_set=pa.array(CLASSES))) | np.asarray(labels.is_null())
            bad = ~known
            flag(bad, UNKNOWN_LABEL, lambda i: f"label {labels[i].as_py()!r} is not one of {', '.join(CLASSES)}")
        for i, eid in enumerate(ids if self.track_duplicates else ()):
            if reasons[i] is None and eid is not None:
                if eid in self._seen:
                    reasons[i] = (DUPLICATE_ID, f"event_id {eid!r} appeared earlier in the dataset")
                else:
                    self._seen.add(eid)
        ok = np.array([r is None for r in reasons], dtype=bool)
        errors = [RowError(ids[i], *reasons[i]) for i in range(n) if reasons[i] is not None]
        return ok, errors


def _int_column(batch, name: str) -> np.ndarray:
    """An int64 numpy copy of an integer column, nulls as 0 (so they fail the shape rule)."""
    return batch.column(name).cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)


def _view_bytes(col: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-copy ``(data uint8, offsets int64)`` of a binary column without nulls."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if col.null_count:
        raise ValueError("cannot decode a view column with nulls; validate the batch first")
    off_type = np.int64 if pa.types.is_large_binary(col.type) else np.int32
    _, off_buf, data_buf = col.buffers()
    offsets = np.frombuffer(off_buf, dtype=off_type)[col.offset: col.offset + len(col) + 1].astype(np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    return data, offsets


def decode_views(batch: pa.RecordBatch | pa.Table) -> np.ndarray:
    """Decode valid rows of one resolution into a ``(B, 2, H, W)`` uint8 array (XZ, YZ), no per-pixel Python."""
    n = batch.num_rows
    h = _int_column(batch, "height")
    w = _int_column(batch, "width")
    if n == 0:
        return np.zeros((0, 2, 0, 0), np.uint8)
    if (h != h[0]).any() or (w != w[0]).any():
        raise ValueError("decode_views needs one resolution per batch; group the rows by (height, width)")
    H, W = int(h[0]), int(w[0])
    out = np.empty((n, 2, H, W), np.uint8)
    for v, view in enumerate(VIEWS):
        data, offsets = _view_bytes(batch.column(view))
        if not (np.diff(offsets) == H * W).all():
            raise ValueError(f"view {view}: byte counts differ from height*width; validate the batch first")
        if offsets[-1] - offsets[0] == n * H * W:  # contiguous: one reshape
            out[:, v] = data[offsets[0]: offsets[-1]].reshape(n, H, W)
        else:
            for i in range(n):
                out[i, v] = data[offsets[i]: offsets[i + 1]].reshape(H, W)
    return out


def encode_views(views: np.ndarray) -> dict[str, pa.Array]:
    """The inverse of :func:`decode_views`: ``(B, 2, H, W)`` uint8 to xz/yz/height/width columns."""
    views = np.ascontiguousarray(views, dtype=np.uint8)
    n, _, H, W = views.shape
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * (H * W))
    cols = {}
    for v, view in enumerate(VIEWS):
        cols[view] = pa.BinaryArray.from_buffers(pa.binary(), n, [None, offsets.buffers()[1], pa.py_buffer(views[:, v].tobytes())])
    cols["height"] = pa.array(np.full(n, H, np.int32))
    cols["width"] = pa.array(np.full(n, W, np.int32))
    return cols


ROW_GROUP_BYTES = 32 << 20
"""Target view bytes per Parquet row group when nudistill writes events. A reader decodes a whole row group's
view columns at once: with pyarrow 26, the first 32 events of a 500-event row group at 512² (262 MB of views)
took 564 MB of the reading process, of a 64-event row group 74 MB. The row group bounds every reader's memory."""


def write_events(table: pa.Table, path: str | os.PathLike) -> None:
    """Write contract-1 ``table`` as one zstd Parquet file, in row groups of ~ROW_GROUP_BYTES of views, the views
    without dictionary encoding (no two events share bytes; a dictionary page is only overhead)."""
    view_bytes = sum(pc.sum(pc.binary_length(table.column(v))).as_py() or 0 for v in VIEWS if v in table.column_names)
    per_event = max(1, view_bytes // max(1, table.num_rows))
    pq.write_table(table, path, compression="zstd", row_group_size=max(1, ROW_GROUP_BYTES // per_event),
                   use_dictionary=[c for c in table.column_names if c not in VIEWS])


def resolve_dataset(uri: str | os.PathLike | Sequence[str], skip_bad_files: bool = False,
                    required: Sequence[str] = REQUIRED_COLUMNS, what: str = "events",
                    flag: str | None = "--skip-bad-files") -> pads.Dataset:
    """Open a Parquet dataset from a file, a directory, a glob or a pyarrow filesystem URI (s3://, gs://).

    Every file's footer and schema are checked first (:func:`resolve_files`): a file that cannot be read,
    or that lacks a ``required`` column, is refused in one sentence, or left out with ``skip_bad_files``.
    """
    files = resolve_files(uri, skip_bad_files, required, what, flag)
    return pads.dataset(files.paths, format="parquet", filesystem=files.filesystem)


def resolve_files(uri: str | os.PathLike | Sequence[str], skip_bad_files: bool = False,
                  required: Sequence[str] = REQUIRED_COLUMNS, what: str = "events",
                  flag: str | None = "--skip-bad-files") -> preflight.Files:
    """The files of ``uri`` that pass the preflight (footer readable, ``required`` columns of the right
    type), their row counts from the footers, and the files left out with their reasons. A refusal
    names ``flag``, the option that skips them (None where the caller offers none)."""
    fs, infos = _list_files(uri)
    checks = preflight.check_files(fs, infos, schema_problem, tuple(required))
    where = str(uri) if not isinstance(uri, (list, tuple)) else f"the {len(uri)} given files"
    return preflight.select(fs, checks, skip_bad_files, where, what, flag)


def _list_files(uri: str | os.PathLike | Sequence[str]) -> tuple[pafs.FileSystem, list[pafs.FileInfo]]:
    """The filesystem and the file infos (path, size, mtime) of a file, a directory, a glob or a list."""
    if isinstance(uri, (list, tuple)):
        fs, _ = _filesystem(str(uri[0]))
        infos = fs.get_file_info([_path_in(fs, str(u)) for u in uri])
        missing = [i.path for i in infos if i.type != pafs.FileType.File]
        if missing:
            raise UserError(f"{missing[0]} does not exist" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        return fs, infos
    uri = str(uri)
    fs, path = _filesystem(uri)
    if any(ch in path for ch in "*?["):
        base = path[: min(path.find(c) for c in "*?[" if c in path)].rsplit("/", 1)[0] or "/"
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
        files = sorted((i for i in infos if i.type == pafs.FileType.File and fnmatch.fnmatch(i.path, path)),
                       key=lambda i: i.path)
        if not files:
            raise UserError(f"no files match {uri}")
        return fs, files
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise UserError(f"{uri} does not exist")
    if info.type == pafs.FileType.Directory:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
        files = sorted((i for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet")
                        and not os.path.basename(i.path).startswith(("_", "."))), key=lambda i: i.path)
        if not files:
            raise UserError(f"{uri} holds no .parquet files")
        return fs, files
    return fs, [info]


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and in-filesystem path of a local path or a URI."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).expanduser().absolute())


def _path_in(fs: pafs.FileSystem, uri: str) -> str:
    return _filesystem(uri)[1]


READ_BUFFER = 1 << 20  # bytes: a column chunk is read through a buffer this size, not whole


def iter_batches(
    uri: str | os.PathLike | Sequence[str],
    batch_size: int = 256,
    columns: Sequence[str] | None = None,
    limit: int | None = None,
    skip_bad_files: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Stream record batches of at most ``batch_size`` rows; memory stays near one row group, whatever
    the dataset size and however slow the consumer.

    Reading is pull-based and on the caller's thread: a file's next row group is read only when the
    consumer asks for the next batch. (Arrow's dataset scanner reads ahead on I/O threads, so what it
    held depended on timing: nine batches in one loaded run.) Every batch has the first file's schema,
    as a pyarrow dataset would give it: a column a later file lacks comes as nulls.
    """
    if batch_size <= 0:
        raise UserError(f"batch size must be positive, got {batch_size}")
    files = resolve_files(uri, skip_bad_files)
    schema, seen = None, 0
    for path in files.paths:
        with files.filesystem.open_input_file(path) as f:
            pf = pq.ParquetFile(f, pre_buffer=False, buffer_size=READ_BUFFER)
            if schema is None:
                schema = _projected_schema(pf.schema_arrow, columns, uri)
            present = [n for n in schema.names if n in pf.schema_arrow.names]
            for batch in pf.iter_batches(batch_size=batch_size, columns=present, use_threads=False):
                if batch.num_rows == 0:
                    continue
                if limit is not None:
                    if seen >= limit:
                        return
                    batch = batch.slice(0, limit - seen)
                seen += batch.num_rows
                yield _conform(batch, schema)


def _projected_schema(schema: pa.Schema, columns: Sequence[str] | None, uri) -> pa.Schema:
    if columns is None:
        return schema
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise UserError(f"{uri} lacks the column(s) {', '.join(missing)}")
    return pa.schema([schema.field(c) for c in columns])


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with ``schema``'s columns, in order and type; a column it lacks comes as nulls."""
    if batch.schema.equals(schema):
        return batch
    names = batch.schema.names
    arrays = [batch.column(f.name).cast(f.type) if f.name in names else pa.nulls(batch.num_rows, f.type)
              for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def count_rows(uri: str | os.PathLike | Sequence[str], skip_bad_files: bool = False) -> int:
    """Number of rows in a dataset, from Parquet metadata (no data read)."""
    return sum(resolve_files(uri, skip_bad_files).num_rows)


def check_schema(schema: pa.Schema, where: str) -> None:
    """Raise a UserError naming the column when a dataset cannot be contract-1 events at all."""
    problem = schema_problem(schema)
    if problem:
        raise UserError(f"{where}: {problem}")


def schema_problem(schema: pa.Schema, required: Sequence[str] = REQUIRED_COLUMNS) -> str | None:
    """Why a file of this schema cannot serve: ``required`` columns missing or (contract-1 columns) of
    another type; None when it can."""
    missing = [c for c in required if c not in schema.names]
    if missing:
        return f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    for field in EVENT_SCHEMA:
        if field.name not in required:
            continue
        got = schema.field(field.name).type
        ok = (got == field.type or (field.type == pa.binary() and pa.types.is_large_binary(got))
              or (field.type == pa.string() and pa.types.is_large_string(got))
              or (pa.types.is_integer(field.type) and pa.types.is_integer(got)))
        if not ok:
            return f"column {field.name} has type {got}, contract 1 wants {field.type}"
    return None


def concepts_to_multi_hot(concept_lists: Sequence[Sequence[str] | None]) -> np.ndarray:
    """``(B, K)`` float32 multi-hot of concept-name lists, in CONCEPTS order (None rows are all zero)."""
    index = {c: k for k, c in enumerate(CONCEPTS)}
    out = np.zeros((len(concept_lists), len(CONCEPTS)), np.float32)
    for i, names in enumerate(concept_lists):
        for name in names or ():
            if name in index:
                out[i, index[name]] = 1.0
    return out


@dataclass
class LabelledEvents:
    """Valid events with a truth label, read into memory at their own resolution."""

    views: np.ndarray  # (N, 2, H, W) uint8, XZ then YZ
    y: np.ndarray  # (N,) int class indices in CLASSES order
    rows: list[dict]  # per event: event_id, label and the requested extra columns
    skipped: dict[str, int]  # rows left out, by reason code (contract-1 reasons, "no_label", "other_shape")


def read_labelled(uri, limit: int | None = None, extra: Sequence[str] = (), batch_size: int = 256,
                  skip_bad_files: bool = False) -> LabelledEvents:
    """Rows of ``uri`` (the first ``limit``) that hold contract 1 and carry a label; ``extra`` columns ride along.

    The first valid event fixes the resolution: rows of another H×W are skipped (counted as
    ``other_shape``), because one array and one model take one size. Needs no truth column but ``label``.
    """
    views, rows, skipped, validate, shape = [], [], {}, Validator(), None
    for batch in iter_batches(uri, batch_size=batch_size, limit=limit, skip_bad_files=skip_bad_files):
        ok, errors = validate(batch)
        for e in errors:
            skipped[e.reason] = skipped.get(e.reason, 0) + 1
        labels = batch.column("label").to_pylist() if "label" in batch.schema.names else [None] * batch.num_rows
        _count(skipped, "no_label", ok & np.array([x is None for x in labels], bool))
        ok &= np.array([x is not None for x in labels], bool)
        hw = np.stack([_int_column(batch, "height"), _int_column(batch, "width")], 1)  # (B, 2)
        if shape is None and ok.any():
            shape = hw[np.flatnonzero(ok)[0]]
        if shape is not None:
            _count(skipped, "other_shape", ok & (hw != shape).any(1))
            ok &= (hw == shape).all(1)
        batch = batch.filter(ok)
        views.append(decode_views(batch))
        rows += batch.select(["event_id", "label", *[c for c in extra if c in batch.schema.names]]).to_pylist()
    if not rows:
        raise UserError(f"{uri} holds no valid labelled events (a 'label' column with one of {', '.join(CLASSES)})")
    y = np.array([CLASSES.index(r["label"]) for r in rows])
    return LabelledEvents(np.concatenate([v for v in views if len(v)]), y, rows, skipped)


def _count(counts: dict[str, int], reason: str, mask: np.ndarray) -> None:
    if mask.any():
        counts[reason] = counts.get(reason, 0) + int(mask.sum())
