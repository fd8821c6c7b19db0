"""Benchmark the labelling driver at scale: planning and resume cost without a teacher (JSON).

Cases, each in a fresh process (peak RSS is per process), on N events of tiny views (4x4) in 10 files:
  (a) plan:        plan a fresh job (the driver's pass over event_id + row hash);
  (b) resume_done: resume a job whose every row is committed;
  (c) resume_99:   resume a job with 99 % of its rows committed.
Each reports the driver's peak RSS growth over its start (Ray started, modules imported), the wall time,
and the bytes of view columns (xz, yz) the resume's read stage passes through the prefilter. The set-up
writes the committed output of (b) and (c) directly through OutputDir (one part per file), keyed by the
row hashes Ray Data gives the rows. ``path: baseline`` is the code path of nudistill.label.pipeline as it is.

Run: ``.venv/bin/python bench/label_scale.py --n 1000000``   (quick look: ``--n 100000``; acceptance: ``--n 10000000``)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILES = 10
VIEW = 4  # pixels a side


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
        pq.write_table(pa.table({"event_id": ids, **cols}), path / f"part-{k:03d}.parquet")


def _dataset(events: Path):
    import ray

    from nudistill.events import resolve_files

    files = resolve_files(str(events))
    return ray.data.read_parquet(files.paths, filesystem=files.filesystem, include_row_hash=True)


def write_committed(events: Path, out: Path, fraction: float) -> None:
    """Commit ``fraction`` of every file's rows as labelled, through OutputDir, as the sink would."""
    import ray

    from nudistill.label.actor import ROW
    from nudistill.label.outdir import OutputDir
    from nudistill.label.pipeline import ensure_ray
    from nudistill.labels import error_rows

    ensure_ray()
    od = OutputDir(str(out))
    od.claim("bench", {})
    for t in ray.get(_dataset(events).select_columns(["event_id", ROW]).to_arrow_refs()):
        keep = t.slice(0, int(round(t.num_rows * fraction)))
        if keep.num_rows:
            od.write_part(error_rows(keep.column("event_id").to_pylist(), ["error: bench"] * keep.num_rows, "bench",
                                     keep.column(ROW).to_numpy()))


def run_case(case: str, events: Path, out: Path) -> dict:
    """One case of the baseline path in this process; returns its figures."""
    import numpy as np

    from nudistill.label.actor import prefilter
    from nudistill.label.outdir import OutputDir
    from nudistill.label.pipeline import _plan, ensure_ray

    ensure_ray()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    done = OutputDir(str(out)).committed_rows() if case != "plan" else np.zeros(0, np.uint64)
    ds = _dataset(events)
    n_in, dup_winner = _plan(ds)
    view_bytes = rows_left = 0
    if case != "plan":  # the read stage of the pipeline: every block read, then the prefilter drops committed rows
        for batch in ds.map_batches(prefilter, fn_kwargs={"done": done, "dup_winner": dup_winner},
                                    batch_format="pyarrow", batch_size=None).iter_batches(batch_format="pyarrow"):
            rows_left += batch.num_rows
        view_bytes = n_in * 2 * VIEW * VIEW  # read_parquet reads every view before the prefilter sees a row
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    return {"case": case, "path": "baseline", "events": n_in, "committed": int(len(done)), "rows_left": rows_left,
            "driver_rss_growth_mb": round(rss / 1024, 1), "wall_s": round(wall, 2), "view_bytes_read": view_bytes,
            "view_bytes_input": n_in * 2 * VIEW * VIEW}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="events (default 1M)")
    p.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    p.add_argument("--dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case:
        d = Path(args.dir)
        print(json.dumps(run_case(args.case, d / "events", d / f"out_{args.case}")))
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
            res = subprocess.run([sys.executable, __file__, "--case", case, "--dir", tmp], check=True,
                                 capture_output=True, text=True)
            results.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps({"n": args.n, "files": FILES, "view": f"{VIEW}x{VIEW}", "setup_s": round(setup_s, 1),
                          "cases": results}, indent=2))


if __name__ == "__main__":
    main()
