"""Distributed labelling on a real local Ray head: job submission, kill and resume, actor death,
corrupt input, a poison row, and teacher ownership. The teacher is the real tiny Mllama (untrained
weights are enough here: these tests check the pipeline, not the accuracy).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nudistill.errors import UserError
from nudistill.label import LabelConfig
from nudistill.label.outdir import OutputDir
from nudistill.labels import LABEL_SCHEMA, probs_matrix
from nudistill.simulate import SimConfig, simulate_table, write_dataset

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.ray, pytest.mark.slow]


_ISSUED_PORTS: set[int] = set()


def _free_port() -> int:
    """A port free now and never handed out before in this test process. The OS may give a just-closed port
    again: one CI run started `ray start` with its object-manager and metrics ports both 37849, and it failed."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ISSUED_PORTS:
            _ISSUED_PORTS.add(port)
            return port


def _env(**extra) -> dict:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1",
               PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", NUDISTILL_NO_PROGRESS="1")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def ray_head():
    """`ray start --head` on 127.0.0.1 with its own temp dir; yields (gcs address, dashboard url)."""
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    port, dash = _free_port(), _free_port()
    env = _env()
    subprocess.run([BIN / "ray", "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                    f"--temp-dir={temp}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                    "--num-cpus=2", "--disable-usage-stats"], check=True, env=env, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}", f"http://127.0.0.1:{dash}"
    finally:
        _stop_own_ray(temp)
        subprocess.run(["rm", "-rf", temp])


def _stop_own_ray(*temps: str, grace: float = 3.0) -> None:
    """Stop the processes of the nodes started on ``temps`` only (`ray stop` would stop every Ray on the
    machine, other people's included): those whose command line names a temp dir or session. Raylets
    first: they stop their workers and exit at once, while a GCS asked to stop beside its raylet waits;
    what is left after ``grace`` seconds (the autoscaler monitor ignores SIGTERM) is killed."""
    import psutil

    own = [p for p in psutil.process_iter(["cmdline"]) if any(t in " ".join(p.info["cmdline"] or []) for t in temps)]
    raylets = [p for p in own if "raylet/raylet" in (p.info["cmdline"] or [""])[0]]
    for group in (raylets, [p for p in own if p not in raylets]):
        for p in group:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.terminate()
        for p in psutil.wait_procs(group, timeout=grace)[1]:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    from nudistill.teacher.tiny import build_tiny_teacher

    out = tmp_path_factory.mktemp("teacher")
    build_tiny_teacher(out)
    return out


def _label_cli(events, teacher, out, address, *extra, wait=True):
    cmd = [sys.executable, "-m", "nudistill", "label", "--events", str(events), "--teacher", str(teacher),
           "--out", str(out), "--rationale", "none", *map(str, extra)]
    proc = subprocess.Popen(cmd, env=_env(RAY_ADDRESS=address), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    if wait:
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, output[-3000:]
        return output
    return proc


def test_embedded_local_ray_says_nothing_about_tokens_or_actor_arguments(tiny_teacher, tmp_path):
    """No RAY_ADDRESS: the CLI starts its own Ray; its known noise lines stay out of the output."""
    pq.write_table(simulate_table(24, res=32, seed=8), tmp_path / "ev.parquet")
    env = {k: v for k, v in _env(RAY_ADDRESS="local").items() if k != "RAY_AUTH_MODE"}
    res = subprocess.run([sys.executable, "-m", "nudistill", "label", "--events", str(tmp_path / "ev.parquet"),
                          "--teacher", str(tiny_teacher), "--out", str(tmp_path / "labels"), "--rationale", "none"],
                         env=env, capture_output=True, text=True, timeout=600)
    output = res.stdout + res.stderr
    assert res.returncode == 0, output[-3000:]
    assert "labelled 24 of 24 events ok" in output
    assert "Token authentication" not in output and "constructor arguments" not in output, output[-3000:]


def test_distillation_on_ray_starts_ray_through_the_same_quiet_helper(monkeypatch, tmp_path):
    """`distill --workers N` joins or starts Ray with ray_start.ensure_ray, as labelling does (an embedded
    Ray Train run end to end takes ~35 s on two busy cores; the helper's quiet start is tested above)."""
    from nudistill import ray_start
    from nudistill.student.ray_train import train_with_ray

    class Started(Exception):
        pass

    def ensure_ray(address=None, num_cpus=None):
        raise Started(num_cpus)

    monkeypatch.setattr(ray_start, "ensure_ray", ensure_ray)
    with pytest.raises(Started, match="^3$"):
        train_with_ray({"events": str(tmp_path), "out": str(tmp_path / "st"), "workers": 3, "alpha": 0.0,
                        "hard_labels": "truth", "concept_source": "truth"})


def _check_contract(out: Path, events) -> pa.Table:
    """One row per input event, contract-2 schema, teacher id everywhere, probs summing to 1 where ok."""
    table = pq.read_table(sorted(out.glob("part-*.parquet")))
    assert table.schema.equals(LABEL_SCHEMA)
    n_in = pq.read_table(events, columns=["event_id"]).num_rows
    assert table.num_rows == n_in
    assert len(np.unique(table.column("source_row").to_numpy())) == n_in
    owner = json.loads((out / "_nudistill_labels.json").read_text())["teacher_id"]
    assert set(table.column("teacher").to_pylist()) == {owner}
    ok = np.array([s == "ok" for s in table.column("status").to_pylist()])
    probs = probs_matrix(table)
    np.testing.assert_allclose(probs[ok].sum(1), 1.0, atol=1e-5)
    assert np.isnan(probs[~ok]).all()
    return table


def test_ray_job_submit_labels_every_event(ray_head, tiny_teacher, tmp_path):
    write_dataset(SimConfig(n=96, res=64, seed=1, rows_per_file=48), tmp_path / "ev", progress_bar=False)
    out = tmp_path / "labels"
    cmd = [BIN / "ray", "job", "submit", "--address", ray_head[1], "--working-dir", str(REPO), "--",
           "python", "ray_jobs/label_dataset.py", "--events", str(tmp_path / "ev"), "--teacher",
           str(tiny_teacher), "--out", str(out), "--replicas", "1", "--rationale", "fraction:0.2"]
    res = _submit(cmd, timeout=600)
    assert res.returncode == 0 and "succeeded" in res.stdout + res.stderr, (res.stdout + res.stderr)[-3000:]
    table = _check_contract(out, tmp_path / "ev")
    assert set(table.column("status").to_pylist()) == {"ok"}
    rationales = [r for r in table.column("rationale").to_pylist() if r is not None]
    assert 0 < len(rationales) < 96  # fraction:0.2 explains some events, not all
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events_in"] == summary["ok"] == 96 and summary["errors"] == 0


def test_kill_then_resume_labels_each_event_exactly_once(ray_head, tiny_teacher, tmp_path):
    write_dataset(SimConfig(n=3000, res=32, seed=2, rows_per_file=1000), tmp_path / "ev", progress_bar=False)
    out = tmp_path / "labels"
    proc = _label_cli(tmp_path / "ev", tiny_teacher, out, ray_head[0], "--replicas", "1", "--batch-size", "32",
                      wait=False)
    deadline = time.time() + 400
    while time.time() < deadline and len(list(out.glob("part-*.parquet"))) < 3:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # a hard kill of the driver, mid-run
    proc.wait()
    committed = len(OutputDir(str(out)).committed_rows())
    assert 0 < committed < 3000
    _label_cli(tmp_path / "ev", tiny_teacher, out, ray_head[0], "--replicas", "1", "--batch-size", "32")
    _check_contract(out, tmp_path / "ev")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processed_this_run"] == 3000 - committed < 3000
    assert not list(out.glob(".*.tmp"))  # no half-written file left for a reader


def test_actor_killed_mid_run_loses_nothing(ray_head, tiny_teacher, tmp_path):
    import psutil

    write_dataset(SimConfig(n=1200, res=32, seed=3, rows_per_file=600), tmp_path / "ev", progress_bar=False)
    out = tmp_path / "labels"
    proc = _label_cli(tmp_path / "ev", tiny_teacher, out, ray_head[0], "--replicas", "2", "--batch-size", "16",
                      wait=False)
    killed, deadline = None, time.time() + 400
    while killed is None and time.time() < deadline and proc.poll() is None:
        if list(out.glob("part-*.parquet")):
            for p in psutil.process_iter(["cmdline"]):
                if "LabelActor" in " ".join(p.info["cmdline"] or []):
                    p.kill()
                    killed = p.pid
                    break
        time.sleep(0.2)
    output, _ = proc.communicate(timeout=600)
    assert killed is not None, "no actor process found to kill"
    assert proc.returncode == 0, output[-3000:]
    table = _check_contract(out, tmp_path / "ev")
    assert set(table.column("status").to_pylist()) == {"ok"}


def _corrupt_dataset(path: Path, n: int = 500, poison: int = 7) -> tuple[dict[str, str], str]:
    """n events, 1 % broken in each contract-1 way; returns {event_id: reason} and the poison id."""
    rows = simulate_table(n, res=32, seed=4).to_pylist()
    expected = {}
    for k in range(5):  # 5 of each: 1 % of 500
        a, b, c, d, e = (rows[10 + 5 * k + j] for j in range(5))
        a["xz"] = a["xz"][:-1]
        expected[a["event_id"]] = "byte_count"
        b["yz"] = None
        expected[b["event_id"]] = "null_view"
        c["label"] = "sterile"
        expected[c["event_id"]] = "unknown_label"
        d["height"] = -1
        expected[d["event_id"]] = "bad_shape"
        e["event_id"] = rows[100 + k]["event_id"]  # a second row with an existing id
    path.mkdir()
    schema = simulate_table(1, res=32).schema
    pq.write_table(pa.Table.from_pylist(rows[:250], schema=schema), path / "part-0.parquet")
    pq.write_table(pa.Table.from_pylist(rows[250:], schema=schema), path / "part-1.parquet")
    return expected, rows[poison]["event_id"]


def test_corrupt_rows_and_a_poison_row_are_reported_and_the_job_succeeds(ray_head, tiny_teacher, tmp_path):
    expected, poison = _corrupt_dataset(tmp_path / "ev")
    out = tmp_path / "labels"
    _label_cli(tmp_path / "ev", tiny_teacher, out, ray_head[0], "--replicas", "1", "--batch-size", "16",
               "--fault-poison-event", poison, "--max-attempts", "2")
    table = _check_contract(out, tmp_path / "ev")
    status = {}
    for eid, s in zip(table.column("event_id").to_pylist(), table.column("status").to_pylist()):
        status.setdefault(eid, []).append(s)
    for eid, reason in expected.items():
        assert status[eid][0].startswith(f"error: {reason}"), (eid, status[eid])
    dup_ids = [eid for eid, s in status.items() if len(s) == 2]
    assert len(dup_ids) == 5 and all(sorted(s)[0].startswith("error: duplicate_id") and "ok" in s
                                     for s in (status[e] for e in dup_ids))
    assert status[poison] == ["error: quarantined (the teacher process died 2 times on this event)"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events_in"] == 500 == summary["ok"] + summary["errors"]
    assert summary["errors_by_reason"] == {"byte_count": 5, "null_view": 5, "unknown_label": 5, "bad_shape": 5,
                                           "duplicate_id": 5, "quarantined": 1}


def test_bad_files_are_refused_in_one_sentence_or_skipped_and_listed(ray_head, tiny_teacher, tmp_path):
    from test_preflight import OTHER, TRUNCATED, write_bad_dir

    events, out = write_bad_dir(tmp_path / "ev"), tmp_path / "labels"
    refused = _label_cli(events, tiny_teacher, out, ray_head[0], wait=False)
    output, _ = refused.communicate(timeout=300)
    assert refused.returncode == 2 and "Traceback" not in output, output[-3000:]
    assert [line for line in output.splitlines() if "error:" in line] == [output.strip().splitlines()[-1]]
    assert TRUNCATED in output and OTHER in output and "--skip-bad-files" in output and not out.exists()

    _label_cli(events, tiny_teacher, out, ray_head[0], "--skip-bad-files", "--batch-size", "4")
    summary = json.loads((out / "summary.json").read_text())
    assert {Path(f["path"]).name: f["reason"] for f in summary["files_skipped"]} == {
        TRUNCATED: "not a Parquet file (truncated?)", OTHER: "missing columns height, width"}
    assert summary["events_in"] == 12 == summary["ok"] + summary["errors"] == summary["rows_out"]
    assert summary["missing"] == summary["duplicates"] == 0


def test_a_directory_of_another_teacher_is_refused(tiny_teacher, tmp_path):
    from nudistill.label.pipeline import run_label
    from nudistill.teacher.spec import TeacherSpec

    other = tmp_path / "other_teacher"
    subprocess.run(["cp", "-r", str(tiny_teacher), str(other)], check=True)
    spec = TeacherSpec.load(other)
    spec.temperature = 2.0
    spec.save(other)
    out = tmp_path / "labels"
    OutputDir(str(out)).claim("0123456789abcdef", {})
    pq.write_table(simulate_table(2, res=32), tmp_path / "ev.parquet")
    with pytest.raises(UserError, match="holds labels from teacher 0123456789abcdef"):
        run_label(LabelConfig(events=str(tmp_path / "ev.parquet"), teacher=str(other), out=str(out)))


def test_cluster_yaml_validates_against_rays_schema():
    import jsonschema
    import ray
    import yaml

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    jsonschema.validate(config, schema)
    workers = {k: v for k, v in config["available_node_types"].items() if k != config["head_node_type"]}
    assert any(v["resources"].get("GPU", 0) > 0 and v["max_workers"] > v["min_workers"] for v in workers.values())
    assert config["available_node_types"][config["head_node_type"]]["resources"].get("GPU", 0) == 0


def _submit(cmd: list, timeout: int) -> subprocess.CompletedProcess:
    """`ray job submit`, retried while a fresh (or busy) head has no job agent yet: then nothing was submitted."""
    for _ in range(36):
        res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout, cwd=REPO)
        if "No available agent to submit job" not in res.stdout + res.stderr:
            return res
        time.sleep(5)
    return res


def test_distill_and_export_job_submit_gives_a_verified_model(ray_head, tmp_path):
    """The cluster path: Ray Train (2 CPU workers) -> checked ONNX -> bench and report in --out.
    Labels are the events' truth here (--alpha 0), which keeps the test about the job, not the teacher."""
    import onnxruntime as ort

    write_dataset(SimConfig(n=300, res=64, seed=6, rows_per_file=150), tmp_path / "ev", progress_bar=False)
    out = tmp_path / "student"
    res = _submit([BIN / "ray", "job", "submit", "--address", ray_head[1], "--working-dir", str(REPO), "--",
                   "python", "ray_jobs/distill_and_export.py", "--events", str(tmp_path / "ev"), "--out", str(out),
                   "--alpha", "0", "--hard-labels", "truth", "--concept-source", "truth", "--epochs", "1",
                   "--workers", "2"], timeout=900)
    assert res.returncode == 0 and "succeeded" in res.stdout + res.stderr, (res.stdout + res.stderr)[-3000:]
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["height"] == "64"
    latency = json.loads(meta["metrics"])["latency"]  # the Ray job ships its certificate like the CLI
    assert latency and 0 < latency["p50_ms"] <= latency["p99_ms"] and latency["samples_ms"]
    bench = json.loads((out / "bench.json").read_text())
    assert 0 < bench["p50_ms"] <= bench["p99_ms"]
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert 0.0 <= evaluation["full"]["accuracy"] <= 1.0 and 0.0 <= evaluation["half"]["accuracy"] <= 1.0
    assert (out / "latency.png").stat().st_size > 5000 and "p99 ms" in (out / "report.md").read_text()


# ---- planning in bounded memory (no cluster) ------------------------------------------------------
def _id_files(tmp_path: Path, ids_per_file: list[list[str | None]], row_group: int = 4):
    from nudistill.events import resolve_files

    d = tmp_path / "ids"
    d.mkdir()
    for k, ids in enumerate(ids_per_file):
        t = simulate_table(len(ids), res=16, seed=k).set_column(0, "event_id", pa.array(ids, pa.string()))
        pq.write_table(t, d / f"part-{k}.parquet", row_group_size=row_group)
    return resolve_files(str(d))


def test_row_hashes_are_ray_datas_and_name_their_file_and_row(tmp_path):
    from ray.data._internal.datasource_v2.common.synthesized_columns import _compute_row_hashes

    from nudistill.label.plan import Locator, row_hashes

    paths = [str(tmp_path / f"f{k}.parquet") for k in range(3)]
    for p in paths:
        np.testing.assert_array_equal(row_hashes(p, 5, 50), _compute_row_hashes(p, 5, 45))
    which, idx = Locator(paths, [100, 100, 100]).locate(np.concatenate([row_hashes(paths[2], 7, 9),
                                                                         row_hashes(paths[0], 100, 101)]))
    assert which.tolist() == [2, 2, -1] and idx[:2].tolist() == [7, 8]


def test_duplicate_rows_agree_with_a_dict_in_any_number_of_buckets(tmp_path, monkeypatch):
    from nudistill.label import plan as plan_mod
    from nudistill.label.plan import row_hashes

    ids = [["a", "b", "c", None, "a"], ["c", "d", None, "b", "e", "c"]]
    files = _id_files(tmp_path, ids)
    first: dict[str, int] = {}
    rows = []
    for path, file_ids in zip(files.paths, ids):
        for eid, row in zip(file_ids, row_hashes(path, 0, len(file_ids))):
            rows.append((eid, int(row)))
            if eid is not None:
                first[eid] = min(first.get(eid, int(row)), int(row))
    expected = sorted(r for eid, r in rows if eid is not None and first[eid] != r)
    for bucket_rows in (1_000_000, 3):
        monkeypatch.setattr(plan_mod, "BUCKET_ROWS", bucket_rows)
        assert plan_mod.duplicate_rows(files).tolist() == expected
    assert len(expected) == 4


def test_plan_skips_finished_files_unread_and_committed_row_groups(tmp_path):
    from nudistill.label.plan import Locator, plan, row_hashes
    from nudistill.labels import error_rows

    files = _id_files(tmp_path, [[f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)]])
    out = OutputDir(str(tmp_path / "labels"))
    out.claim("t", {})
    p = plan(files, out)
    assert (p.n_in, p.committed, p.rows_to_read, len(p.units)) == (20, 0, 20, 6)  # row groups of 4, 4, 2
    assert plan(files, out, max_events=13).rows_to_read == 13
    locator = Locator(files.paths, files.num_rows)
    a, b = files.paths
    commit = [(a, 0, 10), (b, 0, 5)]  # all of a; b's first row group and one row of its second
    for path, start, stop in commit:
        ids = [f"x{i}" for i in range(start, stop)]
        out.write_part(error_rows(ids, ["error: t"] * len(ids), "t", row_hashes(path, start, stop)), locator)
    assert len(out.parts()) == 2 and all(Path(x).name.count("-") == 2 for x in out.parts())
    p = plan(files, out)
    assert out.done_files() == {locator.keys[0]}
    assert (p.committed, p.rows_to_read) == (15, 6)
    assert [(Path(u["path"]).name, u["rg"]) for u in p.units] == [("part-1.parquet", 1), ("part-1.parquet", 2)]
    np.testing.assert_array_equal(p.done_rows, row_hashes(b, 4, 5))
    Path(a).write_bytes(b"gone")  # a finished file is not opened again
    assert plan(files, out).committed == 15


def test_prefilter_marks_the_same_duplicates_from_rows_or_from_a_dict():
    from nudistill.label.actor import ERROR, ROW, prefilter

    batch = simulate_table(4, res=16, seed=0).set_column(0, "event_id", pa.array(["a", "b", "a", "b"]))
    batch = batch.append_column(ROW, pa.array(np.array([5, 6, 7, 3], np.uint64)))
    empty = np.zeros(0, np.uint64)
    by_dict = prefilter(batch, empty, {"a": 5, "b": 3}).column(ERROR).is_valid().to_pylist()
    by_rows = prefilter(batch, empty, dup_rows=np.array([6, 7], np.uint64)).column(ERROR).is_valid().to_pylist()
    assert by_dict == by_rows == [False, True, True, False]


def test_prepare_pools_good_rows_per_size_and_passes_bad_rows_untouched():
    from nudistill.events import decode_views
    from nudistill.label.actor import ERROR, ROW, prefilter, prepare
    from nudistill.pooling import pool_views

    big, small = simulate_table(3, res=64, seed=1), simulate_table(2, res=32, seed=2, start=3)
    batch = pa.concat_tables([big.slice(0, 2), small.slice(0, 1), big.slice(2, 1), small.slice(1, 1)],
                             promote_options="permissive")
    batch = batch.set_column(batch.schema.get_field_index("yz"), "yz",  # row 3 breaks contract 1
                             pa.array([*batch.column("yz").to_pylist()[:3], b"short", batch.column("yz")[4].as_py()]))
    batch = prefilter(batch.append_column(ROW, pa.array(np.arange(5, dtype=np.uint64))), np.zeros(0, np.uint64), {})
    out = prepare(batch, 16)
    assert out.schema == batch.schema and out.column(ROW).to_pylist() == [0, 1, 2, 3, 4]
    assert out.slice(3, 1).equals(batch.slice(3, 1))  # the bad row as it came, still marked
    assert out.column(ERROR).is_valid().to_pylist() == [False, False, False, True, False]
    for rows, src in (([0, 1], [0, 1]), ([2, 4], [2, 4])):
        np.testing.assert_array_equal(decode_views(out.take(rows)), pool_views(decode_views(batch.take(src)), 16))
    assert out.column("height").to_pylist() == [16, 16, 16, 64, 16]


def test_read_units_streams_a_row_group_in_tables_of_at_most_max_rows(tmp_path):
    """A unit's rows come in tables of <= max_rows (each a Ray block): exactly rows [start, stop), with their hashes."""
    import pyarrow.fs as pafs

    from nudistill.label.plan import read_units, row_hashes

    files = _id_files(tmp_path, [[f"a{i}" for i in range(20)]], row_group=12)
    path = files.paths[0]
    units = pa.table({"path": [path, path], "rg": [0, 1], "start": [3, 12], "stop": [12, 20]})
    for max_rows, sizes in ((4, [1, 4, 4, 4, 4]), (0, [9, 8])):  # the first unit starts mid-batch: row 3 of 0..3
        tables = list(read_units(units, pafs.LocalFileSystem(), max_rows))
        assert [t.num_rows for t in tables] == sizes
        got = pa.concat_tables(tables)
        assert got.column("event_id").to_pylist() == [f"a{i}" for i in range(3, 20)]
        np.testing.assert_array_equal(got.column("row_hash").to_numpy(), row_hashes(path, 3, 20))


def test_write_events_bounds_row_groups_by_view_bytes(tmp_path, monkeypatch):
    from nudistill import events

    monkeypatch.setattr(events, "ROW_GROUP_BYTES", 10 * 2 * 16 * 16)  # ten 16x16 events per row group
    events.write_events(simulate_table(25, res=16, seed=0), tmp_path / "e.parquet")
    meta = pq.ParquetFile(tmp_path / "e.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [10, 10, 5]
    assert "PLAIN" in meta.row_group(0).column(1).encodings and not meta.row_group(0).column(1).has_dictionary_page
