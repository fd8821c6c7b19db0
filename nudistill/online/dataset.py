"""Score a whole events dataset with a shipped ONNX model, streaming: ``nudistill score MODEL EVENTS``.

Memory stays near one batch whatever the dataset size: events are read with
:func:`nudistill.events.iter_batches` and each batch's scores are appended to the Parquet output at once.
Every input row gives exactly one output row. A row that breaks contract 1 is not fatal: its row has
``status = "error: <reason> (...)"`` and null scores, and it is counted in the summary. A file that cannot
be read as events is refused before any row is scored, or left out with ``--skip-bad-files`` and listed
in the summary (``files_skipped``), which goes beside the output as ``_<name>.summary.json``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from nudistill.errors import UserError
from nudistill.events import Validator, check_schema, decode_views, iter_batches, resolve_files
from nudistill.log import get_logger, progress
from nudistill.online.scorer import Scorer

log = get_logger("score")


def score_schema(n_classes: int, n_concepts: int, with_label: bool) -> pa.Schema:
    """Output columns: contract-2-like scores plus the concept probabilities."""
    fields = [
        pa.field("event_id", pa.string()),
        pa.field("status", pa.string()),
        pa.field("probs", pa.list_(pa.float32(), n_classes)),
        pa.field("pred", pa.string()),
        pa.field("confidence", pa.float32()),
        pa.field("concept_probs", pa.list_(pa.float32(), n_concepts)),
    ]
    return pa.schema(fields + ([pa.field("label", pa.string())] if with_label else []))


def _fixed_list(values: np.ndarray, ok: np.ndarray, width: int) -> pa.Array:
    """(n, width) float32 rows as a fixed-size list array, null where ``ok`` is False."""
    full = np.zeros((len(ok), width), np.float32)
    full[ok] = values
    flat = pa.array(full.reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, width, mask=pa.array(~ok))


def score_batch(scorer: Scorer, batch: pa.RecordBatch, validate: Validator, schema: pa.Schema
                ) -> tuple[pa.RecordBatch, list]:
    """Score the valid rows of ``batch``; return one output row per input row and the row errors."""
    ok, errors = validate(batch)
    n, K = batch.num_rows, len(scorer.concepts)
    probs = np.zeros((int(ok.sum()), len(scorer.classes)), np.float32)
    concepts = np.zeros((int(ok.sum()), K), np.float32)
    if ok.any():
        views = decode_views(batch.filter(pa.array(ok)))  # (B_ok, 2, H, W) uint8
        out = scorer.score(views[:, 0], views[:, 1])
        probs, concepts = out["probs"], out["concepts"]
    status = np.array(["ok"] * n, dtype=object)
    ids = batch.column("event_id").to_pylist()
    for i, err in zip(np.flatnonzero(~ok), errors):  # errors come in row order, one per bad row
        status[i] = err.status
    pred = np.full(n, None, dtype=object)
    pred[ok] = np.asarray(scorer.classes, dtype=object)[probs.argmax(1)]
    conf = np.zeros(n, np.float32)
    conf[ok] = probs.max(1)
    cols = [pa.array(ids, pa.string()), pa.array(status.tolist(), pa.string()),
            _fixed_list(probs, ok, len(scorer.classes)), pa.array(pred.tolist(), pa.string()),
            pa.array(conf, pa.float32(), mask=~ok), _fixed_list(concepts, ok, K)]
    if "label" in schema.names:
        cols.append(batch.column("label").cast(pa.string()))
    return pa.RecordBatch.from_arrays(cols, schema=schema), errors


def score_dataset(model: str | Path, events: str, out: str | Path, batch_size: int = 64, threads: int = 1,
                  limit: int | None = None, skip_bad_files: bool = False) -> dict:
    """Score ``events`` with ``model`` into the Parquet file ``out``; return a summary with error counts and
    the input files left out (``skip_bad_files``; without it a bad file is a UserError naming it)."""
    scorer = Scorer(model, threads=threads)
    files = resolve_files(events, skip_bad_files)  # every footer read before any row
    in_schema = pads.dataset(files.paths, format="parquet", filesystem=files.filesystem).schema
    check_schema(in_schema, str(events))
    with_label = "label" in in_schema.names
    columns = ["event_id", "xz", "yz", "height", "width"] + (["label"] if with_label else [])
    schema = score_schema(len(scorer.classes), len(scorer.concepts), with_label)
    validate = Validator(expected_shape=scorer.shape)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    reasons: Counter = Counter()
    examples: list[str] = []
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for batch in progress(iter_batches(events, batch_size, columns=columns, limit=limit,
                                               skip_bad_files=skip_bad_files),
                                  desc="score", unit="batch"):
                table_batch, errors = score_batch(scorer, batch, validate, schema)
                writer.write_batch(table_batch)
                rows += table_batch.num_rows
                for err in errors:
                    reasons[err.reason] += 1
                    if len(examples) < 5:
                        examples.append(f"{err.event_id}: {err.status}")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    for line in examples:
        log.warning("bad row %s", line)
    return {"events": rows, "scored": rows - sum(reasons.values()), "errors": dict(reasons),
            "error_examples": examples, "model": str(scorer.path), "out": str(out),
            "files_skipped": files.skipped_records()}  # their events are not in "events"


@dataclass
class ScoreConfig:
    """Score an events dataset of any size with a shipped model, one output row per event (``nudistill score``)."""

    model: str
    """A contract-3 ONNX model (model.opt.onnx beside it is used when present)."""
    events: str
    """Events: a Parquet file, directory, glob or URI (s3://, gs://)."""
    out: str = "scores.parquet"
    """Parquet file to write; the resolved config goes beside it as _<name>.config.json."""
    batch_size: int = 64
    """Events per inference batch."""
    threads: int = 1
    """onnxruntime intra-op threads."""
    limit: int | None = None
    """Score only the first N rows (None: all)."""
    skip_bad_files: bool = False
    """Score the other files when some cannot be read as events (the summary lists them); else refuse."""

    def __post_init__(self):
        for flag, value in (("--batch-size", self.batch_size), ("--threads", self.threads), ("--limit", self.limit)):
            if value is not None and value < 1:
                raise UserError(f"{flag} must be at least 1, got {value}")


def run_score(cfg: ScoreConfig) -> dict:
    """Score ``cfg.events`` into ``cfg.out`` and write the config and the summary beside it (underscore names,
    which dataset readers skip); return the summary. A model file that breaks contract 3 is a UserError."""
    from nudistill.config import save_config

    try:
        summary = score_dataset(cfg.model, cfg.events, cfg.out, cfg.batch_size, cfg.threads, cfg.limit,
                                cfg.skip_bad_files)
    except ValueError as exc:  # the scorer's contract checks on the model file
        raise UserError(str(exc)) from None
    save_config(cfg, beside(cfg.out, "config"))
    beside(cfg.out, "summary").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def beside(out: str | Path, kind: str) -> Path:
    """``_<name>.<kind>.json`` next to the scores file ``out`` (its config, its summary)."""
    out = Path(out)
    return out.parent / f"_{out.stem}.{kind}.json"
