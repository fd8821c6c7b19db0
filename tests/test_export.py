"""ONNX export (contract 3) from a really trained checkpoint: checker, parity, metadata, batches, int8 gates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from nudistill import CLASSES, CONCEPTS
from nudistill.errors import UserError
from nudistill.export import ExportConfig, export_checkpoint
from nudistill.export.checks import ExportCheckError
from nudistill.export.graph import OPSET
from nudistill.export.pipeline import load_events
from nudistill.online import METADATA_KEYS, Scorer, optimized_path

RES = 64
pytestmark = pytest.mark.slow  # a module fixture trains a student (~10 s on 2 shared cores)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A lean student trained 60 steps on 512 simulated 64x64 events (about 90% train accuracy)."""
    import torch

    from nudistill.events import decode_views
    from nudistill.simulate import simulate_table
    from nudistill.student import create_student, save_student

    torch.set_num_threads(1)
    torch.manual_seed(0)
    table = simulate_table(512, res=RES, seed=1)
    views = torch.from_numpy(decode_views(table))  # (512, 2, H, W) uint8
    labels = torch.tensor([CLASSES.index(x) for x in table.column("label").to_pylist()])
    model = create_student("lean_pool4", height=RES, width=RES, pool=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        i = torch.randint(0, len(labels), (32,))
        loss = torch.nn.functional.cross_entropy(model(views[i, 0], views[i, 1])[0], labels[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for m in model.modules():  # running averages lag after 60 steps (BatchNorm in short runs): recompute them exactly
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        for lo in range(0, len(views), 64):
            model(views[lo: lo + 64, 0], views[lo: lo + 64, 1])
    model.eval()
    return save_student(model, tmp_path_factory.mktemp("ckpt"), extra_meta={"teacher": "teacher-abc123", "steps": 60})


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory) -> dict:
    """The export checked on the user's events: 256 simulated 64x64 events written as a dataset."""
    from nudistill.simulate import SimConfig, write_dataset

    events = tmp_path_factory.mktemp("events")
    write_dataset(SimConfig(n=256, res=RES, seed=0), events, progress_bar=False)
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    return export_checkpoint(ExportConfig(checkpoint=str(checkpoint), out=str(out), events=str(events)))


def test_export_writes_checked_files(exported):
    model, opt = Path(exported["files"]["model"]), Path(exported["files"]["optimized"])
    assert model.is_file() and opt == optimized_path(model) and opt.is_file()
    onnx.checker.check_model(str(model), full_check=True)
    proto = onnx.load(str(model))
    assert {o.domain: o.version for o in proto.opset_import}[""] == OPSET
    assert [i.name for i in proto.graph.input] == ["xz", "yz"]
    assert [o.name for o in proto.graph.output] == ["probs", "concepts"]
    assert json.loads(Path(exported["files"]["report"]).read_text())["parity"]


def test_parity_with_pytorch_on_256_simulated_events(exported):
    assert [p["file"] for p in exported["parity"]] == ["model.onnx", "model.opt.onnx"]
    for p in exported["parity"]:
        assert p["events"] >= 256 and p["max_abs_dprob"] <= 1e-4 and p["argmax_agreement"] == 1.0


def test_metadata_through_onnxruntime(exported):
    sess = ort.InferenceSession(exported["files"]["model"], providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert set(METADATA_KEYS) <= set(meta)
    assert json.loads(meta["classes"]) == list(CLASSES) and json.loads(meta["concepts"]) == list(CONCEPTS)
    assert (meta["height"], meta["width"], meta["student"]) == (str(RES), str(RES), "lean_pool4")
    assert meta["teacher"] == "teacher-abc123"
    metrics = json.loads(meta["metrics"])
    assert metrics["accuracy"] > 0.5 and metrics["auc_macro"] > 0.7  # trained: well above chance (1/3)
    assert metrics["accuracy_on"] == f"256 events of {metrics['check_events']}" and "simulated" not in metrics["accuracy_on"]
    assert metrics["training"]["steps"] == 60 and "latency" in metrics


@pytest.mark.parametrize("n", [1, 64])
def test_dynamic_batch_runs(exported, n):
    sess = ort.InferenceSession(exported["files"]["model"], providers=["CPUExecutionProvider"])
    assert isinstance(sess.get_inputs()[0].shape[0], str)  # N is symbolic, not baked in at 2
    x = np.zeros((n, RES, RES), np.uint8)
    probs, concepts = sess.run(None, {"xz": x, "yz": x})
    assert probs.shape == (n, 3) and concepts.shape == (n, len(CONCEPTS))
    assert probs.dtype == np.float32 and concepts.dtype == np.float32


def test_failed_parity_writes_nothing(checkpoint, tmp_path):
    out = tmp_path / "model.onnx"
    with pytest.raises(ExportCheckError, match="disagrees with PyTorch"):
        export_checkpoint(ExportConfig(checkpoint=str(checkpoint), out=str(out), tolerance=1e-12))
    assert not list(tmp_path.iterdir())


def test_accuracy_on_simulated_events_only_at_the_simulators_size_and_labelled():
    """Without --events, events the export simulates say nothing of another detector's student."""
    from nudistill.cli.export import accuracy_line
    from nudistill.export.pipeline import accuracy_metrics

    probs, labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]], np.array([0, 1, 2, 1])
    theirs = accuracy_metrics(probs, labels, "simulated", simulated=True, shape=(500, 500))
    assert "accuracy" not in theirs and "pass --events" in accuracy_line(theirs)
    ours = accuracy_metrics(probs, labels, "simulated", simulated=True, shape=(512, 512))
    assert accuracy_line(ours) == "accuracy 75.0% on simulated nominal events, not yours"
    given = accuracy_metrics(probs, labels, "ev/", shape=(500, 500))
    assert accuracy_line(given) == "accuracy 75.0% on 4 events of ev/"


def test_bad_arguments_are_user_errors(checkpoint, tmp_path):
    with pytest.raises(UserError, match="at least 256"):
        ExportConfig(checkpoint=str(checkpoint), check_events=10)
    with pytest.raises(UserError, match="config.json"):
        export_checkpoint(ExportConfig(checkpoint=str(tmp_path / "nothing"), out=str(tmp_path / "m.onnx")))


@pytest.fixture(scope="module")
def int8_events():
    """Check events (seed 0, 0..255) and disjoint calibration events (256..511), with truth."""
    views, labels, _ = load_events(None, 256, (RES, RES), seed=0)
    calib, _, _ = load_events(None, 256, (RES, RES), seed=0, start=256)
    return views, labels, calib


# Measured on this fixture: real-event calibration keeps 98.4% argmax agreement and loses 0.4 accuracy
# points, just under the default 99% gate (so `--int8` refuses it there); all-zero calibration maps give
# every activation range a single value, real events saturate it, and agreement falls to ~26%. The gates
# below (95%, 1 point) are loosened so that the test separates a sound calibration from a broken one.
GATES = {"min_agreement": 0.95, "max_accuracy_drop": 1.0}


def test_int8_broken_calibration_is_refused(exported, int8_events, tmp_path):
    from nudistill.export.quantize import quantize_checked

    views, labels, calib = int8_events
    dst = tmp_path / "model.int8.onnx"
    result = quantize_checked(Path(exported["files"]["model"]), dst, np.zeros_like(calib), views, labels, **GATES)
    assert not result["accepted"] and not dst.exists()
    assert result["agreement"] < 0.9 and result["refused_because"]
    assert "agreement" in result["refused_because"][0] and "%" in result["refused_because"][0]


def test_int8_sound_calibration_is_written(exported, int8_events, tmp_path):
    from nudistill.export.quantize import quantize_checked

    views, labels, calib = int8_events
    dst = tmp_path / "model.int8.onnx"
    result = quantize_checked(Path(exported["files"]["model"]), dst, calib, views, labels, **GATES)
    assert result["accepted"], result
    assert result["agreement"] >= GATES["min_agreement"] and result["accuracy_drop_points"] <= 1.0
    onnx.checker.check_model(str(dst), full_check=True)
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(dst)).graph.node)
    scorer = Scorer(dst)
    assert json.loads(scorer.session.get_modelmeta().custom_metadata_map["quantization"])["accepted"]
    assert scorer.score(views[:4, 0], views[:4, 1])["probs"].shape == (4, 3)


def test_export_cli(checkpoint, tmp_path, capsys):
    from nudistill.cli import main

    out = tmp_path / "cli.onnx"
    assert main(["export", str(checkpoint), "--out", str(out), "--no-optimize"]) == 0
    assert "checker ok" in capsys.readouterr().out
    assert out.is_file() and not optimized_path(out).exists()
    assert main(["export", str(tmp_path / "missing"), "--out", str(out)]) == 2
