"""Student checkpoints: ``model.safetensors`` (weights) + ``config.json`` (StudentConfig + metadata).

The format is what ``nudistill export`` reads; it holds no pickles, so loading a checkpoint runs no code.
"""

from __future__ import annotations

import json
from pathlib import Path

from nudistill import __version__
from nudistill.errors import UserError

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_student(model, directory: str | Path, extra_meta: dict | None = None) -> Path:
    """Write ``directory/model.safetensors`` and ``directory/config.json``; return the directory.

    ``extra_meta`` (JSON-ready: teacher id, metrics, epoch ...) is stored under ``"meta"``.
    Files are written to temporaries and renamed, so a crash never leaves a half checkpoint.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "module", model)  # unwrap DDP
    # Shared backbones appear twice in the state dict; safetensors refuses aliased tensors, so store once.
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()
             if not (model.cfg.shared and k.startswith("backbone_yz."))}
    doc = {"student": model.cfg.to_dict(), "meta": extra_meta or {}, "nudistill_version": __version__}
    tmp_w = directory / (WEIGHTS + ".tmp")
    save_file(state, str(tmp_w), metadata={"format": "pt", "student": model.cfg.name})
    tmp_w.replace(directory / WEIGHTS)
    write_config(directory, doc)
    return directory


def write_config(directory: str | Path, doc: dict) -> None:
    """Write ``doc`` (``student``, ``meta``, ``nudistill_version``) as ``directory/config.json``, by rename."""
    tmp = Path(directory) / (CONFIG + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tmp.replace(Path(directory) / CONFIG)


def read_config(directory: str | Path) -> dict:
    """The parsed ``config.json`` of a checkpoint (``student``, ``meta``, ``nudistill_version``)."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise UserError(f"{path} does not exist; a student checkpoint is a directory with {WEIGHTS} and {CONFIG}")
    try:
        doc = json.loads(path.read_text())
        doc["student"]["name"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path} is not a student config ({exc.__class__.__name__}: {exc})") from None
    return doc


def load_student(directory: str | Path, device: str = "cpu"):
    """Rebuild the student saved in ``directory``, load its weights and return it in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from nudistill.student.models import StudentConfig, TwoViewStudent

    directory = Path(directory)
    doc = read_config(directory)
    try:
        cfg = StudentConfig(**doc["student"])
    except TypeError as exc:
        raise UserError(f"{directory / CONFIG} does not describe a student: {exc}") from None
    model = TwoViewStudent(cfg)
    path = directory / WEIGHTS
    if not path.is_file():
        raise UserError(f"{path} does not exist; the checkpoint is incomplete")
    try:
        state = load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable safetensors file: {exc}") from None
    if cfg.shared:
        state.update({"backbone_yz." + k[len("backbone_xz."):]: v for k, v in state.items() if k.startswith("backbone_xz.")})
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f"{path} does not match student {cfg.name!r}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.meta = doc.get("meta", {})
    return model.to(device).eval()
