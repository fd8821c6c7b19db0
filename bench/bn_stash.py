"""Seconds per distillation epoch with BatchNorm recalibrated on kept batches against a second pass; prints JSON.

Before each validation the trainer recomputes BatchNorm's statistics over the epoch's first
``bn_recalibration_batches`` train batches (``nudistill.student.train.BatchStash``). Kept as they pass, they are
not read and augmented again; past ``BN_STASH_BYTES`` the loader is read again, as before the stash. This
trains one-epoch students both ways on the same events and labels, alternating the two modes ``--repeats``
times in one process (machines are noisy: compare the ratio), and checks that both give the same weights.

Run on the default demo's labels (``make demo`` first)::

    python bench/bn_stash.py --events runs/demo/simulate/train --labels runs/demo/label --steps 20

Tiny: ``nudistill simulate --n 200 --res 64 --out /tmp/e`` then ``--events /tmp/e --steps 4 --batch-size 8``
(no ``--labels``: truth stands in).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", required=True, help="training events (contract 1)")
    p.add_argument("--labels", help="teacher labels (contract 2); none: truth only (alpha 0)")
    p.add_argument("--steps", type=int, default=20, help="optimiser steps in the epoch (default 20)")
    p.add_argument("--recal-batches", type=int, default=20, help="bn_recalibration_batches (default 20)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default 32, the demo's)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each mode, alternating (default 2)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    import torch

    from nudistill.student import load_student
    from nudistill.student import train as train_mod

    a = parse(argv)
    base = dict(events=a.events, labels=a.labels, epochs=1, max_steps_per_epoch=a.steps, batch_size=a.batch_size,
                bn_recalibration_batches=a.recal_batches, seed=0,
                **({} if a.labels else dict(alpha=0.0, hard_labels="truth", concept_source="truth")))
    limit = train_mod.BN_STASH_BYTES
    seconds: dict[str, list[float]] = {"kept": [], "read_again": []}
    states = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(a.repeats):
                for mode in seconds:
                    train_mod.BN_STASH_BYTES = limit if mode == "kept" else 0  # 0: not one batch is kept
                    out = Path(tmp) / f"{mode}{r}"
                    t0 = time.perf_counter()
                    train_mod.train({**base, "out": str(out)})
                    seconds[mode].append(time.perf_counter() - t0)
                    states[mode] = load_student(out).state_dict()
    finally:
        train_mod.BN_STASH_BYTES = limit
    same = all(torch.equal(states["kept"][k], states["read_again"][k]) for k in states["kept"])
    med = {m: statistics.median(v) for m, v in seconds.items()}
    result = {"steps": a.steps, "recal_batches": a.recal_batches, "batch_size": a.batch_size,
              "seconds": {m: [round(x, 2) for x in v] for m, v in seconds.items()},
              "median_s": {m: round(v, 2) for m, v in med.items()},
              "saved_s_per_epoch": round(med["read_again"] - med["kept"], 2),
              "ratio_read_again_over_kept": round(med["read_again"] / med["kept"], 3),
              "same_weights": same, "torch_threads": torch.get_num_threads()}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
