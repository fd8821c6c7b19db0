"""The two-view student network and its config: raw uint8 pixel maps in, class and concept logits out.

All preprocessing lives in ``forward`` so that the ONNX export carries it (docs/contracts.md, contract 3):
uint8 ``xz``/``yz`` ``(B, H, W)``, both views as one batch -> noise floor -> first max-pool (in uint8) -> float ->
isolated-hit filter -> max-pool to ``pool`` -> cosmic tagger (through-going muons cleared,
:mod:`nudistill.student.cosmic_graph`) -> log scale of the ADC (a look-up) -> CNN -> neck -> class head; concepts
from the concept head on the neck or, once fitted on truth (:mod:`nudistill.student.concept_probe`), from a probe on
the neck and each view's MIP-relative charge spectrum (:mod:`nudistill.student.spectrum`).

Why the isolated-hit filter (after a first 2x max-pool, where it is 5x cheaper): a max-pool by 4 turns one
noise pixel into a lit 4x4 cell, so 0.3 % noisy pixels lit ~5 % of the pooled map and a student trained at one
noise level called every event numu_cc. Tracks and showers are connected at the readout pitch; a pixel with no
lit neighbour is noise.

Why max-pool first: events are sparse (~1% of pixels lit) and tracks are one pixel wide with
~40 ADC; a strided convolution or an average pool dilutes or skips them, a max-pool keeps every track
while cutting the pixels (and the compute) by ``pool**2``. The log scale keeps thin tracks (~40 ADC) and
saturated showers (255) within a factor ~1.5 of each other instead of 6.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from nudistill import CLASSES, CONCEPTS
from nudistill.detector import NOISE_FLOOR_DROP, NOISE_FLOOR_DROP_TWO, NOISE_FLOOR_LADDER, NOISE_FLOOR_OCCUPANCY
from nudistill.errors import UserError
from nudistill.student.cosmic_graph import CosmicTagger
from nudistill.student.blocks import ConvNormAct, InvertedResidual, make_divisible
from nudistill.student.spectrum import ChargeSpectrum

# MobileNetV2 stages: (expansion t, channels c, repeats n, first stride s), Sandler et al. 2018, Table 2.
MBV2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)
SCALES = ("log", "sqrt", "linear")
POOLS = ("mean", "meanmax")
NORMS = ("bn", "gn", "none")


@dataclass
class StudentConfig:
    """Everything needed to rebuild a student; saved as ``config.json`` beside its weights."""

    name: str
    """Registry name the config came from."""
    height: int = 512
    """Input pixel-map height (H) of both views."""
    width: int = 512
    """Input pixel-map width (W, z along the beam) of both views."""
    classes: tuple[str, ...] = CLASSES
    """Class order of the class logits."""
    concepts: tuple[str, ...] = CONCEPTS
    """Concept order of the concept logits."""
    pool: int = 1
    """Max-pool factor applied to the raw maps inside forward (1 = none)."""
    isolated_filter: int = 0
    """Zero lit pixels with no lit 8-neighbour after a max-pool by this factor (0 = off; must divide pool).
    After 2x it costs ~0.15 ms at 512² (ONNX, one thread) against ~0.75 ms at full resolution."""
    noise_floor: bool = False
    """Raise each map's zero-suppression floor where noise lights it densely (:class:`NoiseFloor`), before the
    isolated-hit filter. Off in configs saved before it existed, so they rebuild unchanged."""
    isolated_min_neighbours: int = 1
    """The filter keeps a lit pixel only when at least this many of its 8 neighbours are lit (1-8). After a 2x
    pool, 2 keeps the inside of every track (a line has two neighbours) but removes pairs of noise pixels."""
    scale: str = "log"
    """ADC scaling: log (log1p(x)/log 256), sqrt (sqrt(x/255)) or linear (x/255)."""
    stem_channels: int = 32
    """Stem output channels before the width multiplier."""
    stem_stride: int = 2
    """Stride of the stem convolution (kernel = max(3, stride + 1))."""
    width_mult: float = 1.0
    """Channel multiplier for every layer (MobileNet width)."""
    stages: tuple[tuple[int, int, int, int], ...] = MBV2_STAGES
    """Inverted-residual stages: (expansion, channels, repeats, first stride)."""
    last_channels: int = 1280
    """Channels of the final 1x1 convolution of each branch (not width-scaled below this)."""
    se: bool = True
    """Squeeze-and-excitation in every inverted residual."""
    shared: bool = False
    """One backbone for both views (siamese weights) instead of one per view."""
    norm: str = "bn"
    """Norm layer: bn (folds into conv at export), gn or none."""
    bn_momentum: float = 0.1
    """BatchNorm running-stat momentum (stats are also recomputed before eval, see train.py)."""
    cosmic_tagger: int = 0
    """Clear through-going cosmic muons inside forward (:class:`~nudistill.student.cosmic_graph.CosmicTagger`),
    on the pooled maps coarsened by this factor (0 = off)."""
    global_pool: str = "mean"
    """Spatial pooling of each branch: mean, or meanmax (mean and max concatenated: keeps small local features)."""
    head_hidden: int = 256
    """Hidden units of the merged head (0 = linear heads)."""
    dropout: float = 0.1
    """Dropout before the output layers."""
    concept_probe: int = 0
    """Hidden units of the concept probe that replaces the distilled concept head once fitted on truth
    (:mod:`nudistill.student.concept_probe`): a small MLP on the neck's features and each view's MIP-relative
    charge spectrum (:mod:`nudistill.student.spectrum`). 0: the concept head trained with the class head."""
    logit_scale: float = 1.0
    """Multiplies the class logits: 1/T of the calibration against truth (:mod:`nudistill.student.calibrate`)."""
    logit_bias: tuple[float, ...] = ()
    """Added to the class logits after ``logit_scale``, one per class, fitted by the calibration (empty: none)."""
    overrides: dict = field(default_factory=dict)
    """The overrides passed to create_student on top of the registry defaults."""

    def __post_init__(self):
        self.classes, self.concepts = tuple(self.classes), tuple(self.concepts)
        self.stages = tuple(tuple(int(v) for v in s) for s in self.stages)
        self.logit_scale, self.logit_bias = float(self.logit_scale), tuple(float(v) for v in self.logit_bias or ())
        if not (math.isfinite(self.logit_scale) and self.logit_scale > 0):
            raise UserError(f"logit_scale must be positive, got {self.logit_scale}")
        if self.logit_bias and len(self.logit_bias) != len(self.classes):
            raise UserError(f"logit_bias has {len(self.logit_bias)} values for {len(self.classes)} classes")
        if self.height <= 0 or self.width <= 0:
            raise UserError(f"student input size must be positive, got {self.height}x{self.width}")
        if self.pool < 1 or self.height % self.pool or self.width % self.pool:
            raise UserError(f"pool={self.pool} must be >= 1 and divide the input size {self.height}x{self.width}")
        if self.scale not in SCALES:
            raise UserError(f"scale {self.scale!r} is not one of {', '.join(SCALES)}")
        if self.global_pool not in POOLS:
            raise UserError(f"global_pool {self.global_pool!r} is not one of {', '.join(POOLS)}")
        if self.norm not in NORMS:
            raise UserError(f"norm {self.norm!r} is not one of {', '.join(NORMS)}")
        if self.isolated_filter < 0 or (self.isolated_filter and self.pool % self.isolated_filter):
            raise UserError(f"isolated_filter={self.isolated_filter} must be 0 or divide pool={self.pool}")
        if not 1 <= self.isolated_min_neighbours <= 8:
            raise UserError(f"isolated_min_neighbours={self.isolated_min_neighbours} must lie between 1 and 8")
        if self.concept_probe < 0:
            raise UserError(f"concept_probe must not be negative, got {self.concept_probe}")
        if self.width_mult <= 0 or self.stem_stride < 1:
            raise UserError("width_mult must be positive and stem_stride >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


def scale_adc(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Map float ADC counts in [0, 255] to about [0, 1]."""
    if kind == "log":
        return torch.log1p(x) * (1.0 / math.log(256.0))
    if kind == "sqrt":
        return torch.sqrt(x * (1.0 / 255.0))
    return x * (1.0 / 255.0)


def scale_by_table(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Float ADC counts (V, 1, h, w), integers 0-255 as every pooled map holds, -> ``table[x]`` (V, 1, h, w).

    ``table`` is :func:`scale_adc` of 0..255: the same values by a look-up, which ONNX Runtime runs in 0.04 ms at
    2x128², against 0.07 ms for its Log (and which matches torch exactly, where its Log differs by ~6e-8).
    """
    idx = x.to(torch.int64).flatten(1)  # (V, h*w)
    return table.expand(idx.shape[0], -1).gather(1, idx).view_as(x)


def suppress_isolated(x: torch.Tensor, min_neighbours: int = 1, floor: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 1, H, W) float: zero pixels with fewer than ``min_neighbours`` lit 8-neighbours.

    The torch twin of :func:`nudistill.detector.suppress_isolated`. An unlit pixel stays 0 whatever its
    neighbours, so the test may count the pixel itself: lit pixels in the 3x3 window > min_neighbours.
    """
    # ADC counts are integers >= 0: clamped, 1 where lit. Below its map's floor (V, 1, 1, 1) a pixel is not lit:
    # zeroed, and no one's neighbour.
    lit = x.clamp(0.0, 1.0) if floor is None else (x >= floor.clamp(min=1.0)).to(x.dtype)
    in_window = F.avg_pool2d(lit, 3, stride=1, padding=1, count_include_pad=True) * 9.0  # (B, 1, H, W)
    keep = (in_window > min_neighbours + 0.5).to(x.dtype)
    return x * (keep if floor is None else lit * keep)


class NoiseFloor(nn.Module):
    """(V, 1, H, W) ADC (uint8 or float) -> (V, 1, 1, 1) float: each map's floor, the torch twin of
    :func:`nudistill.detector.noise_floor` (the same ladder, rule and sample; counts, so both give the same levels).

    Built for a known ``height`` x ``width`` (the student's input), its occupancy cap is a constant of the graph
    instead of nodes computed from the input's shape on every call.
    """

    def __init__(self, height: int | None = None, width: int | None = None):
        super().__init__()
        ladder = NOISE_FLOOR_LADDER  # constants, not weights: outside the state dict
        self.register_buffer("levels", torch.tensor([max(lo, 1) for lo in ladder], dtype=torch.float32)
                             .view(1, -1, 1, 1), persistent=False)
        self.register_buffer("steps", torch.tensor([hi - lo for lo, hi in zip(ladder[:-1], ladder[1:])],
                                                   dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.shape = (height, width) if height and width else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sub = x[..., ::8, ::8].to(torch.float32)  # (V, 1, h, w): sampled first, so only the 1/64 read is cast
        h, w = self.shape or x.shape[-2:]
        cap = NOISE_FLOOR_OCCUPANCY * ((h + 7) // 8) * ((w + 7) // 8)
        lit = (sub >= self.levels).to(sub.dtype).sum((2, 3), keepdim=True)  # (V, L, 1, 1): every level in one pass
        below, above = lit[:, :-1], lit[:, 1:]
        two_up = torch.cat([lit[:, 2:], lit[:, -1:]], 1)  # the count two levels up (the last step: one)
        steep = (below > NOISE_FLOOR_DROP * above) | (below == above) | (below > NOISE_FLOOR_DROP_TWO * two_up)
        noise = ((below > cap) & steep).to(sub.dtype)  # (V, L-1, 1, 1)
        raised = (torch.cumsum(1.0 - noise, dim=1) == 0).to(sub.dtype)  # every level below passed too
        return (raised * self.steps).sum(1, keepdim=True)  # few nodes: each costs ORT a dispatch


def max_pool_uint8(x: torch.Tensor, k: int, height: int, width: int) -> torch.Tensor:
    """uint8 (V, 1, H, W) -> float (V, 1, H/k, W/k): the max-pool by ``k`` of the maps, cast after pooling.

    ``height`` x ``width`` is H x W as Python ints (the student's config), so the traced graph has no shape
    arithmetic. The max commutes with the cast. By 2 it runs as two element-wise maxima of uint8 halves (rows,
    then columns): ONNX Runtime's uint8 MaxPool is 7x slower than its float one, and casting first moves 4x the
    bytes. Measured at 512², two views, one thread: 0.155 ms against 0.245 ms for cast then MaxPool.
    """
    if k != 2 or height % 2 or width % 2:
        return F.max_pool2d(x.to(torch.float32), k) if k > 1 else x.to(torch.float32)
    rows = x.reshape(-1, height // 2, 2 * width)  # rows 2i and 2i+1 side by side
    rows = torch.maximum(rows[..., :width], rows[..., width:])  # (V, H/2, W)
    left, right = rows.reshape(-1, 1, height // 2, width // 2, 2).unbind(-1)
    return torch.maximum(left, right).to(torch.float32)


class Backbone(nn.Module):
    """One view's feature extractor: stem -> inverted residual stages -> 1x1 conv -> global mean."""

    def __init__(self, cfg: StudentConfig):
        super().__init__()
        w, norm, mom = cfg.width_mult, cfg.norm, cfg.bn_momentum
        cin = make_divisible(cfg.stem_channels * w)
        layers: list[nn.Module] = [ConvNormAct(1, cin, max(3, cfg.stem_stride + 1), cfg.stem_stride, norm=norm, momentum=mom)]
        for t, c, n, s in cfg.stages:
            cout = make_divisible(c * w)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t, cfg.se, norm, mom))
                cin = cout
        self.out_channels = make_divisible(cfg.last_channels * max(1.0, w)) if cfg.last_channels else cin
        if cfg.last_channels:
            layers.append(ConvNormAct(cin, self.out_channels, 1, norm=norm, momentum=mom))
        self.features = nn.Sequential(*layers)
        self.meanmax = cfg.global_pool == "meanmax"
        self.feature_dim = self.out_channels * (2 if self.meanmax else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)  # (B, C, h, w)
        if self.meanmax:  # a proton stub is a few pixels: the max keeps it, the mean dilutes it
            return torch.cat([f.mean((2, 3)), f.amax((2, 3))], dim=1)  # (B, 2C)
        return f.mean((2, 3))  # (B, C)


class TwoViewStudent(nn.Module):
    """Two views, one (shared) or two backbones, features concatenated, class and concept heads.

    ``forward(xz, yz)`` takes uint8 ``(B, H, W)`` maps and returns ``(class_logits (B, 3),
    concept_logits (B, K))``. ``self.cfg`` is the :class:`StudentConfig`.
    """

    def __init__(self, cfg: StudentConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone_xz = Backbone(cfg)
        self.backbone_yz = self.backbone_xz if cfg.shared else Backbone(cfg)
        feat = 2 * self.backbone_xz.feature_dim
        if cfg.head_hidden:
            self.neck = nn.Sequential(nn.Linear(feat, cfg.head_hidden), nn.ReLU(inplace=True), nn.Dropout(cfg.dropout))
            feat = cfg.head_hidden
        else:
            self.neck = nn.Dropout(cfg.dropout)
        self.class_head = nn.Linear(feat, len(cfg.classes))
        self.concept_head = nn.Linear(feat, len(cfg.concepts))
        self.spectrum: ChargeSpectrum | None = None
        self.probe: nn.Sequential | None = None
        if cfg.concept_probe:
            self.attach_concept_probe(cfg.concept_probe)
        self.tagger = CosmicTagger(cfg.height // cfg.pool, cfg.width // cfg.pool, pool=cfg.cosmic_tagger) \
            if cfg.cosmic_tagger else None
        self.floor = NoiseFloor(cfg.height, cfg.width) if cfg.noise_floor else None
        self.register_buffer("adc_table", scale_adc(torch.arange(256, dtype=torch.float32), cfg.scale).view(1, -1),
                             persistent=False)  # a constant of the config, not a weight
        self.calibrated = cfg.logit_scale != 1.0 or any(cfg.logit_bias)
        bias = torch.tensor(cfg.logit_bias or [0.0] * len(cfg.classes), dtype=torch.float32)
        self.register_buffer("logit_bias", bias, persistent=False)  # set by calibration, kept in config.json

    def attach_concept_probe(self, hidden: int) -> None:
        """Add a concept probe of ``hidden`` units (untrained: :mod:`nudistill.student.concept_probe` fits it); its
        outputs replace the concept head's, and ``cfg.concept_probe`` records it."""
        self.cfg.concept_probe = hidden
        self.spectrum = ChargeSpectrum(self.cfg.height // self.cfg.pool, self.cfg.width // self.cfg.pool)
        self.probe = nn.Sequential(nn.Linear(self.class_head.in_features + 2 * ChargeSpectrum.dim, hidden), nn.ReLU(),
                                   nn.Linear(hidden, len(self.cfg.concepts)))

    def pooled(self, views: torch.Tensor) -> torch.Tensor:
        """uint8 (V, H, W) -> float (V, 1, H/pool, W/pool) ADC counts: isolated hits removed, max-pooled."""
        pool, first = self.cfg.pool, self.cfg.isolated_filter
        x = views.unsqueeze(1)  # (V, 1, H, W) uint8
        floor = self.floor(x) if self.floor is not None else None  # from the full-resolution map
        if first:
            # the max of pixels at or above a floor is the max if it is at or above it: the floor commutes with
            # a max-pool, so it is applied after it, inside the filter (no pass of its own)
            x = max_pool_uint8(x, first, self.cfg.height, self.cfg.width)
            x = suppress_isolated(x, self.cfg.isolated_min_neighbours, floor)
            pool //= first
        else:
            x = x.to(torch.float32)
        if pool > 1:
            x = F.max_pool2d(x, pool)  # keeps one-pixel tracks that a stride would skip
        if floor is not None and not first:
            x = x * (x >= floor).to(x.dtype)
        return x

    def encode(self, xz: torch.Tensor, yz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The neck's features (B, hidden) and, with a concept probe, both views' charge spectra (B, 2 * dim)."""
        b = xz.shape[0]
        x = self.pooled(torch.cat([xz, yz], 0))  # (2B, 1, h, w): both views as one batch, one front end
        if self.tagger is not None:
            x = self.tagger(x)
        spectra = None
        if self.spectrum is not None:
            s = self.spectrum(x)  # (2B, dim) on ADC counts, before the log scale
            spectra = torch.cat([s[:b], s[b:]], 1)
        x = scale_by_table(x, self.adc_table)  # scale_adc(x, self.cfg.scale) by a look-up
        # one call per view even with shared weights: as one batch of 2B, int8 quantization gives both views one
        # set of activation ranges, and its agreement with fp32 fell from >= 0.98 to 0.977 (tests/test_export.py)
        f = torch.cat([self.backbone_xz(x[:b]), self.backbone_yz(x[b:])], dim=1)
        return self.neck(f), spectra  # (B, hidden)

    def forward(self, xz: torch.Tensor, yz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, spectra = self.encode(xz, yz)
        logits = self.class_head(h)
        if self.calibrated:  # two nodes in the graph, none for an uncalibrated student
            logits = logits * self.cfg.logit_scale + self.logit_bias
        if self.probe is not None:
            return logits, self.probe(torch.cat([h, spectra], 1))
        return logits, self.concept_head(h)
