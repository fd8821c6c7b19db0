"""``metadata_props`` of contract 3: what a shipped model says about itself, and its latency certificate."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import onnx

from nudistill import __version__
from nudistill.errors import UserError
from nudistill.online import METADATA_KEYS, optimized_path, read_contract


def build_metadata(cfg, teacher: str, metrics: dict, extra: dict | None = None) -> dict[str, str]:
    """The contract-3 key/value strings for a student config ``cfg`` (lists and dicts as JSON)."""
    meta = {
        "classes": json.dumps(list(cfg.classes)),
        "concepts": json.dumps(list(cfg.concepts)),
        "height": str(cfg.height),
        "width": str(cfg.width),
        "teacher": teacher or "unknown",
        "student": cfg.name,
        "metrics": json.dumps(metrics, sort_keys=True),
        "nudistill_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "student_config": json.dumps(cfg.to_dict(), sort_keys=True),
    }
    meta.update({k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in (extra or {}).items()})
    assert set(METADATA_KEYS) <= set(meta)
    return meta


def set_metadata(model: onnx.ModelProto, meta: dict[str, str]) -> onnx.ModelProto:
    """Add or replace ``meta`` entries in ``model.metadata_props`` (other keys are kept)."""
    current = {p.key: p.value for p in model.metadata_props}
    current.update(meta)
    del model.metadata_props[:]
    for key in sorted(current):
        model.metadata_props.add(key=key, value=current[key])
    return model


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError ... for a file that is not a model
        raise UserError(f"{path} is not a readable ONNX model: {exc}") from None
    return {p.key: p.value for p in model.metadata_props}


def save_atomic(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write ``model`` to a temporary file and rename it, so readers never see half a model."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return path


def update_metadata(path: str | Path, updates: dict[str, str]) -> list[Path]:
    """Rewrite the metadata of ``path`` and of its offline-optimised sibling, if any; return the files written."""
    written = []
    for target in (Path(path), optimized_path(path)):
        if target == Path(path) or target.is_file():
            model = onnx.load(str(target))
            save_atomic(set_metadata(model, updates), target)
            written.append(target)
    return written


def write_latency_certificate(path: str | Path, certificate: dict) -> list[Path]:
    """Store ``certificate`` (from :func:`nudistill.online.latency.certify`) as ``metrics["latency"]``."""
    meta = read_metadata(path)
    try:
        read_contract(meta, str(path))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    metrics = json.loads(meta["metrics"])
    metrics["latency"] = certificate
    return update_metadata(path, {"metrics": json.dumps(metrics, sort_keys=True)})
