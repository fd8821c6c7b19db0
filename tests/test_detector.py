"""The isolated-hit filter: its per-lit-pixel path and its whole-map path give the bytes of a plain padded
8-neighbour count, for any map shape, threshold, density, dtype and layout."""

from __future__ import annotations

import numpy as np
import pytest

from nudistill import detector
from nudistill.detector import NEIGHBOURS, kept_hits, suppress_isolated


def reference(views: np.ndarray, min_neighbours: int) -> np.ndarray:
    """The filter as first written: the lit map padded by one pixel, its 8 shifted copies summed."""
    lit = views > 0
    pad = np.pad(lit, [(0, 0)] * (lit.ndim - 2) + [(1, 1), (1, 1)])
    h, w = lit.shape[-2:]
    n = sum(pad[..., 1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w].astype(np.uint8) for dy, dx in NEIGHBOURS)
    return np.where(n >= min_neighbours, views, 0).astype(views.dtype)


def random_maps(shape: tuple[int, ...], density: float, seed: int = 0, dtype=np.uint8) -> np.ndarray:
    """Hits of 1..255 on a ``density`` of the pixels, the four corners of every map lit too."""
    rng = np.random.default_rng(seed)
    views = np.where(rng.random(shape) < density, rng.integers(1, 256, shape), 0).astype(dtype)
    views[..., [0, 0, -1, -1], [0, -1, 0, -1]] = 7
    return views


SHAPES = [(1, 1), (1, 8), (3, 5), (8, 8), (2, 7, 9), (2, 2, 33, 17), (3, 2, 64, 48)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("density", [0.0, 0.02, 0.3, 1.0])
def test_filter_equals_the_padded_count(shape, density):
    views = random_maps(shape, density, seed=len(shape))
    for m in range(-1, 10):
        got = suppress_isolated(views, m)
        assert got.dtype == views.dtype and np.array_equal(got, reference(views, m)), (shape, density, m)


@pytest.mark.parametrize("sparse_words", [2.0, -1.0])  # every map per lit pixel; every map whole
@pytest.mark.parametrize("density", [0.01, 0.2, 0.9])
def test_both_paths_give_the_same_bytes_at_any_density(monkeypatch, sparse_words, density):
    monkeypatch.setattr(detector, "SPARSE_WORDS", sparse_words)
    views = random_maps((4, 2, 40, 56), density, seed=3)
    assert (kept_hits(views) is None) == (sparse_words < 0)
    for m in range(0, 10):
        assert np.array_equal(suppress_isolated(views, m), reference(views, m)), (density, m)


def test_kept_hits_are_the_lit_pixels_that_stay():
    views = random_maps((2, 2, 64, 64), 0.03, seed=5)
    for m in range(-1, 10):
        assert np.array_equal(kept_hits(views, m), np.flatnonzero(reference(views, m)))
    assert kept_hits(random_maps((3, 5), 0.03)) is None  # not a whole number of 8-pixel words
    assert kept_hits(random_maps((4, 64), 0.03, dtype=np.int16)) is None


def test_other_dtypes_and_layouts_keep_the_plain_semantics():
    views = random_maps((3, 2, 32, 40), 0.05, seed=7)
    strided = views[..., ::2]  # not contiguous
    signed = random_maps((2, 16, 24), 0.1, seed=8).astype(np.float32) - 3.0  # negative pixels are unlit
    for m in (1, 2, 4):
        assert np.array_equal(suppress_isolated(strided, m), reference(strided, m))
        got = suppress_isolated(signed, m)
        assert got.dtype == np.float32 and np.array_equal(got, reference(signed, m))


def test_the_input_is_left_alone():
    views = random_maps((2, 2, 32, 32), 0.05, seed=9)
    before = views.copy()
    out = suppress_isolated(views)
    assert out is not views and np.array_equal(views, before)
