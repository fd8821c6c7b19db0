"""Typed stage configs: JSON round trip next to a stage's outputs (STYLE 2)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def config_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass config (paths become strings)."""
    def default(v: Any) -> Any:
        return str(v)

    return json.loads(json.dumps(dataclasses.asdict(cfg), default=default))


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as indented JSON; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config_dict(cfg), indent=2, sort_keys=True) + "\n")
    return path


def from_namespace(cls: type[T], ns: Any, **extra: Any) -> T:
    """Build dataclass ``cls`` from the argparse namespace fields it declares, plus ``extra``."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {k: v for k, v in vars(ns).items() if k in names and v is not None}
    values.update(extra)
    return cls(**values)
