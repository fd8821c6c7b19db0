"""The robustness suite: each shift does what its name claims, and `nudistill robustness` reports what it scored."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.special import ndtr

from nudistill import CLASSES
from nudistill import detector as det
from nudistill.cli import main
from nudistill.errors import UserError
from nudistill.events import encode_views
from nudistill.robustness import resolve_shifts
from nudistill.shifts import SUITE, apply_shift, cosmics, dead_channels, noise_hits, noise_rms

EMPTY = np.zeros((2, 256, 256), np.uint8)


# ---- the shifts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [1e-3, 1e-2])
def test_noise_hits_lights_the_named_fraction_of_empty_pixels(fraction):
    occupancy = (noise_hits(fraction)(EMPTY, np.random.default_rng(1)) > 0).mean()
    sigma = np.sqrt(fraction / EMPTY.size)  # binomial spread of the occupancy
    assert abs(occupancy - fraction) < 5 * sigma + 0.01 * fraction


@pytest.mark.parametrize("rms, threshold", [(2.0, 4.0), (4.0, 8.0), (3.0, 5.0)])
def test_noise_rms_on_empty_views_keeps_the_gaussian_tail(rms, threshold):
    """Only noise above threshold survives zero suppression: occupancy P(N(0, rms) >= threshold)."""
    out = noise_rms(rms, threshold)(EMPTY, np.random.default_rng(2))
    tail = float(ndtr(-threshold / rms))
    # 5 % relative: the binomial spread is ~2 %, and the sparse sampler places its hits with replacement,
    # which loses ~tail/2 of them (-1.5 % at a 2.3 % tail).
    assert abs((out > 0).mean() - tail) < 0.05 * tail
    assert out[out > 0].min() >= np.floor(threshold)


@pytest.mark.parametrize("axis", [-1, -2])
def test_kill_channels_zeroes_exactly_the_lines_it_returns(axis):
    adc = np.full((2, 60, 48), 50.0, np.float32)
    out, lines = det.kill_channels(adc, 0.15, np.random.default_rng(3), axis=axis)
    for v in range(2):
        assert len(lines[v]) == round(0.15 * adc.shape[axis])
        dead = np.zeros(adc.shape[axis], bool)
        dead[lines[v]] = True
        view = out[v] if axis == -2 else out[v].T  # (lines, samples)
        assert (view[dead] == 0).all() and (view[~dead] == 50).all()


def test_dead_channels_shift_zeroes_whole_columns_at_its_fraction():
    views = np.full((2, 60, 48), 80, np.uint8)
    out = dead_channels(0.15)(views, np.random.default_rng(4))
    for v in range(2):
        dead = (out[v] == 0).all(0)
        assert dead.sum() == round(0.15 * 48)
        assert (out[v][:, ~dead] == 80).all()


def test_cosmics_cross_the_volume_to_the_frame_edges():
    """Each muon enters and leaves the 3-D volume, so its two ends lie on the border of some view."""
    empty = np.zeros((2, 96, 80), np.uint8)
    for seed in range(30):
        out = cosmics(1)(empty, np.random.default_rng(seed))
        lit = out > 0
        edges = [int(e.any()) for v in range(2) for e in (lit[v, :2], lit[v, -2:], lit[v, :, :2], lit[v, :, -2:])]
        assert sum(edges) >= 2, seed  # (view, edge) pairs touched: one per end of the muon at least


@pytest.fixture(scope="module")
def events_60x48(sim_table_64):
    from nudistill.events import decode_views

    return decode_views(sim_table_64.slice(0, 4))[..., :60, :48].copy()  # non-square crop of real events


@pytest.mark.parametrize("name", list(SUITE))
def test_every_shift_keeps_shape_and_dtype_and_is_seeded(name, events_60x48):
    a = apply_shift(SUITE[name], events_60x48, seed=7)
    assert a.shape == events_60x48.shape and a.dtype == np.uint8
    assert np.array_equal(a, apply_shift(SUITE[name], events_60x48, seed=7))  # same seed, same bytes


def test_shift_names_resolve_with_nominal_first():
    assert resolve_shifts(["gain x2"]) == ["nominal", "gain x2"]
    assert resolve_shifts(["noise_hits", "nominal"]) == ["nominal", "noise_hits 0.1%", "noise_hits 0.3%", "noise_hits 1%"]
    with pytest.raises(UserError, match="unknown shift.*'gain x3'"):
        resolve_shifts(["gain x3"])


# ---- reading ---------------------------------------------------------------------------------------


def test_read_labelled_keeps_one_resolution_and_counts_what_it_leaves(tmp_path, sim_table_64):
    from nudistill.events import Validator, decode_views, read_labelled

    small = sim_table_64.slice(5, 3).drop_columns(["xz", "yz", "height", "width"])
    for name, col in encode_views(decode_views(sim_table_64.slice(5, 3))[..., :32, :32]).items():
        small = small.append_column(name, col)
    table = pa.concat_tables([sim_table_64.slice(0, 5), small.select(sim_table_64.schema.names)])
    labels = table.column("label").to_pylist()
    labels[1] = None  # contract 1 allows a null label: not an error, only not usable here
    table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels, pa.string()))
    assert Validator()(table)[0].all()
    pq.write_table(table, tmp_path / "mixed.parquet")
    data = read_labelled(tmp_path / "mixed.parquet", extra=("concepts", "missing"))
    assert data.views.shape == (4, 2, 64, 64) and data.skipped == {"no_label": 1, "other_shape": 3}
    assert [r["event_id"] for r in data.rows] == [table.column("event_id")[i].as_py() for i in (0, 2, 3, 4)]
    assert set(data.rows[0]) == {"event_id", "label", "concepts"}


# ---- the verb --------------------------------------------------------------------------------------

SHIFTS = ["nominal", "gain x2", "dead_channels 15%", "cosmics 1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, sim_table_64):
    """40 valid labelled events without concepts/rationale, 3 bad rows, a tiny student as checkpoint and ONNX."""
    import torch

    from nudistill.export.pipeline import write_model
    from nudistill.student.checkpoint import save_student
    from nudistill.student.registry import create_student

    torch.set_num_threads(1)  # two threads on a shared 2-core machine spin-wait ~100x slower
    d = tmp_path_factory.mktemp("robustness")
    table = sim_table_64.slice(0, 43).drop_columns(["concepts", "rationale"])
    labels = table.column("label").to_pylist()
    labels[40] = None  # unlabelled: left out, counted
    xz = table.column("xz").to_pylist()
    xz[41] = xz[41][:-1]  # wrong byte count: breaks contract 1
    ids = table.column("event_id").to_pylist()
    ids[42] = ids[0]  # duplicate id
    table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels, pa.string()))
    table = table.set_column(table.schema.get_field_index("xz"), "xz", pa.array(xz, pa.binary()))
    table = table.set_column(table.schema.get_field_index("event_id"), "event_id", pa.array(ids, pa.string()))
    pq.write_table(table, d / "events.parquet")
    torch.manual_seed(0)
    model = create_student("tiny_pool8", height=64, width=64)
    save_student(model, d / "student")
    write_model(model, d / "model.onnx", "test-teacher", {}, optimize=False)
    return d, model


def _verb(d, model, out, *extra) -> dict:
    assert main(["robustness", "--model", str(model), "--events", str(d / "events.parquet"), "--out", str(out),
                 "--shifts", ",".join(SHIFTS[1:]), *extra]) == 0
    return json.loads((out / "robustness.json").read_text())


def _check_rows(result: dict, n: int) -> None:
    assert [r["shift"] for r in result["shifts"]] == SHIFTS
    for r in result["shifts"]:
        conf = np.array(r["confusion"])
        assert conf.sum() == r["n"] == n
        assert 0.0 <= r["accuracy"] <= 1.0 and r["accuracy"] == pytest.approx(np.trace(conf) / n)
        assert r["predicted"] == {c: int(conf[:, k].sum()) for k, c in enumerate(CLASSES)}
        assert sum(r["predicted"].values()) == n
        for k, c in enumerate(CLASSES):
            support = conf[k].sum()
            assert r["recall"][c] == (pytest.approx(conf[k, k] / support) if support else None)
        assert r["min_recall"] == min(v for v in r["recall"].values() if v is not None)
        assert r["delta_accuracy"] == (None if r["shift"] == "nominal"
                                       else pytest.approx(r["accuracy"] - result["shifts"][0]["accuracy"]))


@pytest.fixture(scope="module")
def student_result(tiny) -> dict:
    d, _ = tiny
    return _verb(d, d / "student", d / "out_student")


def test_verb_on_a_checkpoint_reports_what_it_scored(tiny, student_result, sim_table_64):
    import torch

    d, model = tiny
    result = student_result
    assert result["model"]["kind"] == "student" and result["model"]["input"] == [64, 64]
    assert result["n_events"] == 40 and result["events"]["skipped"] == {"no_label": 1, "byte_count": 1, "duplicate_id": 1}
    _check_rows(result, 40)
    # recompute: the same shift bytes through the same model give the same accuracy
    from nudistill.events import decode_views

    views = decode_views(sim_table_64.slice(0, 40))
    y = np.array([CLASSES.index(x) for x in sim_table_64.slice(0, 40).column("label").to_pylist()])
    assert result["events"]["truth"] == {c: int((y == k).sum()) for k, c in enumerate(CLASSES)}
    for row in result["shifts"]:
        v = torch.from_numpy(apply_shift(SUITE[row["shift"]], views, seed=0))
        with torch.no_grad():
            pred = model(v[:, 0], v[:, 1])[0].argmax(1).numpy()
        assert row["accuracy"] == pytest.approx((pred == y).mean())
    md = (d / "out_student" / "robustness.md").read_text()
    assert "| shift | accuracy | Δ vs nominal | macro AUC | min class recall | predicted nue_cc |" in md
    assert "| dead_channels 15% |" in md
    assert json.loads((d / "out_student" / "robustness_config.json").read_text())["shifts"] == SHIFTS


def test_verb_on_onnx_matches_the_checkpoint(tiny, student_result, capsys):
    d, _ = tiny
    onnx = _verb(d, d / "model.onnx", d / "out_onnx", "--threads", "1")
    ckpt = student_result
    assert "| shift | accuracy" in capsys.readouterr().out  # the table is printed too
    assert onnx["model"]["kind"] == "onnx" and onnx["model"]["name"] == "tiny_pool8"
    _check_rows(onnx, 40)
    for a, b in zip(onnx["shifts"], ckpt["shifts"]):  # the same bytes for both: argmax ties aside, the same counts
        assert abs(a["accuracy"] - b["accuracy"]) <= 1 / 40


def test_verb_at_a_non_square_size_and_a_wrong_size(tmp_path, sim_table_64, capsys):
    from nudistill.events import decode_views
    from nudistill.student.checkpoint import save_student
    from nudistill.student.registry import create_student

    table = sim_table_64.slice(0, 12)
    cols = encode_views(decode_views(table)[..., :48])  # 64x48: z (columns) cut short
    table = table.drop_columns(["xz", "yz", "height", "width", "concepts", "rationale"])
    for name, col in cols.items():
        table = table.append_column(name, col)
    pq.write_table(table, tmp_path / "ev.parquet")
    save_student(create_student("tiny_pool8", height=64, width=48), tmp_path / "s48")
    save_student(create_student("tiny_pool8", height=64, width=64), tmp_path / "s64")
    args = ["robustness", "--events", str(tmp_path / "ev.parquet"), "--shifts", "shift 6 px,half_resolution",
            "--threads", "1"]
    assert main([*args, "--model", str(tmp_path / "s48"), "--out", str(tmp_path / "o48")]) == 0
    result = json.loads((tmp_path / "o48" / "robustness.json").read_text())
    assert (result["events"]["height"], result["events"]["width"]) == (64, 48) and result["n_events"] == 12
    capsys.readouterr()
    assert main([*args, "--model", str(tmp_path / "s64"), "--out", str(tmp_path / "o64")]) == 2
    err = capsys.readouterr().err
    assert "are 64x48 but the student model takes 64x64" in err and err.count("\n") == 1


def test_bad_shift_name_is_one_sentence_and_exit_2(tmp_path):
    res = subprocess.run([sys.executable, "-m", "nudistill", "robustness", "--model", str(tmp_path), "--events",
                          str(tmp_path), "--out", str(tmp_path / "o"), "--shifts", "gain x2,gain x9"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "unknown shift(s) 'gain x9'; choose from 'nominal'," in res.stderr and res.stderr.count("\n") == 1


def test_help_explains_every_option_and_lists_the_suite():
    res = subprocess.run([sys.executable, "-m", "nudistill", "robustness", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0
    for flag in ("--model", "--events", "--out", "--shifts", "--limit", "--seed", "--batch-size", "--threads",
                 "--list-shifts"):
        assert flag in res.stdout
    assert main(["robustness", "--list-shifts"]) == 0


@pytest.mark.slow
def test_verb_on_a_tiny_teacher(tmp_path, tiny):
    from nudistill.teacher.tiny import TinyConfig, build_tiny_teacher

    d, _ = tiny
    teacher = build_tiny_teacher(tmp_path / "teacher", TinyConfig(seed=0))
    result = _verb(d, teacher, tmp_path / "out", "--limit", "12", "--threads", "1")
    assert result["model"]["kind"] == "teacher" and result["model"]["input"] is None
    _check_rows(result, 12)


def test_report_adds_the_robustness_figure_and_tables_when_present(tmp_path, student_result):
    from nudistill.report import write_report

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 30)
    probs = {k: rng.dirichlet(np.ones(3), 30).astype(np.float32)
             for k in ("teacher_full", "teacher_half", "teacher_uncal_full", "student_full", "student_half")}
    (tmp_path / "evaluate").mkdir()
    np.savez(tmp_path / "evaluate" / "predictions.npz", y=y, **probs)
    md = write_report(tmp_path).read_text()  # no robustness run: the report still builds
    assert "### teacher" not in md and not (tmp_path / "report" / "robustness.png").exists()
    for model in ("teacher", "student"):
        (tmp_path / "robustness" / model).mkdir(parents=True)
        (tmp_path / "robustness" / model / "robustness.json").write_text(json.dumps(student_result))
    md = write_report(tmp_path).read_text()
    png = (tmp_path / "report" / "robustness.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and "](robustness.png)" in md
    assert "### teacher (student, 40 events)" in md and md.count("| dead_channels 15% |") == 2
