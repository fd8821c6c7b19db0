"""Physically sensible augmentations of raw uint8 view pairs, and the half-resolution degradation.

Issue 6: small shifts, noise, and the resolution degradation of the evaluation; never flip the beam axis.
XZ and YZ share the beam coordinate z (columns), so a z shift moves both views by the same amount; the
drift coordinates x and y (rows) shift independently. Reflections are never applied: the beam direction
is physical (showers and tracks point downstream).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def degrade_resolution(views: np.ndarray, factor: int = 2) -> np.ndarray:
    """Average ``factor``×``factor`` blocks, then repeat them back: a coarser readout at the same input size.

    ``views`` ``(..., H, W)`` uint8 -> same shape uint8. Rows/columns beyond a multiple of ``factor`` stay as they are.
    """
    if factor <= 1:
        return views
    *lead, H, W = views.shape
    h, w = H // factor * factor, W // factor * factor
    out = views.copy()
    blocks = views[..., :h, :w].reshape(*lead, h // factor, factor, w // factor, factor).astype(np.float32)
    coarse = np.rint(blocks.mean(axis=(-3, -1))).astype(np.uint8)  # (..., h/f, w/f)
    out[..., :h, :w] = coarse.repeat(factor, axis=-2).repeat(factor, axis=-1)
    return out


def shift(view: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate a ``(H, W)`` map by (rows, columns) with zero fill (no wrap-around)."""
    out = np.zeros_like(view)
    H, W = view.shape
    src_r, dst_r = slice(max(0, -dy), min(H, H - dy)), slice(max(0, dy), min(H, H + dy))
    src_c, dst_c = slice(max(0, -dx), min(W, W - dx)), slice(max(0, dx), min(W, W + dx))
    out[dst_r, dst_c] = view[src_r, src_c]
    return out


@dataclass
class Augment:
    """Random, physically sensible changes of one event ``(2, H, W)`` uint8 (XZ, YZ)."""

    max_shift: float = 0.05
    """Largest shift as a fraction of the map side."""
    gain_jitter: float = 0.1
    """Relative spread of the ADC gain (lit pixels scaled by U[1-g, 1+g], clipped at 255)."""
    noise_hits: float = 3e-4
    """Fraction of pixels that get a spurious noise hit (ADC 6-20)."""
    degrade_prob: float = 0.25
    """Probability of the 2x resolution degradation used in evaluation."""

    def __call__(self, views: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _, H, W = views.shape
        sy, sx = int(self.max_shift * H), int(self.max_shift * W)
        dz = int(rng.integers(-sx, sx + 1))  # one beam-axis shift for both views
        out = np.stack([shift(views[v], int(rng.integers(-sy, sy + 1)), dz) for v in range(2)])
        if self.gain_jitter > 0:
            gain = rng.uniform(1 - self.gain_jitter, 1 + self.gain_jitter)
            out = np.clip(np.rint(out * gain), 0, 255).astype(np.uint8)
        if self.noise_hits > 0:
            flat = out.reshape(-1)  # sparse draw: ~size*p positions, not a full random map
            idx = rng.integers(0, flat.size, rng.binomial(flat.size, self.noise_hits))
            flat[idx] = np.maximum(flat[idx], rng.integers(6, 21, idx.size).astype(np.uint8))
        if rng.random() < self.degrade_prob:
            out = degrade_resolution(out)
        return out
