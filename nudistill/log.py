"""The one logger of nudistill: quiet by default, progress bars only on long work."""

from __future__ import annotations

import logging
import os
import sys

_LOGGER_NAME = "nudistill"


def get_logger(name: str | None = None) -> logging.Logger:
    """Return the package logger, or a child of it (``nudistill.<name>``)."""
    return logging.getLogger(_LOGGER_NAME if not name else f"{_LOGGER_NAME}.{name}")


def setup_logging(verbose: int = 0) -> None:
    """Send package logs to stderr: warnings by default, info with -v, debug with -vv."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logger = logging.getLogger(_LOGGER_NAME)
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on stderr, hidden when stderr is not a terminal or NUDISTILL_NO_PROGRESS is set."""
    from tqdm.auto import tqdm

    disable = kwargs.pop("disable", None)
    if disable is None:
        disable = bool(os.environ.get("NUDISTILL_NO_PROGRESS")) or not sys.stderr.isatty()
    return tqdm(iterable, disable=disable, dynamic_ncols=True, **kwargs)


def say(message: str) -> None:
    """Print one human line to stdout (results a user asked for, not diagnostics)."""
    print(message, flush=True)
