"""Latency certificate of a shipped model: batch-1 p50/p99/max, batch-64 throughput, process RSS, CPU model.

Contract 3 promises it in every shipped model's ``metrics["latency"]``. Like :mod:`nudistill.online.scorer`
this module imports only numpy, onnxruntime and the standard library. :func:`certify` always measures in a
fresh Python process (``python -m nudistill.online.certify``), so the process measured is what an online
filter would run: no torch and no ray in memory, and their threads and arenas neither inflate the RSS nor
steal cores from the timed calls.

    from nudistill.online.latency import certify
    cert = certify("model.onnx", calls=1000)      # {"p50_ms", "p99_ms", ..., "samples_ms": [...]}

Inputs are synthetic sparse events (~1% of pixels lit as isolated hits, like the simulated ones, and six
straight tracks per view, one border to border): the convolutions are dense, so their time does not depend on
pixel values; the default student's cosmic tagger works per lit pixel, so it is timed with tracks to find.
The certificate keeps its batch-1 wall-time samples (``samples_ms``, rounded to 0.1 µs), so a histogram drawn
from them shows its own p50 and p99.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnxruntime as ort

from nudistill.errors import UserError
from nudistill.online.scorer import Scorer


def cpu_model() -> str:
    """The CPU model string (``model name`` of /proc/cpuinfo), with the number of usable cores."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name} ({cores} usable cores)"


def rss_mb() -> dict[str, float]:
    """Resident memory of this process now and at its peak, in MB (from /proc/self/status)."""
    out: dict[str, float] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        import resource
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def sparse_events(n: int, shape: tuple[int, int], seed: int = 0, occupancy: float = 0.01,
                  tracks: int = 6) -> np.ndarray:
    """(n, 2, H, W) uint8 synthetic events: ``tracks`` straight tracks per view, one of them border to border
    (a cosmic muon), over ``occupancy`` of the pixels lit as isolated hits with 1..255 ADC.

    Tracks, not isolated hits alone: a student's cosmic tagger does work per lit pixel that survives its
    isolated-hit filter, so events of noise alone would time it empty. Built sparsely, without float
    temporaries, so the harness does not inflate the RSS it reports.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    out = np.zeros((n, 2, h * w), np.uint8)
    k = max(1, int(occupancy * h * w))
    for view in out.reshape(2 * n, -1):
        view[rng.integers(0, view.size, k)] = rng.integers(1, 256, k, dtype=np.uint8)
        for t in range(tracks):
            if t == 0:  # border to border: from the top row to the bottom row
                (y0, x0), (y1, x1) = (0, rng.uniform(0, w - 1)), (h - 1, rng.uniform(0, w - 1))
            else:
                y0, x0 = rng.uniform(0, h - 1), rng.uniform(0, w - 1)
                length, angle = rng.uniform(0.05, 0.5) * max(h, w), rng.uniform(0, 2 * np.pi)
                y1, x1 = np.clip(y0 + length * np.sin(angle), 0, h - 1), np.clip(x0 + length * np.cos(angle), 0, w - 1)
            steps = int(max(abs(y1 - y0), abs(x1 - x0))) + 1
            ys = np.linspace(y0, y1, steps).round().astype(np.int64)
            xs = np.linspace(x0, x1, steps).round().astype(np.int64)
            view[ys * w + xs] = rng.integers(20, 256, dtype=np.uint8)
    return out.reshape(n, 2, *shape)


def batch1_latency_ms(scorer: Scorer, calls: int = 1000, warmup: int = 100, pool: int = 16
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Wall and CPU time in ms of ``calls`` single-event ``score`` calls after ``warmup``, cycling ``pool`` events.

    With one intra-op thread onnxruntime computes on the calling thread, so its CPU time is the compute
    cost alone; wall time above it is time spent waiting for a core (a shared machine).
    """
    events = sparse_events(pool, scorer.shape)  # (pool, 2, H, W)
    views = [(np.ascontiguousarray(e[0]), np.ascontiguousarray(e[1])) for e in events]
    for i in range(warmup):
        scorer.score(*views[i % pool])
    wall, cpu = np.empty(calls), np.empty(calls)
    for i in range(calls):
        t0, c0 = time.perf_counter(), time.thread_time()
        scorer.score(*views[i % pool])
        wall[i], cpu[i] = time.perf_counter() - t0, time.thread_time() - c0
    return wall * 1e3, cpu * 1e3


def throughput(scorer: Scorer, batch: int = 64, repeats: int = 10) -> float:
    """Events per second scoring batches of ``batch`` events (best of ``repeats``, after one warm-up)."""
    ev = sparse_events(batch, scorer.shape, seed=1)
    xz, yz = np.ascontiguousarray(ev[:, 0]), np.ascontiguousarray(ev[:, 1])
    scorer.score(xz, yz)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        scorer.score(xz, yz)
        best = min(best, time.perf_counter() - t0)
    return batch / best


def measure(path: str, calls: int = 1000, warmup: int = 100, threads: int = 1, batch: int = 64) -> dict:
    """Measure the certificate of the model at ``path`` in THIS process; :func:`certify` runs it in a clean one."""
    if calls < 1:
        raise ValueError(f"calls must be at least 1, got {calls}")
    t0 = time.perf_counter()
    scorer = Scorer(path, threads=threads)
    load_ms = (time.perf_counter() - t0) * 1e3
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    ms, cpu_ms = batch1_latency_ms(scorer, calls, warmup)
    cpu_share = (time.process_time() - t_cpu) / (time.perf_counter() - t_wall)
    online_rss = rss_mb()  # what a batch-1 filter holds: before the batch-64 run grows the arena
    cert = {
        "batch": 1, "threads": threads, "calls": calls, "warmup": warmup,
        "p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3), "mean_ms": round(float(ms.mean()), 3),
        "cpu_p50_ms": round(float(np.percentile(cpu_ms, 50)), 3),
        "cpu_p99_ms": round(float(np.percentile(cpu_ms, 99)), 3),
        "cpu_share": round(cpu_share, 2),  # < ~0.95: the core was shared, the wall-time tail is inflated
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "rss_mb": online_rss.get("rss_mb"), "peak_rss_batch1_mb": online_rss.get("peak_rss_mb"),
        f"throughput_b{batch}_events_per_s": round(throughput(scorer, batch), 1),
        f"peak_rss_after_b{batch}_mb": rss_mb().get("peak_rss_mb"),
        "load_ms": round(load_ms, 1), "loaded": os.path.basename(scorer.path),
        "height": scorer.shape[0], "width": scorer.shape[1], "student": scorer.contract["student"],
        "cpu": cpu_model(), "onnxruntime": ort.__version__, "python": platform.python_version(),
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "imports_torch": "torch" in sys.modules,
        "samples_ms": [round(float(v), 4) for v in ms],  # (calls,) batch-1 wall times, for the histogram
    }
    return cert


def certify(path: str | os.PathLike, calls: int = 1000, warmup: int = 100, threads: int = 1, batch: int = 64) -> dict:
    """The latency certificate of the model at ``path``, measured by :func:`measure` in a fresh Python process.

    The one way a certificate is made (export, ``nudistill bench``, the demo, ``bench/online.py``): a process
    that has imported torch or ray would report their memory and share cores with their threads.
    Raises UserError (one sentence) when the model cannot be measured.
    """
    request = {"path": str(path), "calls": int(calls), "warmup": int(warmup), "threads": int(threads),
               "batch": int(batch)}
    root = str(Path(__file__).resolve().parents[2])  # the same nudistill as this one, wherever the cwd is
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-m", "nudistill.online.certify", json.dumps(request)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise UserError(lines[-1].removeprefix("error: ") if lines else f"the latency benchmark of {path} failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])
