"""Toy LArTPC event generator: 3-D energy deposits projected onto XZ and YZ pixel maps (contract 1).

Not a GEANT simulation, but each particle follows the physics that makes the classes separable in
the study (arXiv 2509.08461): minimum-ionising muons with multiple scattering (Highland), EM showers
with a Gamma longitudinal profile in radiation lengths and a Molière-radius lateral spread (Longo
1975; PDG "Passage of particles through matter"), protons with a Bragg peak from the Bragg-Kleeman
range rule, kinked charged pions, and pi0 -> gamma gamma with a conversion gap. Deposits (MeV) become
ADC counts through the detector model (:mod:`nudistill.detector`): cosmics and radiological blips,
electron lifetime, gain, electronics noise, zero suppression, noise hits, noisy and dead channels.

``--detector nominal`` reads every event out with one :class:`~nudistill.detector.Detector`;
``--detector randomized`` draws each event's detector (and its pitch and diffusion) from
:class:`~nudistill.detector.DetectorRanges` (domain randomisation). The values used are written as
pass-through columns named as in the detector vocabulary, so metrics can be sliced by them.

Determinism: event ``i`` of a run uses ``numpy.random.default_rng([seed, i])`` for its physics and
``default_rng([seed, i, 1])`` for its readout, so the same seed gives the same events (and bytes)
whatever the sharding, and the same physics under either detector.

Run: ``nudistill simulate --n 2000 --res 512 --out events/``  (tiny CPU run: ``--n 50 --res 128``;
domain-randomised: ``--detector randomized``)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from nudistill import CLASSES
from nudistill.detector import Detector, DetectorRanges, readout
from nudistill.errors import UserError
from nudistill.events import encode_views, write_events
from nudistill.rationale_text import describe

# Liquid-argon constants (PDG).
X0_CM = 14.0  # radiation length
MOLIERE_CM = 9.0  # Moliere radius
E_CRIT_MEV = 32.8  # critical energy
MIP_MEV_PER_CM = 2.12  # minimum-ionising dE/dx
PI0_MASS_MEV = 134.98
_BRAGG_A, _BRAGG_P = 0.00243, 1.75  # range R[cm] = A * T[MeV]^P (fits 100 MeV proton -> ~7.7 cm)


DETECTORS = ("nominal", "randomized")
RANGES = DetectorRanges()
"""The ranges of --detector randomized (pitch x0.75-1.35 and diffusion 0.2-0.7 px are drawn beside them)."""


@dataclass
class SimConfig:
    """Settings of one simulated dataset."""

    n: int = 1000
    """Number of events."""
    res: int = 512
    """Pixel-map side in pixels (both views are res x res)."""
    seed: int = 0
    """Master seed; event i uses rng([seed, i])."""
    pitch_cm: float = 0.3
    """Pixel pitch in cm (wire pitch / drift sampling)."""
    cc_fraction: float = 0.74
    """Fraction of charged-current events (the study's mix); split evenly between nue_cc and numu_cc."""
    nue_fraction_of_cc: float = 0.5
    """Share of nue_cc among CC events."""
    gain_adc_per_mev: float = 60.0
    """ADC counts per MeV deposited in one pixel (a MIP crossing one pixel gives ~38 ADC at 0.3 cm)."""
    diffusion_px: float = 0.35
    """RMS transverse diffusion of each deposit, in pixels."""
    detector: str = "nominal"
    """nominal (every event read out with `conditions`) or randomized (each event draws its own detector)."""
    conditions: dict = field(default_factory=dict)
    """Changes to the nominal detector, by vocabulary name (e.g. {"noise_rms": 3.0})."""
    rows_per_file: int = 1000
    """Rows per Parquet shard."""
    start: int = 0
    """Index of the first event (for generating disjoint slices of one run)."""
    out: str | None = None
    """Output directory for the part-*.parquet shards (``nudistill simulate`` needs it; write_dataset takes its own)."""

    CHOICES = {"detector": DETECTORS}  # the CLI's choices (cli/dataclass_args.py)

    def __post_init__(self):
        if self.n <= 0:
            raise UserError(f"--n must be positive, got {self.n}")
        if self.res < 16:
            raise UserError(f"--res must be at least 16 pixels, got {self.res}")
        for flag, value in (("--cc-fraction", self.cc_fraction), ("--nue-fraction-of-cc", self.nue_fraction_of_cc)):
            if not 0.0 <= value <= 1.0:
                raise UserError(f"{flag}: class fractions must lie between 0 and 1, got {value}")
        if self.pitch_cm <= 0:
            raise UserError(f"--pitch must be positive, got {self.pitch_cm}")
        if self.rows_per_file <= 0:
            raise UserError(f"--rows-per-file must be positive, got {self.rows_per_file}")
        if self.detector not in DETECTORS:
            raise UserError(f"--detector must be one of {', '.join(DETECTORS)}, got {self.detector!r}")
        unknown = sorted(set(self.conditions) - set(Detector.__dataclass_fields__))
        if unknown:
            raise UserError(f"unknown detector condition(s) {', '.join(unknown)}; "
                            f"known: {', '.join(Detector.__dataclass_fields__)}")
        self.nominal = Detector(**self.conditions)  # validates the values once

    def draw(self, rng: np.random.Generator) -> tuple[Detector, float, float]:
        """This event's detector, pitch scale and diffusion (px): nominal, or drawn from the ranges."""
        if self.detector == "nominal":
            return self.nominal, 1.0, self.diffusion_px
        return RANGES.draw(rng), float(np.exp(rng.uniform(np.log(0.75), np.log(1.35)))), float(rng.uniform(0.2, 0.7))

    @property
    def class_probs(self) -> tuple[float, float, float]:
        cc = self.cc_fraction
        return (cc * self.nue_fraction_of_cc, cc * (1 - self.nue_fraction_of_cc), 1 - cc)


@dataclass
class _Deposits:
    """3-D energy deposits of one event, in cm and MeV, with per-particle truth."""

    pts: list = field(default_factory=list)  # arrays (n, 3): x, y, z
    mev: list = field(default_factory=list)  # arrays (n,)
    particles: list = field(default_factory=list)  # (kind, dict of truth) per particle

    def add(self, pts: np.ndarray, mev: np.ndarray, kind: str, **truth) -> None:
        self.pts.append(pts)
        self.mev.append(mev)
        self.particles.append((kind, {"n_pts": len(pts), **truth}))


def _direction(rng: np.random.Generator, forward: float) -> np.ndarray:
    """A unit vector; ``forward`` in [0, 1] biases it toward +z (the beam)."""
    cos_t = np.clip(forward + (1 - forward) * rng.uniform(-1, 1), -1, 1) if forward < 1 else 1.0
    cos_t = max(-1.0, min(1.0, rng.normal(cos_t, 0.15)))
    sin_t = math.sqrt(1 - cos_t**2)
    phi = rng.uniform(0, 2 * math.pi)
    return np.array([sin_t * math.cos(phi), sin_t * math.sin(phi), cos_t])


def _perpendicular(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1.0, 0, 0]) if abs(d[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(d, a)
    u /= np.linalg.norm(u)
    return u, np.cross(d, u)


def _track(rng, start, d, length, step, theta0_per_sqrt_cm=0.0, kinks=0):
    """Points (n, 3) along a track: small-angle Gaussian multiple scattering plus optional hard kinks."""
    n = max(2, int(length / step))
    d = d / np.linalg.norm(d)
    u, v = _perpendicular(d)
    kicks = rng.normal(0, theta0_per_sqrt_cm * math.sqrt(step), size=(n, 2))  # per-step deflection, rad
    where = np.arange(n // 4, max(n // 4 + 1, 3 * n // 4))  # kinks in the middle half of the track
    for at in rng.choice(where, size=min(kinks, len(where)), replace=False) if kinks else ():
        angle, phi = math.tan(rng.uniform(0.35, 1.0)), rng.uniform(0, 2 * math.pi)  # a 20-60 degree scatter
        kicks[at] += (angle * math.cos(phi), angle * math.sin(phi))
    slope = np.cumsum(kicks, axis=0)  # (n, 2) accumulated transverse slope
    dirs = d + slope[:, :1] * u + slope[:, 1:] * v
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return start + np.cumsum(dirs * step, axis=0)


def _muon(rng, dep, vtx, step):
    e_mev = rng.uniform(400, 3000)
    length = min(e_mev / MIP_MEV_PER_CM, 400.0)
    # Highland: theta0 = 13.6 MeV / p * sqrt(x / X0), per sqrt(cm) for p in MeV.
    theta = 13.6 / e_mev / math.sqrt(X0_CM) * 1.5
    pts = _track(rng, vtx, _direction(rng, 0.8), length, step, theta)
    dep.add(pts, np.full(len(pts), MIP_MEV_PER_CM * step), "muon", energy=e_mev, length=length)


def _shower(rng, dep, start, d, e_mev, kind, trunk_cm=0.0):
    """EM cascade: Gamma longitudinal profile (t in X0, Longo), lateral core+halo in Moliere radii.

    Drawn as short branching segments so the shower looks like a cascade, not a blob.
    """
    d = d / np.linalg.norm(d)
    u, v = _perpendicular(d)
    b = 0.5
    t_max = max(0.5, math.log(e_mev / E_CRIT_MEV) + (-0.5 if kind == "electron" else 0.5))
    a = 1 + b * t_max
    n_seg = int(np.clip(e_mev / 2.5, 40, 1200))
    t = rng.gamma(a, 1 / b, n_seg) * X0_CM  # depth in cm
    core = rng.random(n_seg) < 0.8  # 80 % of deposits within ~0.3 R_M, the rest a halo
    r = np.where(core, rng.exponential(0.15 * MOLIERE_CM, n_seg), rng.exponential(0.6 * MOLIERE_CM, n_seg))
    r *= np.clip(t / (t_max * X0_CM), 0.2, 1.5)  # lateral size grows with depth
    phi = rng.uniform(0, 2 * math.pi, n_seg)
    base = start + (trunk_cm + t)[:, None] * d + (r * np.cos(phi))[:, None] * u + (r * np.sin(phi))[:, None] * v
    seg_len = rng.exponential(2.0, n_seg) + 0.5
    spread = 0.6 * (r / MOLIERE_CM + 0.15)[:, None]
    seg_dir = d + spread * (rng.normal(size=(n_seg, 1)) * u + rng.normal(size=(n_seg, 1)) * v)
    seg_dir /= np.linalg.norm(seg_dir, axis=1, keepdims=True)
    k = 8  # points per segment, ~1 px apart
    frac = np.linspace(0, 1, k)
    pts = (base[:, None, :] + seg_len[:, None, None] * frac[None, :, None] * seg_dir[:, None, :]).reshape(-1, 3)
    mev = np.repeat(np.full(n_seg, 0.9 * e_mev / n_seg / k), k)
    if trunk_cm > 0:  # the electron's own minimum-ionising trunk from the vertex
        trunk = start + np.linspace(0, trunk_cm, max(2, int(trunk_cm / 0.15)))[:, None] * d
        pts = np.concatenate([trunk, pts])
        mev = np.concatenate([np.full(len(trunk), MIP_MEV_PER_CM * 0.15), mev])
    dep.add(pts, mev, kind, energy=e_mev)


def _electron(rng, dep, vtx, step):
    e_mev = rng.uniform(300, 3000)
    _shower(rng, dep, vtx, _direction(rng, 0.8), e_mev, "electron", trunk_cm=rng.uniform(2, 6))


def _proton(rng, dep, vtx, step):
    ke = rng.uniform(30, 300)
    length = _BRAGG_A * ke**_BRAGG_P
    pts = _track(rng, vtx, _direction(rng, 0.3), length, step, 0.02)
    residual = np.linspace(length, 0, len(pts)) + step
    dedx = 17.0 * (residual**-0.42)  # Bragg-Kleeman: dE/dx ~ R^(1/p - 1); ~5x MIP at 1 cm from the end
    dep.add(pts, np.clip(dedx, MIP_MEV_PER_CM * 2, 60) * step, "proton", energy=ke, length=length)


def _pion(rng, dep, vtx, step):
    ke = rng.uniform(80, 500)
    length = min(ke / MIP_MEV_PER_CM, rng.exponential(45.0) + 10.0)  # ends early: hadronic interaction length
    kinks = int(rng.integers(1, 3))
    pts = _track(rng, vtx, _direction(rng, 0.5), length, step, 0.01, kinks=kinks)
    dep.add(pts, np.full(len(pts), 1.3 * MIP_MEV_PER_CM * step), "pion", energy=ke, length=length, kinks=kinks)


def _pi0(rng, dep, vtx, step):
    """pi0 -> gamma gamma: isotropic in the rest frame, boosted; each photon converts after ~9/7 X0."""
    p = rng.uniform(100, 900)
    e = math.hypot(p, PI0_MASS_MEV)
    beta = p / e
    gamma = e / PI0_MASS_MEV
    axis = _direction(rng, 0.5)
    u, v = _perpendicular(axis)
    cos_s = rng.uniform(-1, 1)
    sin_s = math.sqrt(1 - cos_s**2)
    phi = rng.uniform(0, 2 * math.pi)
    half = PI0_MASS_MEV / 2
    for sign in (1, -1):
        c = sign * cos_s
        e_lab = gamma * half * (1 + beta * c)
        pz = gamma * half * (c + beta)
        pt = sign * half * sin_s
        d = pz * axis + pt * (math.cos(phi) * u + math.sin(phi) * v)
        gap = rng.exponential(9 / 7 * X0_CM)
        _shower(rng, dep, vtx + gap * d / np.linalg.norm(d), d, max(e_lab, 20.0), "photon")
        dep.particles[-1][1]["gap"] = gap


def _hadrons(rng, dep, vtx, step, need_some: bool):
    """Hadronic system: protons, charged pions and pi0s; NC events always get some visible activity."""
    n_p = rng.poisson(1.2)
    n_pi = rng.poisson(0.45)
    n_pi0 = rng.poisson(0.35 if need_some else 0.2)
    if need_some and n_p + n_pi + n_pi0 == 0:
        n_p = 1
    for _ in range(n_p):
        _proton(rng, dep, vtx, step)
    for _ in range(n_pi):
        _pion(rng, dep, vtx, step)
    for _ in range(n_pi0):
        _pi0(rng, dep, vtx, step)


def _project(pts, mev, origin, res, pitch, rng, diffusion_px=0.35):
    """Sum deposits into (2, res, res) MeV images: XZ (rows x, cols z) and YZ (rows y, cols z)."""
    imgs = np.zeros((2, res * res))
    jitter = rng.normal(0, diffusion_px, size=(len(pts), 3))  # transverse diffusion, in pixels
    pix = (pts - origin) / pitch + jitter
    col = np.floor(pix[:, 2]).astype(np.int64)
    for v, axis in enumerate((0, 1)):
        row = np.floor(pix[:, axis]).astype(np.int64)
        keep = (row >= 0) & (row < res) & (col >= 0) & (col < res)
        imgs[v] = np.bincount(row[keep] * res + col[keep], weights=mev[keep], minlength=res * res)
    return imgs.reshape(2, res, res)


MIN_VISIBLE_CM = 2.0
"""A particle is named in the truth when at least this much of its trace is its own (not under another
particle's charge) in one view: ~2 cm is the ~45 MeV proton range, near the 40-50 MeV proton threshold
of LArTPC analyses; below it a stub is a pixel or two at the vertex that no reader can attribute."""


def _visible(dep: _Deposits, origin, res, pitch) -> list[bool]:
    """Per particle: does it leave at least MIN_VISIBLE_CM of its own pixels inside the frame, in either view?"""
    per_view = []
    for axis in (0, 1):  # XZ rows are x, YZ rows are y
        pixels = []
        for pts in dep.pts:
            pix = np.floor((pts - origin) / pitch).astype(np.int64)
            inside = ((pix >= 0) & (pix < res)).all(axis=1)
            pixels.append(np.unique(pix[inside, axis] * res + pix[inside, 2]))
        owners = np.bincount(np.concatenate(pixels), minlength=res * res) if pixels else np.zeros(0)
        per_view.append([int((owners[p] == 1).sum()) for p in pixels])  # pixels no other particle touches
    need = MIN_VISIBLE_CM / pitch
    return [max(xz, yz) >= need for xz, yz in zip(*per_view)]


def _truth_concepts(label: str, dep: _Deposits, visible: list[bool]) -> list[str]:
    kinds = {k for (k, _), vis in zip(dep.particles, visible) if vis}
    found = []
    if "muon" in kinds:
        found.append("muon_track")
    if "electron" in kinds:
        found.append("em_shower")
    if "photon" in kinds:
        found.append("displaced_shower")
    if "proton" in kinds:
        found.append("proton_stub")
    if "pion" in kinds:
        found.append("pion_track")
    if label == "nc":
        found.append("hadronic_activity_only")
    return found


def simulate_event(cfg: SimConfig, index: int) -> dict:
    """One event: views (2, res, res) uint8 plus truth; deterministic in (cfg.seed, index)."""
    rng = np.random.default_rng([cfg.seed, index])
    det_rng = np.random.default_rng([cfg.seed, index, 1])
    det, pitch_scale, diffusion = cfg.draw(det_rng)
    label = CLASSES[rng.choice(3, p=cfg.class_probs)]
    # Resolution-independent physics: the frame covers `extent` cm, so res changes only the pitch.
    pitch = cfg.pitch_cm * 512 / cfg.res * pitch_scale
    extent = cfg.res * pitch
    vtx = np.array([rng.uniform(0.3, 0.7) * extent, rng.uniform(0.3, 0.7) * extent, rng.uniform(0.15, 0.45) * extent])
    step = 0.5 * pitch
    dep = _Deposits()
    if label == "numu_cc":
        _muon(rng, dep, vtx, step)
    elif label == "nue_cc":
        _electron(rng, dep, vtx, step)
    _hadrons(rng, dep, vtx, step, need_some=(label == "nc"))
    origin = np.zeros(3)
    mev = _project(np.concatenate(dep.pts), np.concatenate(dep.mev), origin, cfg.res, pitch, rng, diffusion)
    mip_adc = MIP_MEV_PER_CM * pitch * cfg.gain_adc_per_mev
    views, drawn = readout(mev * cfg.gain_adc_per_mev, det, det_rng, mip_adc)
    visible = _visible(dep, origin, cfg.res, pitch)
    concepts = _truth_concepts(label, dep, visible)
    return {
        "views": views,
        "label": label,
        "concepts": concepts,
        "rationale": describe(label, concepts, rng),
        "lepton_energy": next((t["energy"] for k, t in dep.particles if k in ("muon", "electron")), 0.0),
        "n_particles": len(dep.particles),
        "vertex": vtx,
        "detector": det.to_dict() | drawn | {"pitch_cm": pitch, "diffusion_px": diffusion},
    }


def simulate_table(n: int, res: int = 512, seed: int = 0, start: int = 0, **overrides) -> pa.Table:
    """Events ``start .. start+n-1`` of the run ``seed`` as a contract-1 table with truth columns."""
    cfg = SimConfig(n=n, res=res, seed=seed, start=start, **overrides)
    return _table(cfg, range(start, start + n))


def _table(cfg: SimConfig, indices: range) -> pa.Table:
    events = [simulate_event(cfg, i) for i in indices]
    cols = encode_views(np.stack([e["views"] for e in events]))
    vtx = np.stack([e["vertex"] for e in events]).astype(np.float32)
    return pa.table({
        "event_id": pa.array([f"sim{cfg.seed}-{i:08d}" for i in indices], pa.string()),
        "xz": cols["xz"], "yz": cols["yz"], "height": cols["height"], "width": cols["width"],
        "label": pa.array([e["label"] for e in events], pa.string()),
        "concepts": pa.array([e["concepts"] for e in events], pa.list_(pa.string())),
        "rationale": pa.array([e["rationale"] for e in events], pa.string()),
        "lepton_energy_mev": pa.array([e["lepton_energy"] for e in events], pa.float32()),
        "n_particles": pa.array([e["n_particles"] for e in events], pa.int32()),
        "vertex_x_cm": vtx[:, 0], "vertex_y_cm": vtx[:, 1], "vertex_z_cm": vtx[:, 2],
        **{k: pa.array([e["detector"][k] for e in events], pa.int32() if k == "cosmics_overlaid" else pa.float32())
           for k in events[0]["detector"]},
    })


def run(cfg: SimConfig, progress_bar: bool = True) -> list[Path]:
    """``nudistill simulate``: write the events to ``cfg.out`` and the resolved config as OUT/_simulate.json."""
    from nudistill.config import save_config

    if cfg.out is None:
        raise UserError("--out is required: the directory to write the events to")
    files = write_dataset(cfg, cfg.out, progress_bar)
    save_config(cfg, Path(cfg.out) / "_simulate.json")
    return files


def write_dataset(cfg: SimConfig, out_dir: str | Path, progress_bar: bool = True) -> list[Path]:
    """Write events as zstd Parquet shards ``part-00000.parquet`` ... (:func:`~nudistill.events.write_events`);
    returns the files written."""
    from nudistill.log import progress

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    bar = progress(total=cfg.n, desc="simulate", unit="ev", disable=None if progress_bar else True)
    for shard, lo in enumerate(range(cfg.start, cfg.start + cfg.n, cfg.rows_per_file)):
        hi = min(lo + cfg.rows_per_file, cfg.start + cfg.n)
        table = _table(cfg, range(lo, hi))
        path = out / f"part-{shard:05d}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        write_events(table, tmp)
        tmp.replace(path)  # atomic: readers never see a half-written shard
        files.append(path)
        bar.update(hi - lo)
    bar.close()
    return files
