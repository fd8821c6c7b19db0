"""The resolved config of a stage as JSON, written next to its outputs (STYLE 2).

The configs themselves live with their stages (``SimConfig`` in simulate.py, ``DistillConfig`` in
student/config.py, ...); ``nudistill.cli.dataclass_args`` builds each verb's options from them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any


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

