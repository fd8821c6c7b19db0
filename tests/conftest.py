"""Shared fixtures: offline Hugging Face, quiet progress bars, small simulated datasets; the quick demo of
test_demo.py started in the background as soon as collection ends (tests/demo_background.py)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("NUDISTILL_NO_PROGRESS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pyarrow.parquet as pq
import pytest

from demo_background import DEMO_KEY, BackgroundDemo

DEMO_TESTS = "test_demo.py"


def pytest_collection_modifyitems(config, items):
    """test_demo.py's tests go last: its demo runs beside every other test and they wait for it least there."""
    items.sort(key=lambda item: item.path.name == DEMO_TESTS)  # stable: the rest keep their order


def pytest_collection_finish(session):
    """Start the quick demo now when one of its tests is selected (and tests will run)."""
    if session.config.option.collectonly or not any(i.path.name == DEMO_TESTS for i in session.items):
        return
    run = session.config._tmp_path_factory.mktemp("demo") / "run"  # pytest's tmp_path_factory, before any fixture
    session.config.stash[DEMO_KEY] = BackgroundDemo(run).start()


def pytest_sessionfinish(session):
    demo = session.config.stash.get(DEMO_KEY, None)
    if demo is not None:
        demo.stop()  # an interrupted or failed session leaves no demo running


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


@pytest.fixture(scope="session")
def events_128():
    """40 simulated events at 128² (the teacher's and the default student's pooled size), all three classes."""
    from nudistill.events import decode_views
    from nudistill.simulate import simulate_table

    return decode_views(simulate_table(40, res=128, seed=5))


@pytest.fixture(scope="session")
def overlay_muons():
    """``overlay_muons(views, n, rng)``: views (2, H, W) with ``n`` cosmic muons added, and the muons' pixels."""
    import numpy as np

    from nudistill import detector as det

    def overlay(views, n: int, rng) -> tuple:
        mu = det.cosmic_image(views.shape, n, rng, 38.0)
        return det.to_uint8(views.astype(np.float32) + mu), det.to_uint8(mu) > 0

    return overlay
