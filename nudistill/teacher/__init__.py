"""The VLM teacher (issue 4): loading (+4-bit, +adapters), prompt, constrained scoring, rationales,
calibration, a tiny Mllama build and fine-tuning.

    from nudistill.teacher import load_teacher, RationalePolicy
    t = load_teacher("teacher/")            # a directory with HF files + teacher.json, or a hub id
    probs = t.score(views)                  # (B, 2, H, W) uint8 -> (B, 3) float32
"""

from nudistill.teacher.core import Teacher
from nudistill.teacher.loading import load_teacher
from nudistill.teacher.prompt import DEFAULT_PHRASES
from nudistill.teacher.rationale import RationalePolicy
from nudistill.teacher.spec import TeacherSpec

__all__ = ["DEFAULT_PHRASES", "RationalePolicy", "Teacher", "TeacherSpec", "load_teacher"]
