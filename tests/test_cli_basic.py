"""The CLI front door: help for every option, one clear sentence and exit 2 on bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nudistill.cli import main


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nudistill", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("verb", ["simulate", "show", "label", "demo", "report"])
def test_help_explains_every_option(verb):
    res = _run(verb, "--help")
    assert res.returncode == 0
    assert res.stdout.startswith("usage: nudistill")
    for line in res.stdout.split("options:")[1].splitlines():
        if line.strip().startswith("--") and "  " in line.strip():
            assert len(line.strip().split("  ", 1)[1].strip()) > 5  # a real explanation beside the flag


@pytest.mark.parametrize("args, words", [
    (["simulate", "--n", "-3", "--out", "x"], "must be positive"),
    (["simulate", "--n", "ten", "--out", "x"], "not a whole number"),
    (["simulate", "--cc-fraction", "2", "--out", "x"], "between 0 and 1"),
    (["show", "/nonexistent/events"], "does not exist"),
    (["label", "--events", "x", "--teacher", "t", "--out", "o", "--replicas", "0"], "--replicas must be at least 1"),
    (["label", "--events", "x", "--teacher", "t", "--out", "o", "--rationale", "some"], "rationale policy"),
    (["demo", "--events", "0"], "--events must be at least 1"),
    (["distill", "--out", "o"], "--events is required"),
    (["distill", "--events", "e", "--labels", "l", "--out", "o", "--detector-prob", "1.5"], "--detector-prob must lie between 0 and 1"),
    (["demo", "--robustness-events", "0"], "--robustness-events must be at least 1"),
    (["demo", "--student-alpha", "1.5"], "--student-alpha must lie between 0 and 1"),
    (["simulate", "--config", "/nonexistent/config.json"], "--config /nonexistent/config.json: cannot read it"),
    (["report", "/nonexistent/run"], "no evaluate/predictions.npz"),
])
def test_bad_arguments_give_one_sentence_and_nonzero_exit(args, words):
    res = _run(*args)
    assert res.returncode == 2
    assert words in res.stderr
    assert "Traceback" not in res.stderr


def test_simulate_then_show(tmp_path):
    assert main(["simulate", "--n", "6", "--res", "64", "--out", str(tmp_path / "ev")]) == 0
    assert main(["show", str(tmp_path / "ev"), "--n", "4", "--out", str(tmp_path / "ev.png")]) == 0
    png = (tmp_path / "ev.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
