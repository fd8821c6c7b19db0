"""bench/bn_stash.py: both recalibration modes timed in one process, the same weights, the limit restored."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_both_modes_train_the_same_weights_and_are_timed(sim_dir, capsys):
    from nudistill.student import train as train_mod

    spec = importlib.util.spec_from_file_location("bench_bn_stash", ROOT / "bench" / "bn_stash.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    limit = train_mod.BN_STASH_BYTES
    result = bench.main(["--events", str(sim_dir), "--steps", "3", "--recal-batches", "2", "--batch-size", "8",
                         "--repeats", "1"])
    assert json.loads(capsys.readouterr().out) == result
    assert result["same_weights"] is True
    assert [len(v) for v in result["seconds"].values()] == [1, 1] and all(
        s > 0 for v in result["seconds"].values() for s in v)
    assert train_mod.BN_STASH_BYTES == limit  # the read-again mode's limit of 0 does not leak
