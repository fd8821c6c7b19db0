"""The student registry: ``create_student(name, **overrides)`` (STYLE 4, after timm's ``@register_model``).

Each entry is a function returning the default :class:`StudentConfig` fields of one student, including its
input size and preprocessing. Latencies quoted below are ONNX Runtime, fp32, batch 1, one thread, 512²
two views on this 2-core machine (``bench/online.py`` measures them for every entry; these on 2026-11-24).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from nudistill.errors import UserError
from nudistill.student.models import MBV2_STAGES, StudentConfig, TwoViewStudent

_REGISTRY: dict[str, Callable[[], dict]] = {}

DEFAULT_STUDENT = "lean_pool4"
"""The latency-lean default (the online budget: p99 <= 5 ms at 512², batch 1, one thread)."""

LEAN_STAGES = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 2, 2), (4, 96, 1, 1))
"""A shortened MobileNetV2 stage list for the lean students: total stride 16 after the stem."""

POOL4_STAGES = ((1, 16, 1, 1), (2, 24, 2, 2)) + LEAN_STAGES[2:]
"""The default's stages: the second stage, whose first block expands at the stem's 64² resolution, expands by 2,
not 4. On the default demo's labels (one training each, 500 test events): 0.916 / half 0.910 against 0.912 /
0.900, every shift of the suite within -0.030 (noise RMS 4 ADC; -0.018 before, gain x0.5), concept macro AUC
0.951 against 0.952; on ten independent 300-event sets (other pitch, gain, diffusion, noise, cosmics, class
mix) a mean 0.890 against 0.890; `nudistill bench` p50 1.37-1.40 against 1.50-1.53 ms, alternating."""


def _lean(**changes) -> dict:
    """The lean family: width 0.5, shortened stages, siamese weights, small head; ``changes`` on top."""
    # meanmax pooling: +0.014 concept macro AUC on 512² simulated events (bench/distill.py, 4 epochs).
    # Two lit neighbours after the 2x pool (README "Robustness"): on the default demo's labels, with the
    # 1.5-4 sigma threshold range, 1 % noise hits -0.014 (was -0.10), noise RMS 2/4 -0.04/-0.06 (was -0.12).
    # No squeeze-and-excitation: on the default demo's labels (8 epochs, one training each) test 0.884 without,
    # 0.886 with, cosmics within 0.004 (the noise RMS 4 ADC shift spread -0.008..-0.072 over trainings of
    # either while BN statistics came from clean batches); ORT runs SE's channel means and gates outside its
    # blocked NCHWc layout: lean_pool4 p50 1.14 ms without against 1.38 ms with, lean_stride4 5.3 against
    # 6.4-6.7 ms (bench/online.py --set se=...).
    return dict(width_mult=0.5, stages=LEAN_STAGES, last_channels=256, head_hidden=128, shared=True, se=False,
                global_pool="meanmax", isolated_filter=1, isolated_min_neighbours=2, noise_floor=True) | changes


def register(fn: Callable[[], dict]) -> Callable[[], dict]:
    """Decorator: register a student by its function name."""
    _REGISTRY[fn.__name__] = fn
    return fn


def list_students() -> list[str]:
    """Registered student names, default first."""
    return sorted(_REGISTRY, key=lambda n: (n != DEFAULT_STUDENT, n))


def student_config(name: str, **overrides) -> StudentConfig:
    """The resolved config of student ``name`` with ``overrides`` applied (unknown keys are an error)."""
    if name not in _REGISTRY:
        raise UserError(f"unknown student {name!r}; choose one of {', '.join(list_students())}")
    fields = _REGISTRY[name]()
    unknown = set(overrides) - set(StudentConfig.__dataclass_fields__) - {"name", "overrides"}
    if unknown:
        raise UserError(f"student {name!r} has no option(s) {', '.join(sorted(unknown))}")
    fields.update(overrides)
    if "pool" in overrides and "isolated_filter" not in overrides and fields.get("isolated_filter"):
        # a smaller pool keeps the filter, at the largest pre-pool factor that still divides the new pool
        fields["isolated_filter"] = math.gcd(int(fields["isolated_filter"]), int(fields["pool"]))
    return StudentConfig(name=name, overrides=dict(overrides), **fields)


def create_student(name: str = DEFAULT_STUDENT, **overrides) -> TwoViewStudent:
    """Build a freshly initialised student; ``model.cfg`` holds its config."""
    return TwoViewStudent(student_config(name, **overrides))


@register
def siamese_mbv2() -> dict:
    """The paper's baseline: siamese MobileNetV2 branches with SE at full resolution, concatenated (~3.4M params).

    ~80 ms per event at 512²: far over the online budget; kept as the accuracy reference.
    """
    return dict(pool=1, stem_stride=2, width_mult=1.0, last_channels=1280, head_hidden=0, shared=True,
                stages=MBV2_STAGES[:-1])  # without the 320-channel stage: SE blocks add ~1M parameters


@register
def lean_stride4() -> dict:
    """Full-resolution input, stride-4 stem, width 0.5, shared weights (~0.09 GMAC; p50 ~5.3 ms, p99 6.4-8.5 ms)."""
    return _lean(pool=1, stem_stride=4)


@register
def lean_pool4() -> dict:
    """The default: max-pool 512² -> 128² inside forward, through-going cosmic muons cleared on 64² cells
    (:mod:`nudistill.student.cosmic_graph`), then the lean net (trains ~16x faster than lean_stride4).

    In the demo's trained student of 2710951 (:data:`LEAN_STAGES`, one session, ONNX Runtime, one thread): p50
    1.91 ms; 1.41 ms without the tagger (``--set cosmic_tagger=0``), 1.80 ms without the concept probe. Since
    then the second stage expands by 2 (:data:`POOL4_STAGES`): 9 % faster at the same accuracy.
    """
    return _lean(pool=4, stem_stride=2, isolated_filter=2, cosmic_tagger=2, stages=POOL4_STAGES)


@register
def lean_pool2() -> dict:
    """Max-pool 512² -> 256², stride-2 stem: more resolution than the default, ~4x its compute (p50 ~3.8 ms)."""
    return _lean(pool=2, stem_stride=2, isolated_filter=2)


@register
def tiny_pool8() -> dict:
    """Max-pool 512² -> 64², the cheapest student: for the trade-off table and fast tests (p50 ~0.6 ms)."""
    return _lean(pool=8, stem_stride=2, stages=LEAN_STAGES[:-1], last_channels=128, head_hidden=64, isolated_filter=2)
