"""The VLM teacher (the study's fine-tuned LLaMA 3.2 Vision, arXiv 2509.08461): loading (+4-bit, +adapters),
prompt, constrained scoring, rationales, calibration, a tiny Mllama build and fine-tuning.

- :mod:`.inputs`     the prompt, label phrases and their token table; views pooled and encoded for the processor;
- :mod:`.xattn`      Mllama's cross-attention row masking as Meta's reference computes it;
- :mod:`.prefix`     the prompt's text before the images, run through the decoder once per teacher;
- :mod:`.spec`       ``teacher.json`` and the teacher id (the one function that computes it);
- :mod:`.loading`    a directory or hub id to a :class:`Teacher` (+4-bit, +adapter), or only its id;
- :mod:`.core`       the :class:`Teacher`: constrained scoring, rationales and the policy that rations them;
- :mod:`.data`       labelled events read into memory (pooled views);
- :mod:`.calibrate`  temperature scaling and held-out evaluation;
- :mod:`.trainer`    one fine-tuning run's model, optimiser, loss and checkpoints, and the vision warm-up;
- :mod:`.finetune`   the fine-tuning config and loop (full, LoRA, QLoRA; resumable);
- :mod:`.tiny`       a tiny Mllama teacher built on a CPU in a second.

    from nudistill.teacher import load_teacher, RationalePolicy
    t = load_teacher("teacher/")            # a directory with HF files + teacher.json, or a hub id
    probs = t.score(views)                  # (B, 2, H, W) uint8 -> (B, 3) float32
"""

from nudistill.teacher.core import RationalePolicy, Teacher
from nudistill.teacher.inputs import DEFAULT_PHRASES
from nudistill.teacher.loading import load_teacher
from nudistill.teacher.spec import TeacherSpec

__all__ = ["DEFAULT_PHRASES", "RationalePolicy", "Teacher", "TeacherSpec", "load_teacher"]
