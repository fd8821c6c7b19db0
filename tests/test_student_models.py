"""Student registry, forward contract, checkpoint round trip and ONNX traceability (tiny 64² inputs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nudistill import CLASSES, CONCEPTS
from nudistill.errors import UserError
from nudistill.student import (DEFAULT_STUDENT, create_student, list_students, load_student, save_student,
                               student_config)
from nudistill.student.profile import count_macs, count_params

torch.set_num_threads(1)
RES = 64


def _views(b: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xz = torch.randint(0, 256, (b, RES, RES), generator=g, dtype=torch.uint8)
    yz = torch.randint(0, 256, (b, RES, RES), generator=g, dtype=torch.uint8)
    return xz, yz


def test_registry_lists_default_first_and_the_baseline():
    names = list_students()
    assert names[0] == DEFAULT_STUDENT
    assert "siamese_mbv2" in names


@pytest.mark.parametrize("name", list_students())
def test_forward_contract_and_round_trip(name, tmp_path):
    m = create_student(name, height=RES, width=RES).eval()
    assert (m.cfg.height, m.cfg.width, m.cfg.classes, m.cfg.concepts) == (RES, RES, CLASSES, CONCEPTS)
    xz, yz = _views(3)
    with torch.no_grad():
        logits, concepts = m(xz, yz)
    assert logits.shape == (3, len(CLASSES)) and concepts.shape == (3, len(CONCEPTS))
    save_student(m, tmp_path / "ckpt", extra_meta={"teacher": "t0"})
    back = load_student(tmp_path / "ckpt")
    assert not back.training and back.cfg == m.cfg and back.meta == {"teacher": "t0"}
    with torch.no_grad():
        torch.testing.assert_close(back(xz, yz)[0], logits)


def test_baseline_has_about_paper_parameter_count():
    assert 3.0e6 < count_params(create_student("siamese_mbv2")) < 3.8e6


def test_default_is_cheaper_than_stride4_stem():
    assert count_macs(create_student(DEFAULT_STUDENT)) < count_macs(create_student("lean_stride4"))


def test_overrides_are_recorded_and_unknown_ones_refused():
    cfg = student_config(DEFAULT_STUDENT, width_mult=0.25)
    assert cfg.width_mult == 0.25 and cfg.overrides == {"width_mult": 0.25}
    with pytest.raises(UserError, match="no option"):
        create_student(DEFAULT_STUDENT, wings=2)
    with pytest.raises(UserError, match="unknown student"):
        create_student("resnet9000")
    with pytest.raises(UserError, match="divide"):
        create_student(DEFAULT_STUDENT, height=66, width=66)


def test_bad_checkpoints_name_the_file(tmp_path):
    with pytest.raises(UserError, match="config.json"):
        load_student(tmp_path / "nowhere")
    save_student(create_student(DEFAULT_STUDENT, height=RES, width=RES), tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(UserError, match="model.safetensors"):
        load_student(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"oops": 1}))
    with pytest.raises(UserError, match="config.json"):
        load_student(tmp_path)


@pytest.mark.parametrize("global_pool", ["mean", "meanmax"])
def test_default_student_exports_to_onnx_with_dynamic_batch(tmp_path, global_pool):
    ort = pytest.importorskip("onnxruntime")
    m = create_student(DEFAULT_STUDENT, height=RES, width=RES, global_pool=global_pool).eval()
    xz, yz = _views(2)
    path = tmp_path / "m.onnx"
    torch.onnx.export(m, (xz, yz), str(path), input_names=["xz", "yz"], output_names=["logits", "concepts"],
                      dynamic_axes={k: {0: "N"} for k in ("xz", "yz", "logits", "concepts")}, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b in (1, 5):
        xz, yz = _views(b, seed=b)
        out = sess.run(None, {"xz": xz.numpy(), "yz": yz.numpy()})[0]
        with torch.no_grad():
            np.testing.assert_allclose(out, m(xz, yz)[0].numpy(), atol=1e-4)


def test_isolated_hit_filter_matches_the_detector_model():
    """The student's in-graph filter is the numpy one of nudistill.detector, and it leaves tracks whole."""
    from nudistill.detector import suppress_isolated as numpy_filter
    from nudistill.student.models import suppress_isolated as torch_filter

    rng = np.random.default_rng(0)
    views = np.zeros((3, 64, 64), np.uint8)
    hits = rng.integers(0, 64, (3, 30, 2))
    for i in range(3):
        views[i, hits[i, :, 0], hits[i, :, 1]] = 25  # scattered hits, most of them isolated
    views[:, 20, 5:60] = 40  # a track along z
    out = torch_filter(torch.from_numpy(views)[:, None].float())[:, 0].numpy().astype(np.uint8)
    assert np.array_equal(out, numpy_filter(views))
    assert (out[:, 20, 5:60] == 40).all()  # the track is connected, so it stays
    assert (out > 0).sum() < (views > 0).sum() - 60  # most isolated hits are gone


def test_a_two_neighbour_filter_removes_noise_pairs_and_keeps_track_interiors():
    from nudistill.detector import suppress_isolated as numpy_filter
    from nudistill.student.models import suppress_isolated as torch_filter

    views = np.zeros((1, 32, 32), np.uint8)
    views[0, 10, 4:28] = 40  # a track along z: its inside has two lit neighbours, its ends one
    views[0, 20, 5:7] = 30  # a pair of noise pixels: one neighbour each
    views[0, 25, 25] = 30  # an isolated hit
    out = torch_filter(torch.from_numpy(views)[:, None].float(), 2)[:, 0].numpy().astype(np.uint8)
    assert np.array_equal(out, numpy_filter(views, 2))
    assert (out[0, 10, 5:27] == 40).all() and out[0, 10, 4] == out[0, 10, 27] == 0  # the ends go
    assert out[0, 20].sum() == 0 and out[0, 25, 25] == 0
    one = numpy_filter(views, 1)
    assert one[0, 20, 5:7].tolist() == [30, 30] and one[0, 25, 25] == 0  # the default filter keeps the pair


def test_isolated_filter_must_divide_the_pool():
    with pytest.raises(UserError, match="isolated_filter"):
        create_student("lean_pool4", isolated_filter=3)
    assert create_student("lean_pool4").cfg.isolated_filter == 2


@pytest.mark.parametrize("shape,k", [((3, 1, 64, 48), 2), ((2, 1, 33, 34), 2), ((2, 1, 64, 64), 4)])
def test_uint8_max_pool_is_the_float_one(shape, k):
    """The front end pools uint8 before the cast (two element-wise maxima by 2): the same values as casting first."""
    from nudistill.student.models import max_pool_uint8

    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8))
    got = max_pool_uint8(x, k, shape[-2], shape[-1])
    assert got.dtype == torch.float32
    assert torch.equal(got, torch.nn.functional.max_pool2d(x.float(), k))


@pytest.mark.parametrize("scale", ["log", "sqrt", "linear"])
def test_adc_scale_by_table_is_the_formula(scale):
    """The look-up the graph uses gives scale_adc exactly on every ADC count."""
    from nudistill.student.models import scale_adc, scale_by_table

    table = scale_adc(torch.arange(256, dtype=torch.float32), scale).view(1, -1)
    x = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (4, 1, 16, 24))).float()
    assert torch.equal(scale_by_table(x, table), scale_adc(x, scale))
    assert torch.equal(create_student("lean_pool4", scale=scale).adc_table, table)
