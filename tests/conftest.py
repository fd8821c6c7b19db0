"""Shared fixtures: offline Hugging Face, quiet progress bars, small simulated datasets."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("NUDISTILL_NO_PROGRESS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pyarrow.parquet as pq
import pytest


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory):
    """A small simulated dataset at 64x64: 120 events in 3 shards, truth columns included."""
    from nudistill.simulate import SimConfig, write_dataset

    out = tmp_path_factory.mktemp("sim64")
    write_dataset(SimConfig(n=120, res=64, seed=11, rows_per_file=40), out, progress_bar=False)
    return out


@pytest.fixture(scope="session")
def sim_table_64(sim_dir):
    """The sim_dir events as one in-memory table."""
    return pq.read_table(sim_dir)
