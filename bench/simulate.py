"""Benchmark the toy simulator: events per second on one core at a given resolution (prints JSON).

Run: ``.venv/bin/python bench/simulate.py --n 300 --res 512``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="events to generate (default 300)")
    parser.add_argument("--res", type=int, default=512, help="pixel-map side (default 512)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported (default 3)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: numpy work here is single-threaded anyway

    from nudistill.simulate import simulate_table

    simulate_table(5, res=args.res, seed=99)  # warm-up (imports, allocator)
    times = []
    for r in range(args.repeats):
        t0 = time.process_time()  # CPU time of this process: one core's worth, robust to other load
        w0 = time.perf_counter()
        simulate_table(args.n, res=args.res, seed=r)
        times.append((time.process_time() - t0, time.perf_counter() - w0))
    cpu, wall = min(times)
    print(json.dumps({
        "bench": "simulate",
        "res": args.res,
        "events": args.n,
        "events_per_cpu_second": round(args.n / cpu, 1),
        "events_per_wall_second": round(args.n / wall, 1),
        "goal_events_per_core_second": 100,
        "cpu": platform.processor() or platform.machine(),
    }))


if __name__ == "__main__":
    main()
