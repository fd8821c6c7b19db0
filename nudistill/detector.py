"""The detector model: every readout nuisance of a LArTPC pixel map as one named, documented parameter.

One vocabulary for the simulator, training augmentation and the robustness suite (docs/contracts.md "Detector
conditions"): each nuisance is a pure numpy function on one event's float ADC maps ``(2, H, W)`` (XZ,
YZ), in pixel units, so it works on any H×W. The simulator applies them before quantisation; the
augmentation and the robustness shifts apply them to decoded uint8 views (:mod:`nudistill.shifts`).

Geometry in pixel space: a view's columns are the beam coordinate z, shared by both views, and a
column is one readout channel (a wire at that z); rows are x (drift time) in XZ and y (vertical) in YZ.
A 3-D point (x, y, z) in pixels therefore lands at (x, z) in XZ and (y, z) in YZ.

Physical motivation of the ranges (:class:`DetectorRanges`): MicroBooNE and ProtoDUNE see 2-6 ADC
electronics noise against ~40 ADC per MIP pixel, thresholds of 2-4 sigma, a few % dead and some noisy
channels, electron lifetimes from ~1 ms (poor purity) to tens of ms, surface cosmic rates of a few
muons per readout, and Ar-39 at ~1 Bq/kg (~5 decays in a 1.5 m cube per 1 ms window). Training draws
from ranges wider than any of these.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from nudistill.errors import UserError

DRIFT_MS_PER_FRAME = 1.0
"""Drift time spanned by a view's rows (1.5 m at 1.6 mm/us), for the lifetime attenuation."""


@dataclass
class Detector:
    """One detector condition (the nominal one by default). Names and units are the design's vocabulary."""

    noise_rms: float = 2.0
    """Electronics noise RMS in ADC, Gaussian on every pixel before zero suppression."""
    threshold: float = 7.0
    """Zero-suppression threshold in ADC: pixels below it read 0 (3.5 noise_rms at nominal)."""
    noise_hits: float = 1e-4
    """Fraction of pixels with an isolated noise hit (5-40 ADC), after zero suppression."""
    blips: float = 5.0
    """Mean number of radiological (Ar-39-like) blips per event: 1-3 px deposits of tens of ADC, in both views."""
    dead_channels: float = 0.0
    """Fraction of channels (columns) reading zero, alone or in runs."""
    noisy_channels: float = 0.0
    """Mean number of channels per view with raised noise."""
    noisy_rms: float = 15.0
    """Noise RMS in ADC of a noisy channel (before zero suppression)."""
    gain: float = 1.0
    """Gain multiplier of the whole event."""
    channel_gain_spread: float = 0.02
    """Relative RMS of the per-channel gain."""
    lifetime: float = 10.0
    """Electron lifetime in ms: charge drifting the whole frame (1 ms) keeps exp(-1/lifetime)."""
    cosmics: float = 0.0
    """Mean number of through-going cosmic muons overlaid per event."""

    def __post_init__(self):
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise UserError(f"detector {f.name} must not be negative, got {getattr(self, f.name)}")
        if self.dead_channels > 0.9 or self.noise_hits > 0.5:
            raise UserError("detector dead_channels must be <= 0.9 and noise_hits <= 0.5")
        if self.gain <= 0 or self.lifetime <= 0:
            raise UserError("detector gain and lifetime must be positive")

    def to_dict(self) -> dict:
        return asdict(self)


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


@dataclass
class DetectorRanges:
    """Domain randomisation: each event's :class:`Detector` is drawn from these ranges (wider than any real one)."""

    noise_rms: tuple[float, float] = (0.0, 5.0)
    """Uniform, ADC."""
    threshold_sigmas: tuple[float, float] = (1.5, 4.0)
    """Uniform; threshold = max(3 ADC, this x noise_rms): no experiment sets it below its noise. From 1.5 sigma
    (7 % of empty pixels lit): a student trained from 1.8 saw dense noise too rarely and lost 0.12 at 2 sigma."""
    noise_hits: tuple[float, float] = (1e-5, 2e-2)
    """Log-uniform occupancy of isolated hits."""
    blips: tuple[float, float] = (0.5, 100.0)
    """Log-uniform mean blips per event."""
    dead_channels: tuple[float, float] = (0.0, 0.25)
    """Uniform fraction, drawn for half of the events (the others have none)."""
    noisy_channels: tuple[float, float] = (0.0, 3.0)
    """Uniform mean noisy channels per view."""
    noisy_rms: tuple[float, float] = (5.0, 30.0)
    """Uniform ADC."""
    gain: tuple[float, float] = (0.4, 2.5)
    """Log-uniform multiplier."""
    channel_gain_spread: tuple[float, float] = (0.0, 0.15)
    """Uniform relative RMS."""
    lifetime: tuple[float, float] = (1.0, 100.0)
    """Log-uniform ms."""
    cosmics: tuple[float, float] = (0.0, 4.0)
    """Uniform mean muons per event, drawn for half of the events (an underground detector has none)."""

    def draw(self, rng: np.random.Generator) -> Detector:
        noise = float(rng.uniform(*self.noise_rms))
        return Detector(
            noise_rms=noise, threshold=max(3.0, float(rng.uniform(*self.threshold_sigmas)) * noise),
            noise_hits=_loguniform(rng, *self.noise_hits), blips=_loguniform(rng, *self.blips),
            dead_channels=float(rng.uniform(*self.dead_channels)) if rng.random() < 0.5 else 0.0,
            noisy_channels=float(rng.uniform(*self.noisy_channels)), noisy_rms=float(rng.uniform(*self.noisy_rms)),
            gain=_loguniform(rng, *self.gain), channel_gain_spread=float(rng.uniform(*self.channel_gain_spread)),
            lifetime=_loguniform(rng, *self.lifetime),
            cosmics=float(rng.uniform(*self.cosmics)) if rng.random() < 0.5 else 0.0)


# --- the nuisances: float ADC (2, H, W) in, float ADC out -------------------------------------------


def attenuate(adc: np.ndarray, lifetime_ms: float) -> np.ndarray:
    """Charge loss along the drift: XZ rows are drift time; YZ (no drift axis) takes XZ's charge-weighted mean."""
    H = adc.shape[-2]
    factor = np.exp(-(np.arange(H) + 0.5) / H * DRIFT_MS_PER_FRAME / lifetime_ms)  # (H,)
    out = adc.copy()
    out[0] *= factor[:, None]
    total = adc[0].sum()
    out[1] *= float(out[0].sum() / total) if total > 0 else 1.0
    return out


def scale_gain(adc: np.ndarray, gain: float, channel_spread: float, rng: np.random.Generator) -> np.ndarray:
    """Event gain times a per-channel (column) gain of relative RMS ``channel_spread``, per view."""
    W = adc.shape[-1]
    per_channel = np.clip(rng.normal(1.0, channel_spread, size=(2, 1, W)), 0.0, None) if channel_spread else 1.0
    return adc * (gain * per_channel)


def add_noisy_channels(adc: np.ndarray, mean: float, rms: float, rng: np.random.Generator,
                       axis: int = -1) -> tuple[np.ndarray, list[np.ndarray]]:
    """Poisson(``mean``) lines per view with extra noise of ``rms`` ADC; returns the lines per view too."""
    out, lines = adc.copy(), []
    n_lines = adc.shape[axis]
    for v in range(adc.shape[0]):
        idx = rng.choice(n_lines, size=min(n_lines, int(rng.poisson(mean))), replace=False)
        noise = rng.normal(0.0, rms, size=(len(idx), adc.shape[-2 if axis in (-1, 2) else -1]))
        if axis in (-1, 2):
            out[v][:, idx] += noise.T
        else:
            out[v][idx, :] += noise
        lines.append(np.sort(idx))
    return out, lines


def zero_suppress(adc: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels below ``threshold`` ADC read 0."""
    return np.where(adc >= threshold, adc, 0.0)


def add_noise_hits(adc: np.ndarray, fraction: float, rng: np.random.Generator,
                   amplitude: tuple[float, float] = (5.0, 40.0)) -> np.ndarray:
    """Isolated hits on a ``fraction`` of the pixels of each view, of uniform ``amplitude`` ADC."""
    out = adc.copy()
    flat = out.reshape(-1)
    n = int(rng.binomial(flat.size, min(fraction, 1.0)))
    idx = rng.choice(flat.size, size=n, replace=False) if n > flat.size // 8 else rng.integers(0, flat.size, n)
    flat[idx] = np.maximum(flat[idx], rng.uniform(*amplitude, size=n))
    return out


def add_blips(adc: np.ndarray, mean: float, rng: np.random.Generator,
              amplitude: tuple[float, float] = (10.0, 60.0)) -> np.ndarray:
    """Poisson(``mean``) radiological blips: 1-3 px random walks at one 3-D point, seen in both views."""
    _, H, W = adc.shape
    n = int(rng.poisson(mean))
    if not n:
        return adc
    start = rng.integers(0, [H, H, W], size=(n, 1, 3))
    steps = np.concatenate([np.zeros((n, 1, 3), np.int64), rng.integers(-1, 2, size=(n, 2, 3))], axis=1)
    pts = np.clip(start + steps.cumsum(1), 0, [H - 1, H - 1, W - 1]).reshape(-1, 3)  # (3n, 3): x, y, z
    keep = (np.arange(3)[None, :] < rng.integers(1, 4, size=(n, 1))).reshape(-1)  # 1-3 pixels per blip
    pts, q = pts[keep], rng.uniform(*amplitude, size=int(keep.sum()))
    out = adc.copy()
    np.add.at(out[0], (pts[:, 0], pts[:, 2]), q)
    np.add.at(out[1], (pts[:, 1], pts[:, 2]), q)
    return out


def pick_lines(n_lines: int, fraction: float, rng: np.random.Generator, mean_run: float = 3.0) -> np.ndarray:
    """Sorted line indices covering ~``fraction`` of ``n_lines``: runs of geometric length (mean ``mean_run``)."""
    target = int(round(fraction * n_lines))
    dead = np.zeros(n_lines, bool)
    while dead.sum() < target:
        start = int(rng.integers(n_lines))
        length = min(int(rng.geometric(1.0 / mean_run)), target - int(dead.sum()))
        dead[start:start + length] = True
    return np.flatnonzero(dead)


def kill_channels(adc: np.ndarray, fraction: float, rng: np.random.Generator, axis: int = -1,
                  mean_run: float = 3.0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Zero ~``fraction`` of each view's lines (columns by default) in runs; returns the lines per view."""
    out, lines = adc.copy(), []
    for v in range(adc.shape[0]):
        idx = pick_lines(adc.shape[axis], fraction, rng, mean_run)
        if axis in (-1, 2):
            out[v][:, idx] = 0
        else:
            out[v][idx, :] = 0
        lines.append(idx)
    return out, lines


def cosmic_image(shape: tuple[int, int, int], n: int, rng: np.random.Generator, mip_adc: float,
                 diffusion_px: float = 0.35) -> np.ndarray:
    """ADC maps ``(2, H, W)`` of ``n`` through-going cosmic muons (cos²-zenith, downward along y).

    ``mip_adc`` is the charge per pixel of 3-D path (a MIP): ~38 ADC at the study's 0.3 cm pitch.
    Each muon crosses the whole volume [0,H)x[0,H)x[0,W) through a uniform point, so it starts and ends
    at the frame's edges, unrelated to the neutrino vertex.
    """
    _, H, W = shape
    out = np.zeros((2, H * W))
    size = np.array([H, H, W], float)
    for _ in range(n):
        cos_t = rng.random() ** (1 / 3)  # cos^2 zenith distribution
        sin_t, phi = math.sqrt(1 - cos_t**2), rng.uniform(0, 2 * math.pi)
        d = np.array([sin_t * math.cos(phi), -cos_t, sin_t * math.sin(phi)])
        p = rng.uniform(0, 1, 3) * size
        with np.errstate(divide="ignore"):
            t_lo = np.where(d != 0, (np.where(d > 0, 0, size) - p) / d, -np.inf).max()
            t_hi = np.where(d != 0, (np.where(d > 0, size, 0) - p) / d, np.inf).min()
        steps = np.arange(t_lo, t_hi, 0.5)
        pts = p + steps[:, None] * d + rng.normal(0, diffusion_px, size=(len(steps), 3))
        pix = np.floor(pts).astype(np.int64)
        for v, row_axis in enumerate((0, 1)):
            r, c = pix[:, row_axis], pix[:, 2]
            keep = (r >= 0) & (r < H) & (c >= 0) & (c < W)
            out[v] += np.bincount(r[keep] * W + c[keep], weights=np.full(keep.sum(), 0.5 * mip_adc), minlength=H * W)
    return out.reshape(2, H, W)


def readout(signal: np.ndarray, det: Detector, rng: np.random.Generator, mip_adc: float) -> tuple[np.ndarray, dict]:
    """The whole readout of one event: ideal ADC ``(2, H, W)`` (float, no noise) -> digitised uint8 views.

    Charge first (cosmic overlay, blips), then its transport and amplification (lifetime, gain), then
    the electronics (noise and noisy channels before zero suppression, isolated noise hits above it),
    then dead channels and saturation at 255. Returns the views and the drawn counts.
    """
    n_cosmics = int(rng.poisson(det.cosmics)) if det.cosmics else 0
    adc = signal.astype(np.float32)
    if n_cosmics:
        adc = adc + cosmic_image(signal.shape, n_cosmics, rng, mip_adc)
    if det.blips:
        adc = add_blips(adc, det.blips, rng, amplitude=(0.3 * mip_adc, 1.5 * mip_adc))
    adc = attenuate(adc, det.lifetime)
    adc = scale_gain(adc, det.gain, det.channel_gain_spread, rng)
    if det.noisy_channels:
        adc, _ = add_noisy_channels(adc, det.noisy_channels, det.noisy_rms, rng)
    adc = noise_and_suppress(adc, det.noise_rms, det.threshold, rng)
    if det.noise_hits:
        adc = add_noise_hits(adc, det.noise_hits, rng, amplitude=(det.threshold, det.threshold + 35.0))
    if det.dead_channels:
        adc, _ = kill_channels(adc, det.dead_channels, rng)
    return to_uint8(adc), {"cosmics_overlaid": n_cosmics}


def noise_and_suppress(adc: np.ndarray, rms: float, threshold: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of ``rms`` ADC on every pixel, then zero suppression: exact in distribution but sparse.

    Lit pixels get the full Gaussian. An empty pixel survives only when its noise alone passes the
    threshold, so only that tail is drawn: a binomial count of such pixels, placed uniformly among the
    empty ones, with values from the normal tail above the threshold. ~20x faster at 512² and 2 % lit.
    """
    if rms <= 0:
        return zero_suppress(adc, threshold)
    from scipy.special import ndtr, ndtri

    out = np.zeros_like(adc)
    lit = adc != 0
    noisy = adc[lit] + rng.normal(0.0, rms, size=int(lit.sum())).astype(adc.dtype)
    out[lit] = np.where(noisy >= threshold, noisy, 0)
    empty = np.flatnonzero(~lit.reshape(-1))
    p_tail = float(ndtr(-threshold / rms))
    n = int(rng.binomial(len(empty), p_tail))
    if n:
        where = np.unique(rng.integers(0, len(empty), n))  # distinct pixels: top up the few that coincide
        while len(where) < n:
            where = np.unique(np.concatenate([where, rng.integers(0, len(empty), n - len(where))]))
        where = empty[where]
        u = rng.uniform(1.0 - p_tail, 1.0, n).clip(None, 1 - 1e-12)
        out.reshape(-1)[where] = rms * ndtri(u)
    return out


def to_uint8(adc: np.ndarray) -> np.ndarray:
    """Round and saturate float ADC at 0..255."""
    return np.clip(np.rint(adc), 0, 255).astype(np.uint8)


NOISE_FLOOR_LADDER = (0, 6, 9, 12, 16, 20, 25)
"""ADC levels a map's zero-suppression floor may be raised to (:func:`noise_floor`). A minimum-ionising pixel
reads ~38 ADC at nominal gain and ~15 at the lowest gain of :class:`DetectorRanges` (x0.4), above every level
but the last two, which only maps lit by noise even at 16 ADC reach."""
NOISE_FLOOR_OCCUPANCY = 0.03
"""A map with more than this fraction of its pixels lit may be noise-dominated. Measured at 512²: the demo's
nominal events light at most 1.9 % of a view (99th percentile 1.8 %); Gaussian noise zero-suppressed at
1.3-1.5 sigma (RMS 3, threshold 4 ADC; RMS 2, threshold 3) lights 7-11 %, and both models then called every
event one class (student 0.30, teacher 0.30-0.38)."""
NOISE_FLOOR_DROP = 1.3
"""...and it is noise only while raising the floor one level cuts its lit pixels by this factor or more (or cuts
none: the readout's own threshold lies above that level, so the step changes nothing). Noise is a Gaussian
tail: it falls 1.4-6.7x per level (RMS 3: 9.4 % lit at 4 ADC, 3.6 % at 6, 0.5 % at 9; RMS 5 from 7.5 to 9 ADC,
the slowest, 1.5x); the pixels of tracks and showers carry tens of ADC and mostly keep their count. A step
that cuts less passes when the fall over two levels is :data:`NOISE_FLOOR_DROP_TWO` or more. Only maps
over the cap can lose anything: clean simulated events lose none of their lit pixels at 512², 0.16 % at 256²
and 4.6 % at 128² (0.7 % of the charge: low fringe pixels of maps that tracks light densely)."""

NOISE_FLOOR_DROP_TWO = 2.5
"""...or, over two levels, by this factor: a readout threshold just under a ladder level leaves the first step
only the thin band beneath it (RMS 3 at 5.25 ADC: 4.4 % lit, 3.7 % from 6 ADC, 0.7 % from 9; RMS 4 at 5.2 ADC:
9.9, 8.8, 1.9 %). The one-step rule alone kept their floors at 0, and the student fell from 0.91 to 0.75 at the
first. Noise falls 4-6x over two levels there; the most crowded clean maps measured (3 % lit, two overlaid
cosmic muons) fall 1.7x from 12 to 20 ADC and keep their floor."""


def noise_floor(views: np.ndarray) -> np.ndarray:
    """(..., H, W) maps -> (...) float32: each map's floor, the :data:`NOISE_FLOOR_LADDER` level reached by
    raising it one level at a time while the map is noise-dominated (:data:`NOISE_FLOOR_OCCUPANCY`,
    :data:`NOISE_FLOOR_DROP`), pixels counted on every eighth row and column (a 64² sample at 512²).

    A readout zero-suppressed close to its noise (a threshold of 1-2 sigma) lights a few % of all pixels with
    noise just above the threshold; tracks and showers light ~1 % and carry tens of ADC. The floor adapts each
    map's threshold to its own noise, with no knowledge of the detector: 0 on a clean map. The torch twin
    (:class:`nudistill.student.models.NoiseFloor`) gives the same levels.
    """
    sub = views[..., ::8, ::8]
    cap = NOISE_FLOOR_OCCUPANCY * sub.shape[-1] * sub.shape[-2]
    lit = np.stack([(sub >= max(level, 1)).sum((-2, -1)) for level in NOISE_FLOOR_LADDER], -1)  # (..., L)
    below, above = lit[..., :-1], lit[..., 1:]
    two_up = np.concatenate([lit[..., 2:], lit[..., -1:]], -1)  # the count two levels up (the last step: one)
    # a step that cuts nothing (the readout's own threshold is above it) does no harm and is passed too; so is
    # one that cuts little when the fall over two levels is steep (a threshold just under the next level)
    steep = (below > NOISE_FLOOR_DROP * above) | (below == above) | (below > NOISE_FLOOR_DROP_TWO * two_up)
    noise = (below > cap) & steep  # (..., L - 1)
    raised = np.cumprod(noise, -1)  # a level is passed only when every level below it was
    return (raised * np.diff(NOISE_FLOOR_LADDER)).sum(-1).astype(np.float32)


def raise_floor(views: np.ndarray) -> np.ndarray:
    """Zero the pixels of each map below its :func:`noise_floor`; clean maps come back unchanged (same array)."""
    floor = noise_floor(views)
    if not floor.any():
        return views
    return np.where(views >= floor[..., None, None], views, 0).astype(views.dtype)


SPARSE_WORDS = 1 / 3
"""Above this fraction of lit 8-pixel words, counting neighbours over the whole map beats counting them per
lit pixel (measured at 512²: the crossover is near 6 % of pixels lit, 40 % of words; the study's maps light
~0.6 % of their pixels, 2 % of their words)."""

NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def suppress_isolated(views: np.ndarray, min_neighbours: int = 1) -> np.ndarray:
    """Zero every lit pixel with fewer than ``min_neighbours`` lit 8-neighbours: ``(..., H, W)`` uint8 -> same.

    A track or a shower is connected at the readout pitch; an isolated hit is electronics noise. This is
    the classic first step of LArTPC hit filtering, and the teacher's and the student's first layer.
    Sparse uint8 maps are filtered per lit pixel (:func:`kept_hits`, ~7x faster at 512²), others over the
    whole map; both give the same bytes.
    """
    keep = kept_hits(views, min_neighbours)
    if keep is None:
        return np.where(neighbour_counts(views) >= min_neighbours, views, 0).astype(views.dtype)
    out = np.zeros_like(views)
    out.reshape(-1)[keep] = views.reshape(-1)[keep]
    return out


def neighbour_counts(views: np.ndarray) -> np.ndarray:
    """How many of each pixel's 8 neighbours are lit (> 0), over whole ``(..., H, W)`` maps: uint8, same shape.

    A 3-wide sum along rows, then along columns, in place in uint8, less the pixel itself.
    """
    lit = (views > 0).view(np.uint8)
    rows = lit.copy()
    rows[..., 1:] += lit[..., :-1]
    rows[..., :-1] += lit[..., 1:]
    n = rows.copy()
    n[..., 1:, :] += rows[..., :-1, :]
    n[..., :-1, :] += rows[..., 1:, :]
    n -= lit
    return n


def kept_hits(views: np.ndarray, min_neighbours: int = 1) -> np.ndarray | None:
    """Sorted flat indices into ``views`` (C-contiguous ``(..., H, W)`` uint8) of its lit pixels with at least
    ``min_neighbours`` lit 8-neighbours; None where a per-pixel count does not pay (other dtypes or layouts,
    densely lit maps: :data:`SPARSE_WORDS`), and :func:`neighbour_counts` is the way."""
    if views.dtype != np.uint8 or not views.flags.c_contiguous or views.ndim < 2 or views.size % 8:
        return None
    words = views.reshape(-1).view(np.uint64)  # 8 pixels at a time: most of a sparse map is empty words
    lit_words = np.flatnonzero(words != 0)
    if len(lit_words) > SPARSE_WORDS * len(words):
        return None
    f = np.flatnonzero(words[lit_words].view(np.uint8) != 0)  # bytes in memory order, as in views
    lit = lit_words[f >> 3] * 8 + (f & 7)
    if min_neighbours <= 0:
        return lit
    return lit[lit_neighbours(views.reshape(-1), lit, *views.shape[-2:]) >= min_neighbours]


def lit_neighbours(flat: np.ndarray, lit: np.ndarray, h: int, w: int) -> np.ndarray:
    """(N,) uint8: how many of the 8 neighbours of each pixel ``lit`` (flat indices into C-ordered
    ``(..., h, w)`` maps, ``flat`` their pixels) are lit. Pixels on a map's border look only inside it."""
    y, x = (lit // w) % h, lit % w
    inside = {(-1, 0): y > 0, (1, 0): y < h - 1, (0, -1): x > 0, (0, 1): x < w - 1}
    n = np.zeros(len(lit), np.uint8)
    for dy, dx in NEIGHBOURS:
        ok = inside[dy, 0] & inside[0, dx] if dy and dx else inside[dy, dx]
        n += (flat[np.where(ok, lit + dy * w + dx, lit)] != 0) & ok
    return n
