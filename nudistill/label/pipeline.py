"""Ray wiring of labelling: plan -> read row groups -> prefilter -> teacher actors -> atomic Parquet sink -> summary.

This is the only labelling module that imports Ray; the stages it wires live in plan.py, actor.py and
outdir.py and run without a cluster. The driver holds no per-event state: planning works file by file
(plan.py), so its memory is bounded and a resume reads only what is left.
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
from ray.data import ActorPoolStrategy, DataContext, Datasink
from ray.data.exceptions import ExecutionTimeoutError
from ray.exceptions import (LocalRayletDiedError, NodeDiedError, ObjectLostError, RayActorError, RaySystemError,
                            WorkerCrashedError)

from nudistill.config import config_dict
from nudistill.errors import UserError
from nudistill.events import reason_of, resolve_files
from nudistill.label.actor import BUSY, REPLICA, LabelActor, prefilter, prepare
from nudistill.label.config import LabelConfig
from nudistill.label.outdir import OutputDir
from nudistill.label.plan import Locator, Plan, duplicate_rows, plan, read_units
from nudistill.label.quiet import drop_known_lines
from nudistill.log import get_logger, say
from nudistill.ray_start import ensure_ray  # also imported from here by bench/label*.py

log = get_logger("label")
MAX_BLOCK_ROWS = 512  # a block is the unit of commit: at most this many events are redone after a kill
WORKER_BASE_BYTES = 256 << 20  # a Ray worker with pyarrow and numpy loaded, before its block
PREP_COPIES = 3  # the block in, its decoded views, the prepared copy out
STOPPED = (ExecutionTimeoutError, NodeDiedError, ObjectLostError, RayActorError, WorkerCrashedError,
           LocalRayletDiedError, RaySystemError)
"""Failures of the cluster, not of the input: Ray gave up on the run (retries spent, no progress for
``--no-progress-timeout``). A task error that wraps one of these is an instance of it too
(``RayTaskError.as_instanceof_cause``). What was committed stays; a rerun resumes."""


class LabelSink(Datasink):
    """A Ray Data datasink that commits each block as one atomic part file (see outdir.py)."""

    def __init__(self, out: str, paths: list[str] | None = None, num_rows: list[int] | None = None):
        self.out_uri = out
        self.files = (paths, num_rows) if paths else None  # commits per input file (plan.Locator)
        self.replicas: Counter = Counter()
        self.busy: Counter = Counter()

    def write(self, blocks, ctx) -> dict:
        out, rows, busy = OutputDir(self.out_uri), Counter(), Counter()
        locator = Locator(*self.files) if self.files else None
        for block in blocks:
            table = block if isinstance(block, pa.Table) else pa.Table.from_pandas(block)
            if table.num_rows == 0:
                continue
            for rep, sec in zip(table.column(REPLICA).to_pylist(), table.column(BUSY).to_numpy()):
                rows[rep] += 1
                busy[rep] += float(sec)
            out.write_part(table.drop_columns([REPLICA, BUSY]), locator)
        return {"rows": dict(rows), "busy": dict(busy)}

    def on_write_complete(self, write_result) -> None:
        for ret in write_result.write_returns:
            self.replicas.update(ret["rows"])
            self.busy.update(ret["busy"])

    @property
    def supports_distributed_writes(self) -> bool:
        return True


def _resources(cfg: LabelConfig) -> tuple[float, int]:
    """CPUs to reserve per actor and torch threads inside it."""
    if cfg.cpus_per_replica is not None:
        cpus = cfg.cpus_per_replica
    elif cfg.gpus_per_replica > 0:
        cpus = 1.0
    else:  # leave one CPU for reading and writing, or the job stalls on a small machine
        total = ray.cluster_resources().get("CPU", 1.0)
        cpus = max(0.1, min(1.0, (total - 1.0) / cfg.replicas))
    return cpus, max(1, int(cpus))


def _block_rows(files, cfg: LabelConfig) -> tuple[int, int]:
    """(events per block, bytes of one event's views): ~4 blocks per replica, between 2 batches and MAX_BLOCK_ROWS."""
    n = sum(files.num_rows)
    n = min(n, cfg.max_events or n)
    first_file = pq.ParquetFile(files.paths[0], filesystem=files.filesystem)
    first = next(first_file.iter_batches(batch_size=1, columns=["height", "width"]), None)
    event_bytes = 2 * int(first.column("height")[0].as_py() * first.column("width")[0].as_py()) if first else 1
    return int(min(MAX_BLOCK_ROWS, max(2 * cfg.batch_size, n // (4 * cfg.replicas)))), event_bytes


def _prep_memory(rows: int, event_bytes: int) -> int:
    """Memory to reserve per prefilter/prepare task: its worker plus ~PREP_COPIES copies of one block's views
    (Ray Data schedules against it, so a node runs only the preparing tasks its memory holds)."""
    return WORKER_BASE_BYTES + PREP_COPIES * rows * event_bytes


def run_label(cfg: LabelConfig) -> dict:
    """Label ``cfg.events`` into ``cfg.out`` (contract 2); resumable, exactly once. Returns the summary."""
    from nudistill.teacher.loading import resolve_parts, teacher_id_of

    t0 = time.perf_counter()
    source = resolve_files(cfg.events, cfg.skip_bad_files)  # every footer read; bad files refused or left out
    teacher_id = teacher_id_of(cfg.teacher, cfg.quantize, cfg.adapter)
    view_size = resolve_parts(cfg.teacher, cfg.quantize, cfg.adapter)[1].view_size  # what prepare pools to
    out = OutputDir(cfg.out)
    out.claim(teacher_id, {"teacher": cfg.teacher, "events": cfg.events, "config": config_dict(cfg)})
    todo = plan(source, out, cfg.max_events)  # finished files skipped unread; the rest cut into row groups
    dup_rows = duplicate_rows(source, cfg.max_events) if todo.units else np.zeros(0, np.uint64)
    n_in = todo.n_in
    log.info("labelling %d of %d events (%d already committed) with teacher %s", todo.todo, n_in, todo.committed,
             teacher_id)

    ensure_ray()
    ctx = DataContext.get_current()
    ctx.execution_no_progress_timeout_s = cfg.no_progress_timeout_s
    block_rows, event_bytes = _block_rows(source, cfg)
    ctx.target_max_block_size = max(block_rows * event_bytes, 64 * 1024)  # blocks small enough that every replica gets work
    if cfg.max_events:
        ctx.execution_options.preserve_order = True  # the same first N rows on every rerun
    sink = LabelSink(cfg.out, source.paths, source.num_rows)
    if todo.units:
        ds = read_dataset(todo.units, source.filesystem, block_rows)
        cpus, threads = _resources(cfg)
        try:
            with drop_known_lines():
                _execute(ds, cfg, todo.done_rows, dup_rows, sink, threads, cpus, view_size,
                         _prep_memory(block_rows, event_bytes))
        except STOPPED as exc:
            log.info("Ray stopped the run", exc_info=True)
            ray.shutdown()  # disconnect now: Ray's own reports of the failure come before our sentence, not after it
            raise stopped(exc, plan(source, out, cfg.max_events)) from None
        plan(source, out, cfg.max_events)  # marks the files this run finished as done
    return summarise(cfg, out, n_in, teacher_id, processed=sum(sink.replicas.values()),
                     wall_s=time.perf_counter() - t0, replicas=sink.replicas, busy=sink.busy,
                     files_skipped=source.skipped_records())


def stopped(exc: BaseException, now: Plan) -> UserError:
    """One sentence for a run Ray could not finish: why, what is kept (``now``: a fresh plan), what to do."""
    why = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:200]
    return UserError(f"the run stopped before it finished ({type(exc).__name__}: {why}); {now.committed} of "
                     f"{now.n_in} events are committed; rerun the same command to resume (finished work is kept)")


def read_dataset(units: list[dict], filesystem, max_rows: int = 0):
    """The rows of the read units, with Ray Data's ``row_hash`` (one unit is one Parquet row group), in blocks of
    at most ``max_rows`` events (0: a row group per block)."""
    return ray.data.from_items(units, override_num_blocks=min(len(units), 1000)).map_batches(
        read_units, fn_kwargs={"filesystem": filesystem, "max_rows": max_rows}, batch_size=1, batch_format="pyarrow",
        num_cpus=0.5)


def _execute(ds, cfg: LabelConfig, done, dup_rows, sink: LabelSink, threads: int, cpus: float,
             view_size: int | None, prep_memory: int) -> None:
    """prefilter -> prepare (CPU, ``prep_memory`` bytes reserved per task) -> teacher actors -> sink, by Ray Data."""
    (ds.map_batches(prefilter, fn_kwargs={"done": done, "dup_rows": dup_rows}, batch_format="pyarrow",
                    batch_size=None, num_cpus=0.1, memory=prep_memory)
       .map_batches(prepare, fn_kwargs={"view_size": view_size}, batch_format="pyarrow", batch_size=None, num_cpus=0.1,
                    memory=prep_memory)
       .map_batches(LabelActor, fn_constructor_kwargs=dict(
                        teacher=cfg.teacher, out=cfg.out, rationale=cfg.rationale, quantize=cfg.quantize,
                        adapter=cfg.adapter, max_attempts=cfg.max_attempts, threads=threads,
                        fault_poison_event=cfg.fault_poison_event, prepared=True),
                    batch_size=cfg.batch_size, batch_format="pyarrow", compute=ActorPoolStrategy(size=cfg.replicas),
                    num_gpus=cfg.gpus_per_replica or None, num_cpus=cpus, resources=cfg.resources_per_replica or None)
       .write_datasink(sink))


def summarise(cfg: LabelConfig, out: OutputDir, n_in: int, teacher_id: str, processed: int, wall_s: float,
              replicas: Counter, busy: Counter, files_skipped: list[dict]) -> dict:
    """Reconcile the committed output against the input, write summary.json, print one line."""
    table = out.committed(["status", "source_row"])
    statuses = table.column("status").to_pylist()
    reasons = Counter(reason_of(s) for s in statuses if s != "ok")
    n_unique = len(np.unique(table.column("source_row").to_numpy()))
    summary = {
        "teacher_id": teacher_id, "events_in": n_in, "rows_out": len(statuses), "ok": statuses.count("ok"),
        "errors": sum(reasons.values()), "errors_by_reason": dict(reasons), "duplicates": len(statuses) - n_unique,
        "missing": n_in - n_unique, "processed_this_run": processed, "wall_s": round(wall_s, 2),
        "events_per_s": round(processed / wall_s, 2) if wall_s else 0.0,
        "replicas": {r: {"events": n, "busy_s": round(busy[r], 2), "events_per_s": round(n / wall_s, 2),
                         "events_per_busy_s": round(n / busy[r], 2) if busy[r] else None}
                     for r, n in sorted(replicas.items())},
        "events": cfg.events, "out": cfg.out,
        "files_skipped": files_skipped,  # unreadable or nonconforming input files: their events are not in events_in
    }
    out.write_summary(summary)
    say(f"labelled {summary['ok']} of {n_in} events ok, {summary['errors']} errors "
        f"{dict(reasons) if reasons else ''} in {wall_s:.1f} s ({summary['events_per_s']} events/s this run, "
        f"{processed} processed, {n_in - processed} resumed); teacher {teacher_id} -> {cfg.out}"
        + (f"; {len(files_skipped)} bad input file(s) skipped, listed in summary.json" if files_skipped else ""))
    if summary["missing"] or summary["duplicates"]:
        raise UserError(f"the output holds {summary['missing']} missing and {summary['duplicates']} duplicated "
                        f"events; rerun the same command to finish (finished work is kept)")
    return summary
