"""The noise floor: a map lit densely by noise just above its zero-suppression threshold has its floor raised
to a level that noise rarely reaches and tracks always pass; a clean map is untouched. The numpy function
(the teacher's front end) and the student's torch module give the same levels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nudistill import detector as det
from nudistill.simulate import simulate_table
from nudistill.events import decode_views
from nudistill.student.models import NoiseFloor
from nudistill.student.registry import create_student


def noisy(shape, rms: float, threshold: float, seed: int = 0) -> np.ndarray:
    """Empty maps read out with Gaussian noise of ``rms`` ADC, zero-suppressed below ``threshold``."""
    rng = np.random.default_rng(seed)
    return det.to_uint8(det.noise_and_suppress(np.zeros(shape, np.float32), rms, threshold, rng))


def with_track(views: np.ndarray, adc: int = 38, row: int = 41) -> np.ndarray:
    """A one-pixel-wide minimum-ionising track along ``row`` of every map (41: off the floor's sample)."""
    out = views.copy()
    out[..., row, 10:-10] = adc
    return out


def torch_floor(views: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(views.reshape(-1, 1, *views.shape[-2:])).float()
    return NoiseFloor()(x).reshape(views.shape[:-2]).numpy()


def test_clean_simulated_events_keep_their_bytes():
    views = decode_views(simulate_table(8, res=256, seed=3))
    assert not det.noise_floor(views).any()
    assert det.raise_floor(views) is views


@pytest.mark.parametrize("rms,threshold", [(3.0, 4.0), (2.0, 3.0), (4.0, 6.0), (5.0, 7.5)])
def test_dense_noise_is_cut_to_below_the_cap_and_a_track_survives(rms, threshold):
    views = with_track(noisy((2, 2, 512, 512), rms, threshold))
    lit_before = (views > 0).mean((-2, -1))
    assert (lit_before > 0.05).all()  # 1-1.5 sigma suppression lights 7-16 % of the pixels
    out = det.raise_floor(views)
    lit_after = (out > 0).mean((-2, -1))
    # the floor is set from a 64² sample: a map may stop one level short, a little over the cap
    assert lit_after.mean() < det.NOISE_FLOOR_OCCUPANCY and (lit_after < 1.5 * det.NOISE_FLOOR_OCCUPANCY).all(), lit_after
    assert (out[..., 41, 10:-10] == 38).all()  # the track keeps every pixel and its charge


@pytest.mark.parametrize("rms,threshold", [(3.0, 5.25), (4.0, 5.2), (5.0, 8.0)])
def test_a_threshold_just_under_a_ladder_level_still_raises_the_floor(rms, threshold):
    """The first step (to 6 or 9 ADC) then cuts only the thin band under it, less than the drop rule asks;
    over two levels the fall is steep, so it is taken (the old rule stopped at 0 or 6 ADC: 4-10 % lit)."""
    views = with_track(noisy((2, 2, 512, 512), rms, threshold))
    assert ((views > 0).mean((-2, -1)) > 0.04).all()
    floor = det.noise_floor(views)
    assert (floor > 0).all(), floor
    np.testing.assert_array_equal(floor, torch_floor(views))
    out = det.raise_floor(views)
    lit_after = (out > 0).mean((-2, -1))
    assert lit_after.mean() < det.NOISE_FLOOR_OCCUPANCY and (lit_after < 1.5 * det.NOISE_FLOOR_OCCUPANCY).all()
    assert (out[..., 41, 10:-10] == 38).all()


def test_suppression_at_three_sigma_is_left_alone():
    views = with_track(noisy((2, 2, 512, 512), 2.0, 6.0))
    assert not det.noise_floor(views).any()


@pytest.mark.parametrize("res,max_lost", [(512, 0.0), (256, 0.005), (128, 0.06)])
def test_crowded_clean_maps_keep_nearly_every_pixel(res, max_lost):
    """At low resolution tracks light up to 9 % of a map, more than the cap: the drop rule keeps the floor
    from eating into them (only low fringe pixels go)."""
    views = decode_views(simulate_table(60, res=res, seed=5))
    out = det.raise_floor(views)
    lost = 1 - (out > 0).sum() / (views > 0).sum()
    assert lost <= max_lost
    assert out.astype(float).sum() >= 0.99 * views.astype(float).sum()


def test_a_track_along_a_sampled_row_does_not_raise_the_floor_into_it():
    views = with_track(np.zeros((1, 1, 128, 128), np.uint8), row=40)  # row 40 is sampled: 5 % of it lit
    assert (det.raise_floor(views) == views).all()


@pytest.mark.parametrize("shape", [(3, 2, 64, 64), (2, 2, 100, 90), (4, 1, 33, 17)])
@pytest.mark.parametrize("rms,threshold", [(0.0, 1.0), (2.0, 3.0), (3.0, 4.0), (3.0, 5.25), (6.0, 6.0)])
def test_torch_twin_gives_the_same_levels(shape, rms, threshold):
    views = with_track(noisy(shape, rms, threshold, seed=1), adc=60) if shape[-2] > 40 else noisy(shape, rms, threshold)
    np.testing.assert_array_equal(det.noise_floor(views), torch_floor(views))


def test_student_with_the_floor_clears_dense_noise_and_keeps_its_state_dict():
    on, off = create_student("lean_pool4"), create_student("lean_pool4", noise_floor=False)
    views = torch.from_numpy(with_track(noisy((1, 512, 512), 3.0, 4.0)))
    track = (torch.from_numpy(with_track(np.zeros((1, 512, 512), np.uint8))) > 0)
    assert (on.pooled(views) > 0).sum() <= 1.2 * (on.pooled(track.to(torch.uint8) * 38) > 0).sum()
    assert (off.pooled(views) > 0).float().mean() > 0.3
    assert set(on.state_dict()) == set(off.state_dict())  # ladder constants are not weights: old checkpoints load


def test_onnx_runtime_gives_the_numpy_levels(tmp_path):
    """The floor as exported in the student's graph (ONNX Runtime), on maps where each rule decides."""
    import warnings

    import onnxruntime as ort

    views = np.concatenate([with_track(noisy((2, 2, 128, 128), rms, threshold, seed=2), adc=60)
                            for rms, threshold in [(0.0, 1.0), (3.0, 4.0), (3.0, 5.25), (4.0, 5.2), (5.0, 8.0), (2.0, 6.0)]])
    path = tmp_path / "floor.onnx"
    x = torch.zeros(2, 1, 128, 128, dtype=torch.uint8)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(NoiseFloor(128, 128), (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["floor"], dynamic_axes={"x": {0: "N"}, "floor": {0: "N"}})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": views.reshape(-1, 1, 128, 128)})[0].reshape(views.shape[:-2])
    want = det.noise_floor(views)
    assert len(np.unique(want)) >= 3  # the cases reach different levels
    np.testing.assert_array_equal(got, want)
