"""bench/concepts.py's charge probe features, and the teacher's charge colours they motivated."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def test_charge_features_count_the_pixels_of_each_view_in_each_adc_band():
    from concepts import ADC_BANDS, charge_features

    views = np.zeros((1, 2, 8, 8), np.uint8)
    views[0, 0, 0, :3] = 38  # three MIP pixels in XZ
    views[0, 1, 1, :2] = 255  # two saturated pixels in YZ
    views[0, 1, 2, 0] = 10
    counts = np.expm1(charge_features(views)).round().astype(int).reshape(2, len(ADC_BANDS) - 1)
    assert counts[0].tolist() == [0, 3, 0, 0, 0, 0, 0]
    assert counts[1].tolist() == [1, 0, 0, 0, 0, 0, 2]


def test_charge_rgb_keeps_the_charge_in_red_lifts_faint_in_green_and_keeps_heavy_in_blue():
    from nudistill.teacher.inputs import charge_rgb

    adc = np.array([0, 10, 38, 76, 150, 255], np.uint8)
    rgb = charge_rgb(adc.reshape(1, 2, 1, 3))[0].reshape(-1, 3).astype(int)
    assert rgb[:, 0].tolist() == adc.tolist()
    assert (np.diff(rgb[:, 1]) > 0).all() and (np.diff(rgb[:, 2]) >= 0).all()  # monotone in the charge
    assert rgb[2, 1] > 150 and rgb[2, 2] <= 1  # a MIP pixel: bright in green, dark in blue
    assert rgb[-1].tolist() == [255, 255, 255] and rgb[4, 2] < rgb[4, 0] / 2  # only saturation is full blue
