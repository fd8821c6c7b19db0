"""One config per stage: the CLI's options are the dataclass's fields, and every entry point runs the same code.

The first test walks every verb (and teacher sub-verb) of ``nudistill`` and checks that each option's
default and choices are its config field's; the second runs one distill config through the CLI and through
``ray_jobs/distill_and_export.py`` (one Ray Train worker on a real local Ray) and gets the same weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

from nudistill.cli import build_parser
from nudistill.cli.dataclass_args import field_default

REPO = Path(__file__).resolve().parents[1]
CLI_ONLY = {"help", "config", "list_shifts"}  # options that are no config field: --help, --config, --list-shifts
STAGES = {"simulate", "show", "label", "distill", "evaluate", "robustness", "export", "bench", "score", "report", "demo",
          "teacher init", "teacher finetune", "teacher calibrate", "teacher eval"}


def _verb_parsers(parser: argparse.ArgumentParser, prefix: str = ""):
    """(verb path, parser) for every leaf verb, its options filled in."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix.strip(), parser
        return
    for name, sub in subs[0].choices.items():
        sub._filled()
        yield from _verb_parsers(sub, f"{prefix} {name}")


def _choices(cls, f: dataclasses.Field):
    hint = typing.get_type_hints(cls)[f.name]
    literal = [a for a in (hint, *typing.get_args(hint)) if typing.get_origin(a) is typing.Literal]
    given = getattr(cls, "CHOICES", {}).get(f.name) or (typing.get_args(literal[0]) if literal else None)
    return None if given is None else tuple(given)


def test_every_stage_cli_takes_its_defaults_and_choices_from_its_config():
    seen = set()
    for verb, parser in _verb_parsers(build_parser()):
        cls = parser.get_default("_config_cls")
        if cls is None:
            continue
        seen.add(verb)
        actions: dict[str, argparse.Action] = {}
        for action in parser._actions:  # the generated option first; a short alias (--full) shares its dest
            actions.setdefault(action.dest, action)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        assert set(actions) - CLI_ONLY - set(fields) == set(), f"{verb}: options that are no {cls.__name__} field"
        for name, f in fields.items():
            assert name in actions, f"{verb}: {cls.__name__}.{name} has no option"
            default = field_default(f)
            expected = None if default is dataclasses.MISSING else default
            got = actions[name].default if actions[name].default is not None else parser.get_default(name)
            assert got == expected, f"{verb} {name}: CLI default {got!r}, config default {expected!r}"
            want = _choices(cls, f)
            got_choices = None if actions[name].choices is None else tuple(actions[name].choices)
            assert got_choices == want, f"{verb} {name}: CLI choices {got_choices}, config choices {want}"
            assert actions[name].help and len(actions[name].help) > 10, f"{verb} {name}: no help"
    assert STAGES <= seen, f"stages without a config-built CLI: {sorted(STAGES - seen)}"


def test_a_saved_config_reruns_with_flags_overriding_it(tmp_path):
    from nudistill.cli import main

    assert main(["simulate", "--n", "3", "--res", "32", "--seed", "4", "--out", str(tmp_path / "a")]) == 0
    saved = tmp_path / "a" / "_simulate.json"
    assert main(["simulate", "--config", str(saved), "--out", str(tmp_path / "b")]) == 0
    a, b = json.loads(saved.read_text()), json.loads((tmp_path / "b" / "_simulate.json").read_text())
    assert b == a | {"out": str(tmp_path / "b")}


@dataclasses.dataclass
class _Toy:
    """Every kind of field the generator knows."""

    name: str
    """A required string."""
    mode: typing.Literal["a", "b"] = "a"
    """A choice from a Literal."""
    tags: list[str] = dataclasses.field(default_factory=lambda: ["x"])
    """Comma-separated names."""
    extra: dict = dataclasses.field(default_factory=dict)
    """KEY=VALUE pairs."""
    fast: bool = True
    """An on/off switch."""
    limit: int | None = None
    """An optional whole number."""


def test_generated_options_convert_every_kind_of_field(tmp_path, capsys):
    from nudistill.cli.dataclass_args import add_dataclass_arguments, config_from_args, parse_args
    from nudistill.errors import UserError

    parser = add_dataclass_arguments(argparse.ArgumentParser(), _Toy)
    argv = ["--name", "n", "--mode", "b", "--tags", "p, q", "--extra", "k=1.5", "--extra", "s=text", "--no-fast",
            "--limit", "7"]
    cfg = config_from_args(_Toy, parse_args(parser, argv))
    assert cfg == _Toy("n", "b", ["p", "q"], {"k": 1.5, "s": "text"}, False, 7)
    assert config_from_args(_Toy, parse_args(parser, ["--name", "n"])) == _Toy("n")  # defaults untouched
    (tmp_path / "c.json").write_text(json.dumps(dataclasses.asdict(cfg) | {"derived": 1}))
    assert config_from_args(_Toy, parse_args(parser, ["--config", str(tmp_path / "c.json"), "--fast"])) == \
        dataclasses.replace(cfg, fast=True)
    with pytest.raises(UserError, match="--name is required"):
        config_from_args(_Toy, parse_args(parser, []))
    with pytest.raises(SystemExit):
        parser.parse_args(["--name", "n", "--limit", "seven"])
    assert "'seven' is not a whole number" in capsys.readouterr().err


def _printed_config(stdout: str) -> dict:
    line = next(x for x in stdout.splitlines() if x.startswith("distill config: "))
    return json.loads(line.removeprefix("distill config: "))


@pytest.mark.slow
@pytest.mark.ray
def test_cli_and_ray_job_train_the_same_checkpoint(tmp_path):
    """One Ray Train worker and a one-process run give the same weights for the same config.

    ``--threads 1`` on both sides: a Ray Train worker has one CPU reserved and uses one thread, and
    float sums over another thread count differ in their last bits.
    """
    from safetensors.numpy import load_file

    from nudistill.simulate import SimConfig, write_dataset

    write_dataset(SimConfig(n=256, res=64, seed=6, rows_per_file=256), tmp_path / "ev", progress_bar=False)
    common = ["--events", str(tmp_path / "ev"), "--alpha", "0", "--hard-labels", "truth", "--concept-source", "truth",
              "--epochs", "1", "--max-steps-per-epoch", "3", "--threads", "1"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {
        "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "NUDISTILL_NO_PROGRESS": "1",
        "PYTHONPATH": str(REPO)}
    cli = subprocess.run([sys.executable, "-m", "nudistill", "distill", *common, "--out", str(tmp_path / "cli")],
                         capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert cli.returncode == 0, cli.stderr[-3000:]
    job = subprocess.run([sys.executable, "ray_jobs/distill_and_export.py", *common, "--out", str(tmp_path / "job")],
                         capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert job.returncode == 0, (job.stdout + job.stderr)[-3000:]
    assert _printed_config(cli.stdout) | {"out": ""} == _printed_config(job.stdout) | {"out": ""}
    a, b = load_file(tmp_path / "cli" / "model.safetensors"), load_file(tmp_path / "job" / "model.safetensors")
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-6, err_msg=name)
    assert (tmp_path / "job" / "model.onnx").is_file()


def test_demo_names_the_settings_a_finished_stage_ran_with_when_they_changed():
    from nudistill.demo.runner import changed_settings

    now = {"out": "runs/b", "student_epochs": 8, "student_alpha": 0.5, "seed": 0}
    assert changed_settings({"out": "runs/a", "student_epochs": 8, "student_alpha": 0.5, "seed": 0}, now) == ""
    assert changed_settings({"out": "runs/a", "student_epochs": 10, "seed": 0}, now) == \
        "student_epochs 10 (now 8), student_alpha unset (now 0.5)"
