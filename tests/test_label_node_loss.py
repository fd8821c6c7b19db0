"""A lost node: labelling on a real two-node Ray cluster on this machine, the second node's raylet killed mid-run.

Both nodes offer one ``teacher_slot`` and each replica reserves one (``--resources-per-replica``), so one
teacher replica runs on each node. The raylet of the second node is killed while its replica is inside
a batch and some parts are committed. Either the job finishes on the head (Ray restarts the lost
replica there once the head's slot is free and retries its batches) or it stops with the resume
sentence and a rerun finishes it; either way every event is in the output exactly once and
summary.json reconciles. The driver runs on the head, as a submitted job's driver does.
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from nudistill.label.outdir import OutputDir
from nudistill.simulate import SimConfig, write_dataset
from test_label import BIN, _env, _free_port, _label_cli, _stop_own_ray

pytestmark = [pytest.mark.ray, pytest.mark.slow]
SLOT = "teacher_slot"
N_EVENTS = 512  # 32 batches a replica: the second node's replica is caught inside one even when it starts last
FAST_DEATH = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "3000"}
"""The head declares a silent node dead after ~5 s instead of ~15 s (5 missed checks either way)."""


def _start_node(temp: str, *args: str, env: dict) -> None:
    """`ray start` on 127.0.0.1 with its own temp dir and free ports (other clusters may share this machine)."""
    ports = {flag: _free_port() for flag in ("--node-manager-port", "--object-manager-port", "--metrics-export-port",
                                             "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                                             "--runtime-env-agent-port")}
    subprocess.run([BIN / "ray", "start", "--node-ip-address=127.0.0.1", f"--temp-dir={temp}",
                    "--object-store-memory=200000000", f"--resources={json.dumps({SLOT: 1})}", "--disable-usage-stats",
                    *(f"{flag}={port}" for flag, port in ports.items()), *args],
                   check=True, env=env, capture_output=True, timeout=180)


@pytest.fixture
def two_nodes():
    """A head (2 CPUs) and a second node (1 CPU), one teacher slot each; yields (gcs address, second temp dir)."""
    head, second = (tempfile.mkdtemp(prefix=p, dir="/tmp") for p in ("rh", "rw"))  # short: socket path limit
    port = _free_port()
    try:
        _start_node(head, "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                    f"--dashboard-port={_free_port()}", env=_env(**FAST_DEATH))
        _start_node(second, f"--address=127.0.0.1:{port}", "--num-cpus=1", env=_env())
        yield f"127.0.0.1:{port}", second
    finally:
        _stop_own_ray(second, head)
        subprocess.run(["rm", "-rf", second, head])


def _raylet(temp: str):
    import psutil

    return next(p for p in psutil.process_iter(["cmdline"])
                if temp in " ".join(p.info["cmdline"] or []) and "raylet/raylet" in (p.info["cmdline"] or [""])[0])


def _replica_busy(raylet) -> bool:
    """True while a teacher replica under ``raylet`` runs a batch (Ray titles the process ``...).submit``)."""
    import psutil

    for proc in raylet.children(recursive=True):
        try:
            title = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "LabelActor" in title and title.rstrip().endswith(".submit"):
            return True
    return False


def test_a_lost_node_loses_no_event_and_labels_none_twice(two_nodes, tmp_path, monkeypatch):
    from nudistill.teacher.tiny import build_tiny_teacher

    # Ray Data hands out batches before every replica is up; on a busy machine the head's replica labelled all
    # 512 events while the second node's was still starting. Both replicas up first (Ray Data's own knob).
    monkeypatch.setenv("RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S", "300")

    address, second = two_nodes
    build_tiny_teacher(tmp_path / "teacher")
    events, out = tmp_path / "ev", tmp_path / "labels"
    write_dataset(SimConfig(n=N_EVENTS, res=64, seed=11, rows_per_file=64), events, progress_bar=False)
    args = ("--resources-per-replica", f"{SLOT}=1", "--batch-size", "8", "--rationale", "all",
            "--no-progress-timeout", "60")  # every event explained: a batch takes long enough to be caught inside
    t0 = time.time()
    proc = _label_cli(events, tmp_path / "teacher", out, address, "--replicas", "2", *args, wait=False)
    raylet, committed, deadline = _raylet(second), 0, time.time() + 300
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        if OutputDir(str(out)).has_parts() and _replica_busy(raylet):
            committed = len(OutputDir(str(out)).committed_rows())
            raylet.send_signal(signal.SIGKILL)  # the second node is gone, its replica with it
            break
        time.sleep(0.1)
    assert 0 < committed < N_EVENTS, f"the second node was not killed mid-run ({committed} committed)"
    output, _ = proc.communicate(timeout=300)
    if proc.returncode == 0:
        outcome = "finished on the head"
    else:  # Ray gave up: one sentence, then a rerun on the head alone
        last = output.strip().splitlines()[-1]
        assert proc.returncode == 2 and "rerun the same command to resume" in last, output[-3000:]
        _label_cli(events, tmp_path / "teacher", out, address, "--replicas", "1", *args)
        outcome = f"stopped ({last}), rerun"
    print(f"node loss: {committed} of {N_EVENTS} committed at the kill; {outcome}; {time.time() - t0:.1f} s")

    table = pq.read_table(sorted(out.glob("part-*.parquet")), columns=["event_id", "status"])
    counts = Counter(table.column("event_id").to_pylist())
    assert counts == Counter(pq.read_table(events, columns=["event_id"]).column("event_id").to_pylist())
    assert set(counts.values()) == {1} and set(table.column("status").to_pylist()) == {"ok"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events_in"] == summary["rows_out"] == summary["ok"] + summary["errors"] == N_EVENTS
    assert summary["missing"] == summary["duplicates"] == 0


def test_a_run_ray_gives_up_on_ends_in_the_resume_sentence():
    from ray.data.exceptions import ExecutionTimeoutError
    from ray.exceptions import NodeDiedError

    from nudistill.label.pipeline import STOPPED, stopped
    from nudistill.label.plan import Plan

    timeout = ExecutionTimeoutError("Dataset execution made no progress for at least 60s of scheduling time "
                                    "(timeout: 60s). No output was taken.\nOperators still running: ...")
    assert isinstance(timeout, STOPPED) and isinstance(NodeDiedError("node gone"), STOPPED)
    assert str(stopped(timeout, Plan(n_in=256, committed=96))) == (
        "the run stopped before it finished (ExecutionTimeoutError: Dataset execution made no progress for at "
        "least 60s of scheduling time (timeout: 60s)); 96 of 256 events are committed; rerun the same command "
        "to resume (finished work is kept)")
