"""Benchmark labelling throughput: a bare in-process loop vs Ray Data with 1 and 2 teacher replicas (JSON).

The same events, the same tiny teacher and the same per-batch work (prefilter + LabelActor); Ray's
cluster start is outside the timing, actor start-up (teacher load) is inside, as in the bare loop.
Run: ``.venv/bin/python bench/label.py --n 5000 --teacher TEACHER_DIR``   (quick look: ``--n 500 --res 128``)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path


def bare_loop(events: str, teacher: str, out: str, batch_size: int, threads: int) -> float:
    """Label in this process, batch by batch, with the same stages Ray runs; returns events/s."""
    import numpy as np
    import pyarrow as pa

    from nudistill.events import iter_batches
    from nudistill.label.actor import BUSY, REPLICA, ROW, LabelActor, prefilter, prepare
    from nudistill.label.outdir import OutputDir

    t0 = time.perf_counter()
    actor = LabelActor(teacher, out, rationale="none", threads=threads, prepared=True)
    view_size = actor.teacher.spec.view_size
    sink, n, offset = OutputDir(out), 0, 0
    empty = np.zeros(0, np.uint64)
    for batch in iter_batches(events, batch_size=batch_size):
        rows = np.arange(offset, offset + batch.num_rows, dtype=np.uint64)
        offset += batch.num_rows
        table = prefilter(pa.Table.from_batches([batch]).append_column(ROW, pa.array(rows)), empty, {})
        sink.write_part(actor(prepare(table, view_size)).drop_columns([REPLICA, BUSY]))
        n += batch.num_rows
    return n / (time.perf_counter() - t0)


def ray_run(events: str, teacher: str, out: str, batch_size: int, replicas: int) -> tuple[float, dict]:
    from nudistill.label import LabelConfig
    from nudistill.label.pipeline import run_label

    t0 = time.perf_counter()
    summary = run_label(LabelConfig(events=events, teacher=teacher, out=out, replicas=replicas,
                                    batch_size=batch_size, rationale="none"))
    return summary["ok"] / (time.perf_counter() - t0), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="events (default 5000)")
    parser.add_argument("--res", type=int, default=512, help="pixel-map side (default 512, the study's)")
    parser.add_argument("--batch-size", type=int, default=32, help="events per teacher call (default 32)")
    parser.add_argument("--teacher", help="teacher directory (default: build the tiny teacher)")
    args = parser.parse_args()
    os.environ.setdefault("NUDISTILL_NO_PROGRESS", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    from nudistill.label.pipeline import ensure_ray
    from nudistill.simulate import SimConfig, write_dataset

    work = Path(tempfile.mkdtemp(prefix="nudistill-bench-label-"))
    try:
        events = str(work / "events")
        write_dataset(SimConfig(n=args.n, res=args.res, seed=0, rows_per_file=1000), events, progress_bar=False)
        teacher = args.teacher
        if teacher is None:
            from nudistill.teacher.tiny import build_tiny_teacher

            teacher = str(build_tiny_teacher(work / "teacher"))
        bare = bare_loop(events, teacher, str(work / "bare"), args.batch_size, threads=1)
        ensure_ray()
        ray1, s1 = ray_run(events, teacher, str(work / "ray1"), args.batch_size, 1)
        ray2, s2 = ray_run(events, teacher, str(work / "ray2"), args.batch_size, 2)
        print(json.dumps({
            "bench": "label", "events": args.n, "res": args.res, "batch_size": args.batch_size,
            "bare_loop_events_per_s": round(bare, 2), "ray_1_replica_events_per_s": round(ray1, 2),
            "ray_2_replicas_events_per_s": round(ray2, 2),
            "ray_1_over_bare": round(ray1 / bare, 3), "ray_2_over_bare": round(ray2 / bare, 3),
            "goal_ray_1_over_bare": 0.7, "per_replica_2": s2["replicas"],
            "cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
        }))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
