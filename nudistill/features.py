"""Hand-made topology features of a pixel map: a non-learned physics check of the simulated classes.

``longest_track_px`` is a Hough-style count of lit pixels on the best thin straight line (a muon gives
hundreds); ``dense_area_px`` counts lit pixels inside dense neighbourhoods, a shower-width proxy
(EM showers are wide and dense, tracks are one or two pixels across).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def longest_track_px(img: np.ndarray, n_theta: int = 60, width: float = 1.5, min_adc: int = 10) -> int:
    """Most lit pixels (ADC >= min_adc) that fall in one ``width``-px band of any of ``n_theta`` line angles."""
    r, c = np.nonzero(img >= min_adc)
    if len(r) < 2:
        return int(len(r))
    theta = np.linspace(0, np.pi, n_theta, endpoint=False)
    dist = np.outer(r, np.cos(theta)) + np.outer(c, np.sin(theta))  # (P, T) signed distance to origin
    bins = np.floor(dist / width).astype(np.int64)
    bins -= bins.min(axis=0)
    return int(max(np.bincount(bins[:, t]).max() for t in range(n_theta)))


def dense_area_px(img: np.ndarray, window: int = 5, min_neighbours: int = 8) -> int:
    """Lit pixels with at least ``min_neighbours`` lit pixels in their ``window``² neighbourhood."""
    lit = (img > 0).astype(np.int32)
    pad = window // 2
    counts = sliding_window_view(np.pad(lit, pad), (window, window)).sum(axis=(2, 3))
    return int(((counts >= min_neighbours) & (lit > 0)).sum())
