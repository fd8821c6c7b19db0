"""Render events (both views, log colour scale) to a PNG, because physicists look before they trust.

Run: ``nudistill show events/ --n 8 --out events.png``
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nudistill.errors import UserError
from nudistill.events import Validator, decode_views, iter_batches


def load_events_for_display(uri: str, n: int, start: int = 0) -> tuple[np.ndarray, list[dict]]:
    """The first ``n`` valid events after skipping ``start``: views (n, 2, H, W) and their other columns."""
    views, rows, seen = [], [], 0
    validate = Validator()
    for batch in iter_batches(uri, batch_size=max(n, 16)):
        ok, _ = validate(batch)
        batch = batch.filter(ok)
        skip = min(max(start - seen, 0), batch.num_rows)
        seen += batch.num_rows
        batch = batch.slice(skip, n - len(rows))
        if batch.num_rows == 0:
            continue
        views.append(decode_views(batch))
        rows += batch.drop_columns(["xz", "yz"]).to_pylist()
        if len(rows) >= n:
            break
    if not rows:
        raise UserError(f"{uri} has no valid events to show")
    return np.concatenate(views)[: len(rows)], rows


def plot_views(ax_xz, ax_yz, views: np.ndarray, title: str = "") -> None:
    """Draw one event's XZ and YZ maps on two axes with a log colour scale (ADC 1-255)."""
    from matplotlib.colors import LogNorm

    for ax, img, name in ((ax_xz, views[0], "XZ"), (ax_yz, views[1], "YZ")):
        masked = np.ma.masked_equal(img, 0)
        ax.set_facecolor("black")
        ax.imshow(masked, cmap="inferno", norm=LogNorm(vmin=1, vmax=255), interpolation="nearest", origin="lower")
        ax.set_xlabel("z (beam) [px]", fontsize=7)
        ax.set_ylabel(f"{name[0].lower()} [px]", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_title(f"{name}  {title}", fontsize=7, loc="left")


@dataclass
class ShowConfig:
    """Render events (XZ and YZ, log colour scale, label and concepts) to a PNG (``nudistill show``)."""

    events: str
    """Events: a Parquet file, directory, glob or URI (s3://, gs://)."""
    out: str = "events.png"
    """PNG file to write."""
    n: int = 8
    """Number of events to draw."""
    start: int = 0
    """Skip this many valid events first."""
    cols: int = 2
    """Events per row of the grid."""

    def __post_init__(self):
        for flag, value, least in (("--n", self.n, 1), ("--start", self.start, 0), ("--cols", self.cols, 1)):
            if value < least:
                raise UserError(f"{flag} must be at least {least}, got {value}")


def run(cfg: ShowConfig) -> Path:
    """``nudistill show``: the grid of :func:`render` for ``cfg``."""
    return render(cfg.events, cfg.out, n=cfg.n, start=cfg.start, cols=cfg.cols)


def render(uri: str, out: str | Path, n: int = 8, start: int = 0, cols: int = 2) -> Path:
    """Render ``n`` events as a grid of (XZ, YZ) pairs to ``out`` (PNG); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views, rows = load_events_for_display(uri, n, start)
    rows_n = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(rows_n, 2 * cols, figsize=(4.2 * cols, 2.3 * rows_n), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for i, row in enumerate(rows):
        r, c = divmod(i, cols)
        a, b = axes[r, 2 * c], axes[r, 2 * c + 1]
        a.set_visible(True)
        b.set_visible(True)
        label = row.get("label") or "unlabelled"
        concepts = ", ".join(row.get("concepts") or [])
        plot_views(a, b, views[i], f"{row['event_id']}  {label}")
        b.set_title(f"YZ  {concepts}", fontsize=6, loc="left")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
