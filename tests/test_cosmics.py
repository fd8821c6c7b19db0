"""The through-going muon tagger: it clears overlaid cosmic muons and leaves neutrino activity alone."""

from __future__ import annotations

import numpy as np
import pytest

from nudistill.cosmics import cosmic_mask, remove_cosmics
from nudistill.pooling import max_pool, pool_views


@pytest.mark.parametrize("n_muons", [1, 3])
def test_overlaid_muons_are_cleared_and_the_neutrino_kept(events_128, n_muons, overlay_muons):
    rng = np.random.default_rng(n_muons)
    cleared, lost = [], []
    for views in events_128:
        both, muon = overlay_muons(views, n_muons, rng)
        mask = cosmic_mask(both)
        cleared.append(mask[muon & (views == 0)].mean())
        lost.append(mask[(views > 0) & ~muon].mean())  # neutrino pixels the muons do not cover
    assert np.mean(cleared) >= 0.75  # 0.88-0.90 on the demo's 128 px teacher views
    assert np.median(lost) <= 0.02 * n_muons  # the pixel beside each muon goes with it


def test_events_without_muons_lose_almost_nothing(events_128):
    lost = [cosmic_mask(v)[v > 0].mean() for v in events_128 if (v > 0).any()]
    assert np.mean(lost) <= 0.02 and np.mean(np.array(lost) > 0.05) <= 0.1


def test_a_track_from_an_inner_vertex_is_not_a_cosmic():
    views = np.zeros((2, 128, 128), np.uint8)
    views[0, 64, 40:] = 40  # starts at z=40 inside the frame and leaves through the downstream border
    views[1, 60, 40:] = 40
    assert not cosmic_mask(views).any()
    views[0, 64, :] = 40  # border to border in both views, the same z range: a through-going muon
    views[1, 60, :] = 40
    mask = cosmic_mask(views)
    assert mask[0, 64, 5:120].all() and mask[1, 60, 5:120].all()


def test_remove_cosmics_works_at_any_size_and_copies(overlay_muons):
    rng = np.random.default_rng(0)
    views = np.zeros((1, 2, 100, 300), np.uint8)
    both, muon = overlay_muons(views[0], 2, rng)
    out = remove_cosmics(both[None])
    assert out.shape == (1, 2, 100, 300) and not np.shares_memory(out, both)
    assert (out[0][muon] == 0).mean() >= 0.75 and both[muon].all()


def test_the_teacher_sees_pooled_views_without_the_muon(overlay_muons):
    rng = np.random.default_rng(1)
    views = np.zeros((2, 512, 512), np.uint8)
    views[0, 256, 200:330] = 40  # a neutrino's short track in the middle
    views[1, 250, 200:330] = 40
    both, _ = overlay_muons(views, 1, rng)
    seen = pool_views(both[None], 128)[0]
    assert np.array_equal(seen, max_pool(views[None], 128)[0])  # the muon gone, the track whole
