"""bench/distill.py: three recipes, several seeds, a mean per recipe, and goals on the means (stand-in labels)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_distill", ROOT / "bench" / "distill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seeds_are_trained_apart_and_averaged(sim_dir, tmp_path, capsys):
    bench = load_bench()
    out = tmp_path / "run"
    result = bench.main(["--train-events", str(sim_dir), "--test-events", str(sim_dir), "--stand-in-teacher",
                         "--epochs", "1", "--batch-size", "16", "--recipes", "soft,hard", "--seeds", "0,1",
                         "--out", str(out)])
    assert json.loads(capsys.readouterr().out) == json.loads((out / "bench.json").read_text())
    assert sorted(result["runs"]) == ["lean_pool4/hard/seed0", "lean_pool4/hard/seed1",
                                      "lean_pool4/soft/seed0", "lean_pool4/soft/seed1"]
    for recipe in ("soft", "hard"):
        runs = [result["runs"][f"lean_pool4/{recipe}/seed{s}"] for s in (0, 1)]
        mean = result["students"][f"lean_pool4/{recipe}"]
        assert mean["seeds"] == 2
        assert np.isclose(mean["accuracy"], np.mean([r["accuracy"] for r in runs]))
        assert np.isclose(mean["accuracy_sd"], np.std([r["accuracy"] for r in runs], ddof=1))
        assert all((out / f"lean_pool4_{recipe}_s{s}" / "model.safetensors").is_file() for s in (0, 1))
    # seeds change the initialisation: the two soft students are different networks
    a, b = (json.loads((out / f"lean_pool4_soft_s{s}" / "eval_test.json").read_text()) for s in (0, 1))
    assert a["full"]["ece"] != b["full"]["ece"]
    assert set(result["goals"]["lean_pool4"]) == {"soft_within_1pt_of_teacher", "soft_ge_hard",
                                                  "concept_macro_auc_ge_0.85"}
    assert result["teacher_source"].startswith("stand-in")
