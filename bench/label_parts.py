"""Benchmark reading a labelling job's committed parts: the summary and a resume read every part (JSON).

A job over 10M events commits thousands of ``part-*.parquet`` files. ``OutputDir.committed`` and
``OutputDir.rows_of`` read them with Arrow's dataset scanner, several at once; ``one_by_one`` is the way
they read them before (``pq.read_table`` per part, then a concatenation). Both read the same columns of
the same parts in the same order, in one process, alternating, and must return equal tables.

Run: ``.venv/bin/python bench/label_parts.py --parts 2000 --rows 5000``   (10M committed rows)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def write_parts(out: Path, parts: int, rows: int) -> None:
    """``parts`` committed parts of ``rows`` rows each, named as the sink names them."""
    for i in range(parts):
        table = pa.table({"source_row": pa.array(np.arange(i * rows, (i + 1) * rows, dtype=np.uint64)),
                          "status": pa.array(["ok"] * rows)})
        pq.write_table(table, out / f"part-{i:06d}-bench.parquet", compression="zstd")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=int, default=2000, help="committed parts (default 2000)")
    parser.add_argument("--rows", type=int, default=5000, help="rows per part (default 5000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed reads per way (default 3)")
    args = parser.parse_args()

    from nudistill.label.outdir import OutputDir

    columns = ["source_row", "status"]
    with tempfile.TemporaryDirectory() as tmp:
        write_parts(Path(tmp), args.parts, args.rows)
        out = OutputDir(tmp)
        parts = out.parts()
        times: dict[str, list[float]] = {"dataset": [], "one_by_one": []}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            a = out.committed(columns)
            times["dataset"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b = pa.concat_tables([pq.read_table(p, columns=columns) for p in parts])
            times["one_by_one"].append(time.perf_counter() - t0)
            assert a.equals(b), "the two ways read different tables"
    best = {k: min(v) for k, v in times.items()}
    print(json.dumps({"bench": "label_parts", "parts": args.parts, "rows": args.parts * args.rows,
                      "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
                      "speedup_best": round(best["one_by_one"] / best["dataset"], 2)}, indent=2))


if __name__ == "__main__":
    main()
