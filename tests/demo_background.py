"""The quick demo of tests/test_demo.py, run beside the rest of the suite.

The demo is one long subprocess (4-7 min at ~1.3 cores on the 2-core CI machine) while most of the rest of
the suite waits on Ray clusters and subprocesses starting. Run one after the other they took 18 min on a
slow day. conftest starts this driver as soon as collection ends, when a test of test_demo.py is selected,
and runs those tests last; their ``demo_run`` fixture waits for it.

The driver interrupts a quick demo inside the teacher stage (SIGKILL of its process group), then reruns it
to the end; what the tests check about that is recorded here and asserted in the fixture.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

SIMULATE_DEADLINE_S = 600  # the quick demo's simulate stage takes ~20 s alone, ~60 s on a slow, busy machine
RERUN_TIMEOUT_S = 1500  # the rerun took 250-420 s alone


def demo_process(run: Path) -> subprocess.Popen:
    """``nudistill demo --quick --out RUN`` in its own process group, output captured."""
    env = dict(os.environ, NUDISTILL_NO_PROGRESS="1", RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)  # the demo starts its own embedded Ray
    return subprocess.Popen([sys.executable, "-m", "nudistill", "demo", "--quick", "--out", str(run)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


@dataclass
class DemoOutcome:
    """What the interrupted demo and its rerun did."""

    run: Path
    killed_inside_teacher: bool = False
    """The kill came after simulate finished and before the teacher stage did."""
    simulate_untouched: bool = False
    """The rerun left simulate's done-file as the first run wrote it."""
    returncode: int | None = None
    """The rerun's exit status."""
    output: str = ""
    """The rerun's stdout and stderr."""
    error: str = ""
    """Why the driver stopped early (a dead first run, a timeout, an exception), else empty."""


class BackgroundDemo:
    """Drives the interrupted-and-rerun quick demo on a thread; ``outcome()`` waits for it."""

    def __init__(self, run: Path):
        self.result = DemoOutcome(run)
        self._procs: list[subprocess.Popen] = []
        self._thread = threading.Thread(target=self._drive, name="quick-demo", daemon=True)

    def start(self) -> "BackgroundDemo":
        self._thread.start()
        return self

    def outcome(self, timeout: float = RERUN_TIMEOUT_S + SIMULATE_DEADLINE_S) -> DemoOutcome:
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.stop()
            self.result.error = self.result.error or f"the quick demo did not finish within {timeout} s"
        return self.result

    def stop(self) -> None:
        """Kill whatever demo process is still running (the end of the session, a timeout)."""
        for proc in self._procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)

    def _drive(self) -> None:
        res, run = self.result, self.result.run
        try:
            proc = demo_process(run)
            self._procs.append(proc)
            deadline = time.time() + SIMULATE_DEADLINE_S
            while time.time() < deadline and not (run / "simulate" / "_done.json").is_file():
                if proc.poll() is not None:
                    res.error = "the first demo run ended before simulate finished:\n" + proc.stdout.read()[-3000:]
                    return
                time.sleep(0.5)
            time.sleep(3)  # inside the teacher stage now
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            res.killed_inside_teacher = ((run / "simulate" / "_done.json").is_file()
                                         and not (run / "teacher" / "_done.json").is_file())
            stamp = (run / "simulate" / "_done.json").stat().st_mtime_ns
            rerun = demo_process(run)
            self._procs.append(rerun)
            res.output, _ = rerun.communicate(timeout=RERUN_TIMEOUT_S)
            res.returncode = rerun.returncode
            res.simulate_untouched = (run / "simulate" / "_done.json").stat().st_mtime_ns == stamp
        except Exception:  # noqa: BLE001 - reported by the fixture, not lost on a thread
            res.error = traceback.format_exc()
            self.stop()


DEMO_KEY = pytest.StashKey[BackgroundDemo]()
"""Where conftest keeps the session's background demo (``config.stash``)."""
