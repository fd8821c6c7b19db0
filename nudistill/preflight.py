"""Preflight of input files: every footer and schema read (metadata only) before a verb reads rows.

One truncated file or one file of another schema among thousands should not end a job in a pyarrow
traceback after hours: it is found first, named with its reason, and the job either refuses in one
sentence or, with ``--skip-bad-files``, goes on without it and records it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from nudistill.errors import UserError

PARALLEL_FROM = 8  # files; below this a thread pool costs more than it saves
MAX_THREADS = 16  # footer reads wait on I/O (object stores especially), not on the CPU
SHOWN = 3  # bad files named in the refusal; the rest are counted


@dataclass(frozen=True)
class FileCheck:
    """One input file after its footer was read: ``reason`` is None when it may be read."""

    path: str
    reason: str | None
    num_rows: int = 0


@dataclass(frozen=True)
class Files:
    """The files a verb will read, their row counts from the footers, and those left out with reasons."""

    filesystem: pafs.FileSystem
    paths: list[str]
    num_rows: list[int]
    skipped: list[FileCheck]

    def skipped_records(self) -> list[dict]:
        """``[{path, reason}]`` for a summary (``files_skipped``)."""
        return [{"path": c.path, "reason": c.reason} for c in self.skipped]


_CACHE: dict[tuple, FileCheck] = {}  # (filesystem, path, size, mtime, rule) -> check: a verb resolves a dataset often


def check_files(fs: pafs.FileSystem, infos: Sequence[pafs.FileInfo], schema_problem: Callable,
                required: tuple[str, ...]) -> list[FileCheck]:
    """Read each file's footer (in threads when there are many); ``schema_problem(schema, required)``
    returns why a schema cannot serve (None when it can)."""
    def one(info: pafs.FileInfo) -> FileCheck:
        key = (fs.type_name, info.path, info.size, info.mtime_ns, schema_problem, required)
        if key not in _CACHE:
            _CACHE[key] = _check(fs, info, lambda schema: schema_problem(schema, required))
        return _CACHE[key]

    if len(infos) < PARALLEL_FROM:
        return [one(i) for i in infos]
    with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(infos))) as pool:
        return list(pool.map(one, infos))


def _check(fs: pafs.FileSystem, info: pafs.FileInfo, schema_problem) -> FileCheck:
    if info.size == 0:
        return FileCheck(info.path, "an empty file")
    try:
        with fs.open_input_file(info.path) as f:
            meta = pq.read_metadata(f)
            schema = meta.schema.to_arrow_schema()
    except (pa.ArrowException, OSError) as exc:
        return FileCheck(info.path, _unreadable(exc))
    return FileCheck(info.path, schema_problem(schema), meta.num_rows)


def _unreadable(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "magic bytes" in text or "size is 0" in text or "too small" in text:
        return "not a Parquet file (truncated?)"
    return f"unreadable ({text[:120]})"


def select(fs: pafs.FileSystem, checks: list[FileCheck], skip_bad_files: bool, where: str, what: str,
           flag: str | None = "--skip-bad-files") -> Files:
    """The readable files; refuse in one sentence naming the bad ones (and ``flag``) unless ``skip_bad_files``."""
    bad = [c for c in checks if c.reason is not None]
    good = [c for c in checks if c.reason is None]
    if bad and not skip_bad_files:
        hint = f", or pass {flag} to go on without them" if flag else ""
        raise UserError(f"{refusal(bad, len(checks), where, what)}; fix or remove them{hint}")
    if not good:
        raise UserError(f"{refusal(bad, len(checks), where, what)}, so nothing is left to read")
    return Files(fs, [c.path for c in good], [c.num_rows for c in good], bad)


def refusal(bad: list[FileCheck], n: int, where: str, what: str) -> str:
    """``2 of 5 files in X cannot be read as events: a (reason); b (reason)`` (the first few, then a count)."""
    named = "; ".join(f"{c.path} ({c.reason})" for c in bad[:SHOWN])
    more = f"; and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
    return f"{len(bad)} of {n} file(s) in {where} cannot be read as {what}: {named}{more}"
