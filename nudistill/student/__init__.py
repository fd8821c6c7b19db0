"""Students: the CNN family (registry), checkpoints, data join, distillation losses and the training loop.

Public API (used by export, the demo and the report)::

    m = create_student(name, **overrides)      # m.cfg: StudentConfig; m(xz, yz) -> (class_logits, concept_logits)
    save_student(m, dir, extra_meta=None)      # dir/model.safetensors + dir/config.json
    m = load_student(dir)                      # eval mode; UserError naming the file when bad
"""

from nudistill.student.checkpoint import load_student, read_config, save_student
from nudistill.student.models import StudentConfig, TwoViewStudent
from nudistill.student.registry import DEFAULT_STUDENT, create_student, list_students, student_config

__all__ = ["DEFAULT_STUDENT", "StudentConfig", "TwoViewStudent", "create_student", "list_students",
           "load_student", "read_config", "save_student", "student_config"]
