"""``teacher.json``: what a teacher directory adds to its HF files (prompt version, phrases, temperature)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from nudistill import CLASSES
from nudistill.errors import UserError
from nudistill.teacher.prompt import DEFAULT_PHRASES, PROMPT_VERSION

SPEC_FILE = "teacher.json"


@dataclass
class TeacherSpec:
    """The teacher's scoring settings, stored as ``teacher.json`` beside the HF files."""

    prompt_version: str = PROMPT_VERSION
    """Version of the prompt text in nudistill.teacher.prompt."""
    label_phrases: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PHRASES))
    """Words the teacher says for each class, keyed by class name."""
    temperature: float = 1.0
    """Softmax temperature over summed label-phrase log-probs (fitted by `teacher calibrate`)."""
    view_size: int | None = None
    """Max-pool each view to this side before the image processor (keeps one-pixel tracks); None: processor only."""
    max_new_tokens: int = 48
    """Rationale length limit in tokens."""
    base: str | None = None
    """For an adapter-only directory: the base model (path or hub id) the adapter applies to."""
    adapter: str | None = None
    """A peft adapter directory, relative to this directory or absolute, loaded by default."""
    quantize: str | None = None
    """Default quantization of the base when loading ("4bit" after --qlora)."""

    def __post_init__(self):
        if sorted(self.label_phrases) != sorted(CLASSES):
            raise UserError(f"{SPEC_FILE}: label_phrases must name exactly the classes {list(CLASSES)}")
        if any(not str(p).strip() for p in self.label_phrases.values()):
            raise UserError(f"{SPEC_FILE}: label phrases must not be empty")
        if not self.temperature > 0:
            raise UserError(f"{SPEC_FILE}: temperature must be positive, got {self.temperature}")
        if self.quantize not in (None, "4bit"):
            raise UserError(f"{SPEC_FILE}: quantize must be null or \"4bit\", got {self.quantize!r}")

    def phrases(self) -> list[str]:
        """Label phrases in CLASSES order."""
        return [self.label_phrases[c] for c in CLASSES]

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / SPEC_FILE
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> TeacherSpec:
        """Read ``teacher.json``; a plain HF checkpoint without one gets the defaults."""
        path = Path(directory) / SPEC_FILE
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"{path} has unknown keys {unknown}")
        return cls(**data)
