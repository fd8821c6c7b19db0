"""Contract 1: validation reasons, decoding, streaming with bounded memory, pass-through columns."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nudistill import events as ev
from nudistill.errors import UserError
from nudistill.simulate import simulate_table


def _corrupt(table: pa.Table) -> tuple[pa.Table, dict[str, str]]:
    """Break rows 1-6 in each contract-1 way; returns the table and {event_id: expected reason}."""
    rows = table.to_pylist()
    expected = {}
    rows[1]["xz"] = rows[1]["xz"][:-3]
    expected[rows[1]["event_id"]] = ev.BYTE_COUNT
    rows[2]["yz"] = None
    expected[rows[2]["event_id"]] = ev.NULL_VIEW
    rows[3]["label"] = "nutau_cc"
    expected[rows[3]["event_id"]] = ev.UNKNOWN_LABEL
    rows[4]["event_id"] = rows[0]["event_id"]
    expected_dup = rows[4]["event_id"]
    rows[5]["height"] = 0
    expected[rows[5]["event_id"]] = ev.BAD_SHAPE
    rows[6]["width"] = -64
    expected[rows[6]["event_id"]] = ev.BAD_SHAPE
    out = pa.Table.from_pylist(rows, schema=table.schema)
    return out, expected | {"__dup__": expected_dup}


def test_schema_and_classes():
    assert [f.name for f in ev.EVENT_SCHEMA] == ["event_id", "xz", "yz", "height", "width", "label"]
    from nudistill import CLASSES
    assert CLASSES == ("nue_cc", "numu_cc", "nc")


def test_every_corruption_reported_with_its_reason_and_good_rows_decode():
    table = simulate_table(20, res=32, seed=5)
    bad, expected = _corrupt(table)
    dup_id = expected.pop("__dup__")
    ok, errors = ev.Validator()(bad)
    got = {e.event_id: e.reason for e in errors if e.reason != ev.DUPLICATE_ID}
    assert got == expected
    dups = [e for e in errors if e.reason == ev.DUPLICATE_ID]
    assert [e.event_id for e in dups] == [dup_id]
    assert ok.sum() == 20 - 6  # rows 1-6 broken
    assert all(e.status.startswith("error: ") and ev.reason_of(e.status) == e.reason for e in errors)
    views = ev.decode_views(bad.filter(ok))
    assert views.shape == (14, 2, 32, 32)
    good = ev.decode_views(table)
    np.testing.assert_array_equal(views[0], good[0])  # row 0 untouched


def test_duplicates_are_caught_across_batches():
    table = simulate_table(6, res=16, seed=1)
    validate = ev.Validator()
    ok1, _ = validate(table.slice(0, 3))
    ok2, errors = validate(table.slice(2, 4))
    assert ok1.all() and ok2.tolist() == [False, True, True, True]
    assert errors[0].reason == ev.DUPLICATE_ID


def test_expected_shape_rejects_other_resolutions():
    table = simulate_table(3, res=16, seed=1)
    ok, errors = ev.Validator(expected_shape=(32, 32))(table)
    assert not ok.any() and {e.reason for e in errors} == {ev.BAD_SHAPE}
    assert "differs from the expected 32x32" in errors[0].detail


def test_decode_roundtrip_and_sliced_batches():
    rng = np.random.default_rng(0)
    views = rng.integers(0, 256, size=(5, 2, 7, 9), dtype=np.uint8)
    cols = ev.encode_views(views)
    batch = pa.record_batch([pa.array([f"e{i}" for i in range(5)]), cols["xz"], cols["yz"], cols["height"], cols["width"]],
                            names=["event_id", "xz", "yz", "height", "width"])
    np.testing.assert_array_equal(ev.decode_views(batch), views)
    np.testing.assert_array_equal(ev.decode_views(batch.slice(2, 2)), views[2:4])


def test_missing_column_is_a_user_error():
    table = simulate_table(2, res=16).drop_columns(["yz"])
    with pytest.raises(UserError, match="yz"):
        ev.Validator()(table)


def test_sources_file_directory_glob_and_uri(sim_dir):
    n_dir = sum(b.num_rows for b in ev.iter_batches(sim_dir, batch_size=32))
    assert n_dir == 120
    files = sorted(sim_dir.glob("part-*.parquet"))
    assert sum(b.num_rows for b in ev.iter_batches(files[0], batch_size=7)) == 40
    assert sum(b.num_rows for b in ev.iter_batches(f"{sim_dir}/part-0000[12].parquet")) == 80
    assert sum(b.num_rows for b in ev.iter_batches(f"file://{sim_dir}")) == 120
    assert sum(b.num_rows for b in ev.iter_batches(sim_dir, limit=50)) == 50
    assert ev.count_rows(sim_dir) == 120
    with pytest.raises(UserError, match="does not exist"):
        list(ev.iter_batches(sim_dir / "nope"))


def test_extra_columns_pass_through(sim_dir):
    batch = next(ev.iter_batches(sim_dir, batch_size=8))
    assert {"concepts", "rationale", "lepton_energy_mev", "vertex_z_cm"} <= set(batch.schema.names)


_STREAM_SCRIPT = """
import json, sys, time
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
from nudistill import events as ev
root, batch_size, n_files, hw = sys.argv[1], 100, 30, 128
rng = np.random.default_rng(2)
for k in range(n_files):  # random pixels: compression cannot hide a batch's size
    cols = ev.encode_views(rng.integers(0, 256, (batch_size, 2, hw, hw), dtype=np.uint8))
    ids = pa.array([f"e{k}-{i}" for i in range(batch_size)])
    pq.write_table(pa.table({"event_id": ids, **cols}), f"{root}/part-{k:03d}.parquet")
pool = pa.default_memory_pool()  # in this process only the reader allocates from it
out = {"batch": batch_size * 2 * hw * hw}
for name, pause in (("fast", 0.0), ("slow", 0.02)):
    base, n, held = pool.bytes_allocated(), 0, 0
    for batch in ev.iter_batches(root, batch_size=batch_size):
        n += batch.num_rows
        held = max(held, pool.bytes_allocated() - base)
        ev.decode_views(batch)
        time.sleep(pause)  # a slow consumer: a reader that reads ahead would fill up here
    del batch  # the last batch, so the next run starts from the same base
    out[name] = {"rows": n, "held": held}
out["peak"] = pool.max_memory()
print(json.dumps(out))
"""


def test_streaming_memory_stays_near_one_batch(tmp_path):
    """A dataset 30x larger than a batch streams holding a few batches, the same whether the consumer is
    fast or slow: reading is pull-based, so what is held cannot depend on timing.

    Measured in a subprocess, whose default Arrow pool only the reader uses (in this process earlier
    tests and threads share it). What is held at a yield is the batch plus the file's column chunks being
    decoded; the peak adds a page decompressed.
    """
    proc = subprocess.run([sys.executable, "-c", _STREAM_SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    batch = got["batch"]
    assert got["fast"]["rows"] == got["slow"]["rows"] == 30 * 100
    assert got["fast"]["held"] == got["slow"]["held"], got
    assert batch <= got["fast"]["held"] < 5 * batch, f"held {got['fast']['held'] / 1e6:.1f} MB vs one batch {batch / 1e6:.1f} MB"
    assert got["peak"] < 8 * batch, f"peak {got['peak'] / 1e6:.1f} MB vs one batch {batch / 1e6:.1f} MB"


def test_later_file_lacking_a_column_streams_nulls(tmp_path):
    """Batches keep the first file's schema: a pass-through column a later file lacks comes as nulls."""
    first = simulate_table(4, res=16, seed=1)
    pq.write_table(first, tmp_path / "a.parquet")
    pq.write_table(simulate_table(3, res=16, seed=2).drop_columns(["rationale"]), tmp_path / "b.parquet")
    batches = list(ev.iter_batches(tmp_path, batch_size=100))
    assert [b.num_rows for b in batches] == [4, 3]
    assert all(b.schema.equals(first.schema) for b in batches)
    assert batches[1].column("rationale").null_count == 3
    assert [b.num_rows for b in ev.iter_batches(tmp_path, batch_size=2, limit=5)] == [2, 2, 1]


def test_multi_hot_order():
    m = ev.concepts_to_multi_hot([["em_shower", "proton_stub"], None, ["unknown"]])
    assert m.tolist()[0] == [0, 1, 0, 1, 0, 0] and m[1:].sum() == 0
