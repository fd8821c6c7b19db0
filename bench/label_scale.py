"""Benchmark the labelling driver at scale: planning and resume cost without a teacher (JSON).

Cases, each in a fresh process (peak RSS is per process), on N events of tiny views (4x4) in 10 files
of row groups of ROW_GROUP events:
  (a) plan:        plan a fresh job;
  (b) resume_done: resume a job whose every row is committed;
  (c) resume_99:   resume a job with 99 % of its rows committed (each file's first 99 %, as a job killed
                   near its end leaves them: files are read in row order).
Each reports the driver's peak RSS growth over its RSS at the start of the case (Ray started, modules
imported; the peak is reset there through /proc/self/clear_refs), the wall time, and the bytes of view
columns (xz, yz) read. The set-up writes the committed output of (b) and (c)
directly through OutputDir, one part per MAX_BLOCK_ROWS rows of a file as the sink commits them, and
then plans once, as a run does at its end (which marks the files it finished as done).

Two code paths, in the same run:
  ``baseline``: the driver as it was: a Python dict over every (event_id, row hash), every committed
                ``source_row`` read, every file read by read_parquet and the committed rows dropped after;
  ``per_file``: nudistill.label.pipeline as it is: plan.plan (finished files skipped unread, the rest cut
                into row groups), plan.duplicate_rows (event ids only, bucketed on disk), and the read
                stage over the row groups left.

Run: ``.venv/bin/python bench/label_scale.py --n 1000000``   (quick look: ``--n 100000``; acceptance: ``--n 10000000``)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILES = 10
VIEW = 4  # pixels a side
ROW_GROUP = 1000  # events per Parquet row group (about 250 MB of views at 512 x 512)


def write_events(path: Path, n: int) -> None:
    """N events of VIEW x VIEW random pixels in FILES files (no truth columns)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nudistill.events import encode_views

    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    per = -(-n // FILES)
    for k in range(FILES):
        m = min(per, n - k * per)
        ids = pa.array(np.char.add(f"e{k}-", np.arange(m).astype(str)))
        cols = encode_views(rng.integers(0, 256, (m, 2, VIEW, VIEW), dtype=np.uint8))
        pq.write_table(pa.table({"event_id": ids, **cols}), path / f"part-{k:03d}.parquet", row_group_size=ROW_GROUP)


def _files(events: Path):
    from nudistill.events import resolve_files

    return resolve_files(str(events))


def _dataset(events: Path):
    import ray

    files = _files(events)
    return ray.data.read_parquet(files.paths, filesystem=files.filesystem, include_row_hash=True)


def write_committed(events: Path, out: Path, fraction: float) -> None:
    """Commit each file's first ``fraction`` of rows as labelled, through OutputDir, as the sink would."""
    import pyarrow.parquet as pq

    from nudistill.label.outdir import OutputDir
    from nudistill.label.pipeline import MAX_BLOCK_ROWS
    from nudistill.label.plan import Locator, plan, row_hashes
    from nudistill.labels import error_rows

    files = _files(events)
    locator = Locator(files.paths, files.num_rows)
    od = OutputDir(str(out))
    od.claim("bench", {})
    for path, n in zip(files.paths, files.num_rows):
        keep = int(round(n * fraction))
        ids = pq.read_table(path, columns=["event_id"]).column("event_id").slice(0, keep)
        for a in range(0, keep, MAX_BLOCK_ROWS):
            b = min(keep, a + MAX_BLOCK_ROWS)
            od.write_part(error_rows(ids.slice(a, b - a).to_pylist(), ["error: bench"] * (b - a), "bench",
                                     row_hashes(path, a, b)), locator)
    plan(files, od)  # what a run does at its end: files fully committed are marked done


def _baseline_plan(ds) -> tuple[int, dict[str, int]]:
    """The driver's planning pass as it was: every (event_id, row hash) in Python dicts."""
    from collections import Counter

    from nudistill.label.actor import ROW

    counts: Counter = Counter()
    first: dict[str, int] = {}
    n = 0
    for batch in ds.select_columns(["event_id", ROW]).iter_batches(batch_format="pyarrow", batch_size=65536):
        n += batch.num_rows
        for eid, row in zip(batch.column("event_id").to_pylist(), batch.column(ROW).to_pylist()):
            counts[eid] += 1
            first[eid] = min(first.get(eid, row), row)
    return n, {eid: first[eid] for eid, c in counts.items() if c > 1 and eid is not None}


def _status_kb(field: str) -> int:
    """A kB field of /proc/self/status (VmRSS: resident now; VmHWM: peak resident since the last reset)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _reset_peak_rss() -> int:
    """Reset this process's peak RSS to its current RSS (Linux clear_refs 5); return that RSS in kB.

    Growth is then measured over the RSS at the case's start, not over the high-water mark of start-up
    (Ray and the imports), which ``ru_maxrss`` would keep and which can hide a smaller planning peak."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kb("VmRSS")


def run_case(case: str, path: str, events: Path, out: Path) -> dict:
    """One case of one code path in this process; returns its figures."""
    import numpy as np

    from nudistill.label.actor import prefilter
    from nudistill.label.outdir import OutputDir
    from nudistill.label.pipeline import ensure_ray, read_dataset
    from nudistill.label.plan import duplicate_rows, plan

    ensure_ray()
    files = _files(events)
    n_input = sum(files.num_rows)
    rss0 = _reset_peak_rss()
    t0 = time.perf_counter()
    view_bytes = rows_left = 0
    if path == "baseline":
        done = OutputDir(str(out)).committed_rows() if case != "plan" else np.zeros(0, np.uint64)
        ds = _dataset(events)
        n_in, dup_winner = _baseline_plan(ds)
        committed = len(done)
        if case != "plan":  # every block read, then the prefilter drops committed rows
            for batch in ds.map_batches(prefilter, fn_kwargs={"done": done, "dup_winner": dup_winner},
                                        batch_format="pyarrow", batch_size=None).iter_batches(batch_format="pyarrow"):
                rows_left += batch.num_rows
            view_bytes = n_in * 2 * VIEW * VIEW  # read_parquet reads every view before the prefilter sees a row
    else:
        todo = plan(files, OutputDir(str(out)) if case != "plan" else _EmptyOut())
        dup_rows = duplicate_rows(files) if todo.units else np.zeros(0, np.uint64)
        n_in, committed = todo.n_in, todo.committed
        if case != "plan" and todo.units:  # the read stage: only the row groups left, then the prefilter
            for batch in read_dataset(todo.units, files.filesystem).map_batches(
                    prefilter, fn_kwargs={"done": todo.done_rows, "dup_rows": dup_rows}, batch_format="pyarrow",
                    batch_size=None).iter_batches(batch_format="pyarrow"):
                rows_left += batch.num_rows
            view_bytes = todo.rows_to_read * 2 * VIEW * VIEW
    wall = time.perf_counter() - t0
    rss = _status_kb("VmHWM") - rss0
    return {"case": case, "path": path, "events": n_in, "committed": int(committed), "rows_left": rows_left,
            "driver_rss_growth_mb": round(rss / 1024, 1), "wall_s": round(wall, 2), "view_bytes_read": view_bytes,
            "view_bytes_input": n_input * 2 * VIEW * VIEW,
            "view_bytes_read_pct": round(100 * view_bytes / (n_input * 2 * VIEW * VIEW), 2)}


class _EmptyOut:
    """A labels directory with nothing committed (planning a fresh job without creating one)."""

    def done_files(self) -> set:
        return set()

    def parts_by_file(self) -> dict:
        return {}

    def rows_of(self, parts: list) -> "np.ndarray":
        import numpy as np

        return np.zeros(0, np.uint64)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="events (default 1M)")
    p.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    p.add_argument("--path", help=argparse.SUPPRESS)
    p.add_argument("--paths", default="baseline,per_file", help="code paths to measure (comma-separated)")
    p.add_argument("--dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case:
        d = Path(args.dir)
        print(json.dumps(run_case(args.case, args.path, d / "events", d / f"out_{args.case}")))
        return
    with tempfile.TemporaryDirectory(prefix="label_scale") as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        write_events(d / "events", args.n)
        for case, fraction in (("resume_done", 1.0), ("resume_99", 0.99)):
            subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'bench'); import label_scale as b; "
                            f"b.write_committed(b.Path({str(d / 'events')!r}), b.Path({str(d / f'out_{case}')!r}), "
                            f"{fraction})"], check=True, cwd=Path(__file__).parents[1])
        setup_s = time.perf_counter() - t0
        results = []
        for case in ("plan", "resume_done", "resume_99"):
            for path in args.paths.split(","):
                res = subprocess.run([sys.executable, __file__, "--case", case, "--path", path, "--dir", tmp],
                                     check=True, capture_output=True, text=True)
                results.append(json.loads(res.stdout.strip().splitlines()[-1]))
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        print(json.dumps({"n": args.n, "files": FILES, "view": f"{VIEW}x{VIEW}", "row_group": ROW_GROUP, "setup_s": round(setup_s, 1),
                          "cases": results}, indent=2))


if __name__ == "__main__":
    main()
