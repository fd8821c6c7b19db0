"""Keep Ray Data's known actor-arguments line out of a default labelling run: one exact message, nothing else.

(Ray's token-authentication notice on an embedded start is dropped where Ray starts, in nudistill/ray_start.py.)

Ray Data hands every actor of an ``ActorPoolStrategy`` its DataContext and map transformer as object
refs, and gives the actors ``max_restarts=-1``. Ray's core worker (C++, writing straight to fd 2, so
Python logging cannot reach it) then logs an ``E ... core_worker.cc`` line about constructor arguments
in the object store (ray-project/ray issues 53727 and 57733), even for a one-line pipeline with small
arguments. Our own actor arguments are a few short strings; the refs are Ray Data's, so the line cannot
be fixed from here, and turning restarts off would give up recovery from a killed actor.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

KNOWN_NOISE = (b"has constructor arguments in the object store and max_restarts > 0",)


@contextmanager
def drop_known_lines(patterns: tuple[bytes, ...] = KNOWN_NOISE) -> Iterator[None]:
    """Pass fd 2 through a pipe that forwards everything but whole lines holding one of ``patterns``.

    Enter it after ``ray.init``: processes started inside would inherit the pipe as their stderr.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, os.dup(saved), patterns), daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end closes: the pump reads EOF and drains
        os.close(saved)
        pump.join(timeout=10)


def _pump(read_end: int, out: int, patterns: tuple[bytes, ...]) -> None:
    pending = b""
    try:
        while chunk := os.read(read_end, 1 << 16):
            pending += chunk
            cut = pending.rfind(b"\n") + 1
            lines, pending = pending[:cut], pending[cut:]
            keep = b"".join(line for line in lines.splitlines(keepends=True) if not any(p in line for p in patterns))
            if pending and not pending.startswith(b"["):  # a progress-bar redraw (\r, no \n): show it now
                keep, pending = keep + pending, b""
            _write_all(out, keep)
        _write_all(out, pending)
    finally:
        os.close(read_end)
        os.close(out)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
