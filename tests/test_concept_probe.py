"""The concept probe: the charge spectrum it reads, its fit, and a checkpoint whose concept outputs it replaces."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from nudistill import metrics
from nudistill.errors import UserError
from nudistill.student import load_student
from nudistill.student.concept_probe import fit, fit_concept_probe, predict
from nudistill.student.spectrum import RELATIVE_STEPS, ChargeSpectrum

torch.set_num_threads(1)


def _map(gain: float, stub: float | None) -> torch.Tensor:
    """A pooled map: a 50-cell MIP track (40 ADC at gain 1) and, optionally, a 10-cell stub ``stub`` times brighter."""
    x = torch.zeros(1, 1, 128, 128)
    x[0, 0, 10, 0:100:2] = round(40 * gain)
    if stub:
        x[0, 0, 60, 0:20:2] = min(255, round(40 * stub * gain))
    return x


def test_charge_spectrum_reads_charge_relative_to_each_maps_own_mip_scale():
    spectrum = ChargeSpectrum(128, 128)
    n = len(RELATIVE_STEPS)
    share = {g: spectrum(_map(g, 4.0))[0, :n] for g in (0.5, 0.75, 1.0, 1.5)}
    for g, s in share.items():  # the gain moves the scale and the levels together
        torch.testing.assert_close(s, share[1.0], msg=f"gain {g}")
    below, above = share[1.0][: RELATIVE_STEPS.index(0) + 1], share[1.0][RELATIVE_STEPS.index(2):]
    assert (below == 1).all()  # every lit cell is at or above the scale's level and the one below it
    assert np.isclose(float(above[0]), 10 / 60) and float(above[-1]) == 0  # the stub: 2-4x the track, not 7x
    track_only = spectrum(_map(1.0, None))[0, :n]
    assert (track_only[RELATIVE_STEPS.index(2):] == 0).all()  # a muon alone has nothing at twice its own charge
    assert spectrum(_map(1.0, 4.0)).shape == (1, ChargeSpectrum.dim)


def test_probe_fit_learns_linear_and_nonlinear_concepts_from_raw_features():
    rng = np.random.default_rng(0)

    def draw(n):
        x = rng.normal(size=(n, 8))
        y = np.stack([x[:, 0] > 0, x[:, 1] * x[:, 2] > 0, x[:, 3] + x[:, 4] > 0.5], 1).astype(np.float32)
        return x * np.array([1, 1, 1, 1000, 1, 1, 1, 1]) + np.array([0, 0, 0, 50, 0, 0, 0, 0]), y  # raw scales

    x, y = draw(3000)
    weights = fit(x, y, hidden=32)
    xt, yt = draw(1000)
    auc = metrics.concept_auc(yt, predict(weights, xt), names=("a", "xor", "b"))
    assert auc["a"] > 0.98 and auc["b"] > 0.98 and auc["xor"] > 0.9  # the hidden layer learns a product's sign
    assert all(np.array_equal(u, v) for u, v in zip(weights, fit(x, y, hidden=32)))  # seeded: the same weights


@pytest.mark.slow
def test_probe_replaces_the_concept_head_in_checkpoint_and_onnx(sim_dir, tmp_path):
    import onnxruntime as ort
    from safetensors.torch import load_file

    from nudistill.export.pipeline import write_model
    from nudistill.student.train import train

    events = tmp_path / "events.parquet"
    pq.write_table(pq.read_table(sim_dir).slice(0, 32), events)
    ck = tmp_path / "ck"
    train(dict(events=str(events), out=str(ck), epochs=1, hard_labels="truth", concept_source="truth", augment=False,
               student="lean_pool4", student_overrides={"pool": 1}, batch_size=16, shuffle_buffer=0, seed=0))
    raw = load_student(ck)
    report = fit_concept_probe(ck, str(sim_dir), hidden=16)
    assert report["n"] == 120 and report["held_out"] == 24 and report["hidden"] == 16
    assert json.loads((ck / "concept_probe.json").read_text()) == report
    model = load_student(ck)
    assert model.cfg.concept_probe == 16 and model.meta["concept_probe"] == report
    views = torch.from_numpy(np.stack([np.frombuffer(v, np.uint8) for v in
                                       pq.read_table(sim_dir).column("xz").to_pylist()[:8]]).reshape(8, 64, 64))
    with torch.no_grad():
        (lr, cr), (lp, cp) = raw(views, views), model(views, views)
    torch.testing.assert_close(lp, lr)  # the class outputs do not move
    assert not torch.allclose(cp, cr)
    write_model(model, tmp_path / "m.onnx", teacher="truth", metrics={})
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    concepts = sess.run(["concepts"], {"xz": views.numpy(), "yz": views.numpy()})[0]
    np.testing.assert_allclose(concepts, torch.sigmoid(cp).numpy(), atol=1e-4)
    first = load_file(ck / "model.safetensors")
    fit_concept_probe(ck, str(sim_dir), hidden=16)  # the features do not depend on the probe: a refit changes nothing
    again = load_file(ck / "model.safetensors")
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)

    pq.write_table(pq.read_table(sim_dir).slice(0, 40).drop_columns(["concepts"]), tmp_path / "no_concepts.parquet")
    with pytest.raises(UserError, match="0 events carry a truth 'concepts' column"):
        fit_concept_probe(ck, str(tmp_path / "no_concepts.parquet"))
