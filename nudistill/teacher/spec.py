"""A teacher directory's settings (``teacher.json``) and the teacher id that they, the weights and the prompt make.

A labels directory belongs to one teacher id (docs/contracts.md, contract 2), so anything that changes the
probabilities must change the id: :func:`teacher_id` is the one place it is computed. Weight files in a hub
snapshot are symlinks to blobs named by their sha256, which is used as is; other files are hashed by
content (files over ``FULL_HASH_LIMIT`` by size plus their first and last 8 MiB, so an 11B checkpoint does
not cost minutes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from nudistill import CLASSES
from nudistill.errors import UserError
from nudistill.teacher.inputs import DEFAULT_PHRASES, PROMPT_VERSION

SPEC_FILE = "teacher.json"


@dataclass
class TeacherSpec:
    """The teacher's scoring settings, stored as ``teacher.json`` beside the HF files."""

    prompt_version: str = PROMPT_VERSION
    """Version of the prompt text in nudistill.teacher.inputs."""
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


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
FULL_HASH_LIMIT = 512 * 2**20
_EDGE = 8 * 2**20
_SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")


def file_digest(path: Path) -> str:
    """sha256 of one weight file (or the blob name a hub snapshot already gives it)."""
    target = path.resolve()
    if path.is_symlink() and _SHA256_NAME.match(target.name):
        return target.name
    h = hashlib.sha256()
    size = target.stat().st_size
    with open(target, "rb") as f:
        if size <= FULL_HASH_LIMIT:
            for chunk in iter(lambda: f.read(2**20), b""):
                h.update(chunk)
        else:
            h.update(str(size).encode())
            h.update(f.read(_EDGE))
            f.seek(size - _EDGE)
            h.update(f.read(_EDGE))
    return h.hexdigest()


def weights_digest(directory: str | Path | None) -> str:
    """Digest of every weight file under ``directory`` (sorted by relative path); '' for None."""
    if directory is None:
        return ""
    root = Path(directory)
    files = sorted(p for p in root.rglob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file()
                   and "checkpoint" not in p.relative_to(root).parts[0])
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.relative_to(root)}={file_digest(p)};".encode())
    return h.hexdigest()


def weights_digests(base_dir: str | Path | None, adapter_dir: str | Path | None) -> tuple[str, str]:
    """(base, adapter) weight digests, the slow part of :func:`teacher_id` (a loaded teacher keeps them)."""
    return weights_digest(base_dir), weights_digest(adapter_dir)


def teacher_id(spec: TeacherSpec, prompt: str, quantize: str | None, digests: tuple[str, str]) -> str:
    """16 hex characters over weights, adapter, prompt (and PROMPT_VERSION), label phrases, temperature and
    quantization: everything that shapes the teacher's probabilities. ``digests`` from :func:`weights_digests`."""
    blob = json.dumps(dict(weights=digests[0], adapter=digests[1], prompt=f"{PROMPT_VERSION}\n{prompt}",
                           phrases=list(spec.phrases()), temperature=repr(float(spec.temperature)), quantize=quantize),
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
