"""The teacher id: one hash over weights, adapter, prompt, label phrases, temperature and quantization.

A labels directory belongs to one teacher id (DESIGN.md contract 2), so anything that changes the
probabilities must change the id. Weight files in a hub snapshot are symlinks to blobs named by their
sha256, which is used as is; other files are hashed by content (files over ``FULL_HASH_LIMIT`` by size
plus their first and last 8 MiB, so an 11B checkpoint does not cost minutes).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

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


def teacher_id(weights: str, adapter: str, prompt: str, phrases: list[str], temperature: float,
               quantize: str | None) -> str:
    """16 hex characters identifying everything that shapes the teacher's probabilities."""
    blob = json.dumps(dict(weights=weights, adapter=adapter, prompt=prompt, phrases=list(phrases),
                           temperature=repr(float(temperature)), quantize=quantize), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
