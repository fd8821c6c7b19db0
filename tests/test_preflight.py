"""Preflight of input files: a truncated file and a file of another schema are named before any row is read.

Every verb that reads events refuses in one sentence (exit 2, no traceback) naming both files, their
reasons and ``--skip-bad-files``; with the flag the readable files go on. Labelling with the flag, on
a real Ray, is tested in test_label.py.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from nudistill import events as ev
from nudistill.cli import main
from nudistill.errors import UserError
from nudistill.simulate import simulate_table

TRUNCATED, OTHER = "part-1.parquet", "part-2.parquet"


def write_bad_dir(path, n_good: int = 2, rows: int = 6):
    """``n_good`` good 32x32 files of ``rows`` events, then one truncated file and one without height/width."""
    path.mkdir(parents=True, exist_ok=True)
    table = simulate_table(rows * (n_good + 2), res=32, seed=3)
    names = [f"part-{k}.parquet" for k in (0, *range(3, n_good + 2))]
    for k, name in enumerate(names):
        pq.write_table(table.slice(k * rows, rows), path / name)
    pq.write_table(table.slice(n_good * rows, rows), path / TRUNCATED)
    data = (path / TRUNCATED).read_bytes()
    (path / TRUNCATED).write_bytes(data[: len(data) // 2])  # a copy cut short
    pq.write_table(table.slice((n_good + 1) * rows, rows).drop_columns(["height", "width"]), path / OTHER)
    return path


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    return write_bad_dir(tmp_path_factory.mktemp("bad") / "ev")


def _assert_refusal(text: str) -> None:
    assert TRUNCATED in text and "not a Parquet file (truncated?)" in text
    assert OTHER in text and "missing columns height, width" in text
    assert "2 of 4 file(s)" in text and "--skip-bad-files" in text


def test_refusal_names_every_bad_file_with_its_reason(bad_dir):
    with pytest.raises(UserError) as err:
        ev.resolve_dataset(bad_dir)
    _assert_refusal(str(err.value))
    with pytest.raises(UserError, match="2 of 4"):
        list(ev.iter_batches(bad_dir))


def test_skip_reads_the_rest_and_reports_what_it_left_out(bad_dir):
    files = ev.resolve_files(bad_dir, skip_bad_files=True)
    assert [p.rsplit("/", 1)[1] for p in files.paths] == ["part-0.parquet", "part-3.parquet"]
    assert files.num_rows == [6, 6]
    assert {r["path"].rsplit("/", 1)[1]: r["reason"] for r in files.skipped_records()} == {
        TRUNCATED: "not a Parquet file (truncated?)", OTHER: "missing columns height, width"}
    assert sum(b.num_rows for b in ev.iter_batches(bad_dir, skip_bad_files=True)) == 12
    assert ev.count_rows(bad_dir, skip_bad_files=True) == 12


def test_many_files_are_checked_in_parallel_and_only_a_few_are_named(tmp_path):
    d = write_bad_dir(tmp_path / "ev", n_good=10, rows=2)
    for name in ("part-20.parquet", "part-21.parquet"):
        (d / name).write_bytes(b"")
    with pytest.raises(UserError) as err:
        ev.resolve_dataset(d)
    text = str(err.value)
    assert "4 of 14 file(s)" in text and "and 1 more" in text and "an empty file" in text


def test_a_labels_directory_is_checked_for_its_own_columns(bad_dir, tmp_path):
    pq.write_table(simulate_table(2, res=32).select(["event_id", "label"]), tmp_path / "labels.parquet")
    assert ev.resolve_dataset(tmp_path, required=("event_id",), what="labels").count_rows() == 2
    with pytest.raises(UserError, match="cannot be read as events: .*missing columns xz, yz, height, width"):
        ev.resolve_dataset(tmp_path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny 32x32 student as a checkpoint and as a contract-3 ONNX file."""
    import torch

    from nudistill.export.pipeline import write_model
    from nudistill.student.checkpoint import save_student
    from nudistill.student.registry import create_student

    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = create_student("tiny_pool8", height=32, width=32)
    save_student(model, d / "student")
    write_model(model, d / "model.onnx", "test-teacher", {}, optimize=False)
    return d


@pytest.mark.slow
@pytest.mark.parametrize("verb", ["distill", "evaluate", "score", "robustness"])
def test_every_verb_refuses_in_one_sentence(verb, bad_dir, models, tmp_path, capsys):
    out = str(tmp_path / "out")
    argv = {
        "distill": ["distill", "--events", str(bad_dir), "--out", out, "--alpha", "0", "--hard-labels", "truth",
                    "--concept-source", "truth", "--epochs", "1"],
        "evaluate": ["evaluate", "--model", str(models / "student"), "--events", str(bad_dir), "--out", out],
        "score": ["score", str(models / "model.onnx"), str(bad_dir), "--out", out],
        "robustness": ["robustness", "--model", str(models / "model.onnx"), "--events", str(bad_dir), "--out", out],
    }[verb]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"nudistill {verb}: error: "), err
    _assert_refusal(lines[0])


@pytest.mark.slow
@pytest.mark.parametrize("verb", ["distill", "evaluate", "robustness"])
def test_with_the_flag_a_verb_goes_on_without_the_bad_files(verb, bad_dir, models, tmp_path, capsys):
    out = str(tmp_path / "out")
    argv = {
        "distill": ["distill", "--events", str(bad_dir), "--out", out, "--alpha", "0", "--hard-labels", "truth",
                    "--concept-source", "truth", "--epochs", "1", "--student", "tiny_pool8", "--device", "cpu"],
        "evaluate": ["evaluate", "--model", str(models / "student"), "--events", str(bad_dir), "--out", out],
        "robustness": ["robustness", "--model", str(models / "model.onnx"), "--events", str(bad_dir), "--out", out,
                       "--shifts", "nominal"],
    }[verb]
    assert main([*argv, "--skip-bad-files"]) == 0, capsys.readouterr().err


@pytest.mark.slow
def test_score_refuses_then_with_the_flag_scores_the_rest_and_lists_what_it_left_out(bad_dir, models, tmp_path,
                                                                                     capsys):
    import json

    out = tmp_path / "scores.parquet"
    argv = ["score", str(models / "model.onnx"), str(bad_dir), "--out", str(out)]
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nudistill score: error: ")
    _assert_refusal(lines[0])
    assert not out.exists()

    assert main([*argv, "--skip-bad-files"]) == 0
    said = capsys.readouterr().out
    assert "scored 12 of 12 events" in said and "2 bad input file(s) skipped" in said, said
    assert pq.read_table(out).column("event_id").to_pylist() == pq.read_table(
        [bad_dir / "part-0.parquet", bad_dir / "part-3.parquet"]).column("event_id").to_pylist()
    summary = json.loads((tmp_path / "_scores.summary.json").read_text())
    assert {r["path"].rsplit("/", 1)[1]: r["reason"] for r in summary["files_skipped"]} == {
        TRUNCATED: "not a Parquet file (truncated?)", OTHER: "missing columns height, width"}
    assert json.loads((tmp_path / "_scores.config.json").read_text())["skip_bad_files"] is True
