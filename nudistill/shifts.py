"""Named pixel-level shifts of uint8 views, for the robustness suite and for augmentation.

Each shift is a pure numpy function of one event's views ``(2, H, W)`` uint8 (XZ, YZ) and a generator,
built from the detector model's nuisances (:mod:`nudistill.detector`), so the names and units match
the simulator's parameters. They work at any H×W. :data:`SUITE` lists the levels the robustness suite
reports; :class:`DetectorAugment` draws a whole readout from :class:`~nudistill.detector.DetectorRanges`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nudistill import detector as det
from nudistill.detector import DetectorRanges

Shift = Callable[[np.ndarray, np.random.Generator], np.ndarray]


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


def translate(view: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate a ``(H, W)`` map by (rows, columns) with zero fill (no wrap-around)."""
    out = np.zeros_like(view)
    H, W = view.shape
    src_r, dst_r = slice(max(0, -dy), min(H, H - dy)), slice(max(0, dy), min(H, H + dy))
    src_c, dst_c = slice(max(0, -dx), min(W, W - dx)), slice(max(0, dx), min(W, W + dx))
    out[dst_r, dst_c] = view[src_r, src_c]
    return out


def mip_adc(views: np.ndarray) -> float:
    """The event's charge per pixel of a minimum-ionising track: the 75th percentile of its lit pixels (15-150 ADC).

    Diffusion shares a track's charge between neighbouring pixels, so the median lit pixel reads about
    half a MIP; the 75th percentile read 33-43 ADC on simulated events whose MIP is 38 ADC per pixel.
    """
    lit = views[views > 0]
    return float(np.clip(np.percentile(lit, 75), 15, 150)) if lit.size else 40.0


def _on_float(fn: Callable[[np.ndarray, np.random.Generator], np.ndarray]) -> Shift:
    def shift(views: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return det.to_uint8(fn(views.astype(np.float32), rng))
    return shift


def noise_hits(fraction: float) -> Shift:
    """Isolated hits of 5-40 ADC on ``fraction`` of the pixels of each view."""
    return _on_float(lambda a, rng: det.add_noise_hits(a, fraction, rng))


def noise_rms(rms: float, threshold: float) -> Shift:
    """Gaussian noise of ``rms`` ADC on every pixel, then zero suppression below ``threshold``."""
    return _on_float(lambda a, rng: det.noise_and_suppress(a, rms, threshold, rng))


def blips(mean: float) -> Shift:
    """Poisson(``mean``) radiological blips per event (1-3 px, 0.3-1.5 MIP per pixel), in both views."""
    return lambda v, rng: det.to_uint8(det.add_blips(v.astype(np.float32), mean, rng,
                                                     amplitude=(0.3 * mip_adc(v), 1.5 * mip_adc(v))))


def dead_channels(fraction: float) -> Shift:
    """``fraction`` of each view's channels (columns) read zero, in runs of mean length 3."""
    return _on_float(lambda a, rng: det.kill_channels(a, fraction, rng)[0])


def noisy_channels(n: float, rms: float = 15.0, threshold: float = 6.0) -> Shift:
    """Poisson(``n``) channels per view with ``rms`` ADC noise, zero-suppressed below ``threshold``."""
    def fn(a, rng):
        noisy, _ = det.add_noisy_channels(np.zeros_like(a), n, rms, rng)
        return np.maximum(a, det.zero_suppress(noisy, threshold))
    return _on_float(fn)


def gain(factor: float) -> Shift:
    """Every pixel times ``factor``, saturating at 255 (pixels below 1 ADC vanish)."""
    return _on_float(lambda a, rng: a * factor)


def lifetime(ms: float) -> Shift:
    """Charge loss along the drift for an electron lifetime of ``ms`` (the frame spans 1 ms)."""
    return _on_float(lambda a, rng: det.attenuate(a, ms))


def cosmics(n: int) -> Shift:
    """``n`` through-going cosmic muons overlaid, at the event's own MIP charge per pixel."""
    return lambda v, rng: det.to_uint8(v + det.cosmic_image(v.shape, n, rng, mip_adc(v)))


def half_resolution() -> Shift:
    """A 2x coarser readout (2x2 block mean, repeated back to the input size)."""
    return lambda v, rng: degrade_resolution(v, 2)


def pixel_shift(pixels: int) -> Shift:
    """Both views moved by ``pixels`` along z (columns, shared) and along their rows."""
    return lambda v, rng: np.stack([translate(v[0], pixels, pixels), translate(v[1], -pixels, pixels)])


SUITE: dict[str, Shift] = {
    "nominal": lambda v, rng: v,
    "noise_hits 0.1%": noise_hits(1e-3),
    "noise_hits 0.3%": noise_hits(3e-3),
    "noise_hits 1%": noise_hits(1e-2),
    "noise_rms 2 (threshold 4)": noise_rms(2.0, 4.0),
    "noise_rms 3 (threshold 4)": noise_rms(3.0, 4.0),  # suppression at 1.3 sigma: 9 % of empty pixels lit
    "noise_rms 3 (threshold 5.25)": noise_rms(3.0, 5.25),  # 1.75 sigma, just under the noise floor's 6 ADC level
    "noise_rms 4 (threshold 8)": noise_rms(4.0, 8.0),
    "blips 30": blips(30.0),
    "dead_channels 5%": dead_channels(0.05),
    "dead_channels 15%": dead_channels(0.15),
    "noisy_channels 1": noisy_channels(1.0),
    "gain x0.5": gain(0.5),
    "gain x2": gain(2.0),
    "lifetime 3 ms": lifetime(3.0),
    "half_resolution": half_resolution(),
    "cosmics 1": cosmics(1),
    "cosmics 3": cosmics(3),
    "shift 6 px": pixel_shift(6),
}
"""The robustness suite: shift name (vocabulary name and level) -> shift. 'nominal' leaves views as they are."""


def apply_shift(shift: Shift, views: np.ndarray, seed: int = 0) -> np.ndarray:
    """``shift`` on every event of ``views`` ``(N, 2, H, W)`` uint8; event i uses rng([seed, i])."""
    return np.stack([shift(v, np.random.default_rng([seed, i])) for i, v in enumerate(views)]) if len(views) else views


@dataclass
class DetectorAugment:
    """Training augmentation: a whole readout drawn from the detector ranges, then a shift and a coarser readout.

    Each event gets its own :class:`~nudistill.detector.Detector` (domain randomisation) applied by
    :func:`nudistill.detector.readout`, the simulator's own function, on top of its recorded views.
    """

    ranges: DetectorRanges = field(default_factory=DetectorRanges)
    """Where each nuisance is drawn from."""
    prob: float = 0.8
    """Probability that an event gets a randomised readout (the rest keep their own)."""
    max_shift: float = 0.05
    """Largest translation as a fraction of the map side (the beam axis z moves both views alike)."""
    degrade_prob: float = 0.2
    """Probability of the 2x coarser readout."""

    def __call__(self, views: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _, H, W = views.shape
        sy, sx = int(self.max_shift * H), int(self.max_shift * W)
        dz = int(rng.integers(-sx, sx + 1))  # one beam-axis shift for both views; never a reflection
        out = np.stack([translate(views[v], int(rng.integers(-sy, sy + 1)), dz) for v in range(2)])
        if rng.random() < self.prob:
            out, _ = det.readout(out, self.ranges.draw(rng), rng, mip_adc(out))
        if rng.random() < self.degrade_prob:
            out = degrade_resolution(out)
        return out


__all__ = ["SUITE", "DetectorAugment", "apply_shift", "degrade_resolution", "translate"]
