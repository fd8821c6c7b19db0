"""Through-going cosmic-muon tagging on pixel maps: find the muons that cross the frame and clear their pixels.

A surface LArTPC records cosmic muons in every readout window. They are straight minimum-ionising tracks,
unrelated to the neutrino vertex, that enter and leave the detector, so in a view they run border to border
(the "clear cosmic" tag of surface experiments' first reconstruction pass). A neutrino's muon starts at its
vertex, inside the frame. Both views share the beam axis z, so one muon spans the same z range in XZ and YZ,
which ties a segment that reaches a border in one view to its partner in the other.

:func:`cosmic_mask` finds straight segments per view with a Hough transform (rho, theta), keeps those at
least ``min_frac`` of the frame long, measured along the line with gaps of a few pixels allowed, and tags
a segment as cosmic when both its ends touch the frame's border, or when its z range matches a segment of
the other view and together they touch the border at both ends. :func:`remove_cosmics` clears the tagged
pixels.

Measured on 120 of the default demo's test events at the teacher's 128 px views (README "Robustness"): it
clears 88 % of the pixels of one overlaid muon and 90 % of three, and of the neutrino's other pixels 0.4 %
(no muon), 1.4 % (one) and 4.6 % (three), in 1.3, 1.5 and 2.1 ms per event on one core; 2.2 ms on
randomised readouts. Numpy only, any H x W.
"""

from __future__ import annotations

import functools
import math

import numpy as np

N_THETA = 120
"""Hough angle bins over [0, pi): 1.5 degrees."""
_THETAS = np.linspace(0.0, math.pi, N_THETA, endpoint=False)
_COS, _SIN = np.cos(_THETAS), np.sin(_THETAS)


def dilate(b: np.ndarray) -> np.ndarray:
    """Boolean ``(H, W)`` map grown by one pixel in the 8-neighbourhood."""
    d = b.copy()
    d[1:] |= b[:-1]
    d[:-1] |= b[1:]
    e = d.copy()
    e[:, 1:] |= d[:, :-1]
    e[:, :-1] |= d[:, 1:]
    return e


def _chord(ti: int, rho: float, h: int, w: int):
    """End points ``((x0, y0), (x1, y1))`` of the line x cos + y sin = rho across the frame, or None."""
    c, s = _COS[ti], _SIN[ti]
    pts = []
    if abs(s) > 1e-9:
        pts += [(x, (rho - x * c) / s) for x in (0.0, w - 1.0)]
    if abs(c) > 1e-9:
        pts += [((rho - y * s) / c, y) for y in (0.0, h - 1.0)]
    pts = [(x, y) for x, y in pts if -1e-6 <= x <= w - 1 + 1e-6 and -1e-6 <= y <= h - 1 + 1e-6]
    if len(pts) < 2:
        return None
    return max(((p, q) for p in pts for q in pts), key=lambda pq: math.dist(*pq))


def _longest_run(covered: np.ndarray, gap: int) -> tuple[int, int]:
    """``(start, stop)`` of the longest run of True samples, bridging gaps of up to ``gap`` False ones."""
    idx = np.flatnonzero(covered)
    if not len(idx):
        return 0, 0
    breaks = np.flatnonzero(np.diff(idx) > gap + 1)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    stops = np.concatenate((idx[breaks], [idx[-1]])) + 1
    k = int(np.argmax(stops - starts))
    return int(starts[k]), int(stops[k])


@functools.lru_cache(maxsize=8)
def _hough_tables(h: int, w: int) -> tuple[int, np.ndarray, np.ndarray]:
    """``(n_rho, xcos, ysin)`` for an ``h`` x ``w`` frame: pixel (y, x) votes in accumulator cells
    ``(xcos[x] + ysin[y]).astype(int)``, one per angle (rho rounded, shifted by the diagonal, angle-major)."""
    diag = int(math.ceil(math.hypot(h, w)))
    n_rho = 2 * diag + 1
    xcos = (np.arange(w)[:, None] * _COS + np.arange(N_THETA) * n_rho + diag + 0.5).astype(np.float32)
    return n_rho, xcos, (np.arange(h)[:, None] * _SIN).astype(np.float32)


def segments(lit: np.ndarray, min_len: int, gap: int = 3, max_segments: int = 6) -> list[tuple[np.ndarray, np.ndarray]]:
    """Straight segments of at least ``min_len`` pixels in a boolean ``(H, W)`` map, as (rows, columns) samples.

    The strongest Hough line is walked across the frame; its longest stretch of lit pixels (within one
    pixel, gaps up to ``gap``) is a segment when it is ``min_len`` long and 80 % covered. Its pixels then
    leave the accumulator and the next line is taken. A line that fails takes its neighbours within one
    angle bin and two rho bins with it: they hold the same pixels.
    """
    h, w = lit.shape
    ys, xs = np.nonzero(lit)
    if len(xs) < min_len * 0.6:
        return []
    n_rho, xcos, ysin = _hough_tables(h, w)
    diag = n_rho // 2
    flat = (xcos[xs] + ysin[ys]).astype(np.int32)  # (N, N_THETA) accumulator cells
    acc = np.bincount(flat.ravel(), minlength=N_THETA * n_rho)
    votes = np.zeros(len(acc) + 2, acc.dtype)  # smoothed by one rho bin: diffusion and angle binning spread a
    votes[:-2] += acc  # line's votes; one spare cell at each end
    votes[1:-1] += acc
    votes[2:] += acc
    grid = votes[1:-1].reshape(N_THETA, n_rho)
    near = dilate(lit)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for _ in range(4 * max_segments):
        k = int(votes.argmax())
        if votes[k] < min_len * 0.6:
            break
        votes[max(0, k - 2): k + 3] = 0
        k -= 1  # the spare cell
        ti, rho = divmod(k, n_rho)
        chord = _chord(ti, rho - diag, h, w)
        if chord is None:
            continue
        (px, py), (qx, qy) = chord
        n = int(math.ceil(math.dist((px, py), (qx, qy)))) + 1
        t = np.arange(n) / max(n - 1, 1)
        sx, sy = np.rint(px + t * (qx - px)).astype(int), np.rint(py + t * (qy - py)).astype(int)
        covered = near[sy, sx]
        a, z = _longest_run(covered, gap)
        if z - a < min_len or covered[a:z].mean() < 0.8:
            for tj in (ti - 1, ti + 1):
                if 0 <= tj < N_THETA:
                    grid[tj, max(0, rho - 2): rho + 3] = 0
            continue
        sy, sx = sy[a:z], sx[a:z]
        out.append((sy, sx))
        # the segment's pixels (within 2 px of it) stop voting
        c, s_ = _COS[ti], _SIN[ti]
        along = ys * c - xs * s_
        lo, hi = sorted((float(sy[0] * c - sx[0] * s_), float(sy[-1] * c - sx[-1] * s_)))
        sel = (np.abs(xs * c + ys * s_ - (rho - diag)) <= 2.5) & (along >= lo - 2.5) & (along <= hi + 2.5)
        if sel.any():
            gone = np.bincount(flat[sel].ravel(), minlength=len(acc))
            votes[:-2] -= gone
            votes[1:-1] -= gone
            votes[2:] -= gone
            ys, xs, flat = ys[~sel], xs[~sel], flat[~sel]
        if len(out) >= max_segments:
            break
    return out


def _ends(seg: tuple[np.ndarray, np.ndarray], h: int, w: int, tol: int = 2) -> tuple[int, bool, int, bool]:
    """``(z_lo, at border, z_hi, at border)`` of a segment (z = column)."""
    sy, sx = seg
    lo, hi = (0, -1) if sx[0] <= sx[-1] else (-1, 0)

    def border(y, x):
        return y <= tol or y >= h - 1 - tol or x <= tol or x >= w - 1 - tol

    return int(sx[lo]), border(sy[lo], sx[lo]), int(sx[hi]), border(sy[hi], sx[hi])


def cosmic_mask(views: np.ndarray, min_frac: float = 0.15, z_tol: int = 3) -> np.ndarray:
    """Boolean ``(2, H, W)``: the lit pixels of one event's views (XZ, YZ) that belong to a through-going muon.

    ``min_frac``: shortest segment considered, as a fraction of the frame's smaller side. ``z_tol``: pixels
    by which the z ranges of one muon's two views may differ.
    """
    _, h, w = views.shape
    lit = views > 0
    min_len = max(5, int(min_frac * min(h, w)))
    segs = [segments(lit[v], min_len) for v in (0, 1)]
    ends = [[_ends(s, h, w) for s in segs[v]] for v in (0, 1)]
    tagged: list[set[int]] = [set(), set()]
    for v in (0, 1):
        tagged[v].update(i for i, e in enumerate(ends[v]) if e[1] and e[3])  # border to border
    for i, a in enumerate(ends[1]):
        for j, b in enumerate(ends[0]):
            same_z = abs(a[0] - b[0]) <= z_tol and abs(a[2] - b[2]) <= z_tol
            if same_z and (a[1] or b[1]) and (a[3] or b[3]):  # together they leave the frame at both ends
                tagged[1].add(i)
                tagged[0].add(j)
    mask = np.zeros_like(lit)
    for v in (0, 1):
        for i in tagged[v]:
            sy, sx = segs[v][i]
            line = np.zeros((h, w), bool)
            line[sy, sx] = True
            mask[v] |= dilate(line)
    return mask & lit


def remove_cosmics(views: np.ndarray) -> np.ndarray:
    """``(B, 2, H, W)`` uint8 views with every tagged through-going muon's pixels set to 0 (a new array)."""
    out = np.array(views, copy=True)
    for ev in out:
        ev[cosmic_mask(ev)] = 0
    return out


__all__ = ["cosmic_mask", "remove_cosmics", "segments"]
