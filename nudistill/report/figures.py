"""The run report's figures: each function draws one PNG from numpy arrays and returns its path.

Conventions: ``y`` (N,) truth class indices; ``probs`` (N, 3) in CLASSES order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nudistill import CLASSES

COLORS = {"teacher": "#1f77b4", "student": "#d62728", "teacher (uncalibrated)": "#9ecae1"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def roc_curves(y: np.ndarray, models: dict[str, np.ndarray], path: Path) -> Path:
    """One-vs-rest ROC per class, one line per model, AUC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _plt()
    fig, axes = plt.subplots(1, len(CLASSES), figsize=(4 * len(CLASSES), 3.8))
    for c, (ax, name) in enumerate(zip(axes, CLASSES)):
        truth = y == c
        for model, probs in models.items():
            if 0 < truth.sum() < len(truth):
                fpr, tpr, _ = roc_curve(truth, probs[:, c])
                ax.plot(fpr, tpr, color=COLORS.get(model), label=f"{model} AUC {roc_auc_score(truth, probs[:, c]):.3f}")
        ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=0.8)
        ax.set(title=f"{name} vs rest", xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def confusion_matrices(y: np.ndarray, models: dict[str, np.ndarray], path: Path) -> Path:
    """Row-normalised confusion matrices (truth rows, prediction columns) with counts."""
    from nudistill.metrics import confusion

    plt = _plt()
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.9), squeeze=False)
    for ax, (model, probs) in zip(axes[0], models.items()):
        counts = np.array(confusion(y, probs))
        frac = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(CLASSES)):
            for j in range(len(CLASSES)):
                ax.text(j, i, f"{frac[i, j]:.2f}\n({counts[i, j]})", ha="center", va="center", fontsize=8,
                        color="white" if frac[i, j] > 0.6 else "black")
        ax.set(xticks=range(len(CLASSES)), yticks=range(len(CLASSES)), xticklabels=CLASSES, yticklabels=CLASSES,
               xlabel="predicted", ylabel="true", title=f"{model} (acc {(probs.argmax(1) == y).mean():.3f})")
    return _save(fig, path)


def reliability(y: np.ndarray, models: dict[str, np.ndarray], path: Path, bins: int = 10) -> Path:
    """Reliability diagram of the top-class confidence, ECE in the legend, bin counts below."""
    from nudistill.metrics import ece

    plt = _plt()
    fig, (ax, axn) = plt.subplots(2, 1, figsize=(5.2, 5.6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    edges = np.linspace(0, 1, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    for k, (model, probs) in enumerate(models.items()):
        conf, correct = probs.max(1), probs.argmax(1) == y
        idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
        n = np.bincount(idx, minlength=bins)
        acc = np.bincount(idx, weights=correct, minlength=bins) / np.maximum(n, 1)
        has = n > 0
        err = np.sqrt(acc * (1 - acc) / np.maximum(n, 1)) + 0.5 / np.maximum(n, 1)  # binomial, floor for tiny bins
        ax.errorbar(centres[has], acc[has], yerr=err[has], fmt="o-", capsize=2, color=COLORS.get(model),
                    label=f"{model} (ECE {ece(y, probs):.3f})")
        axn.bar(centres + (k - 1) * 0.025, n, width=0.025, color=COLORS.get(model))
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="perfect calibration")
    ax.set(ylabel="accuracy in bin", xlim=(0, 1), ylim=(0, 1), title="reliability of the top-class confidence")
    ax.legend(fontsize=8, loc="upper left")
    axn.set(xlabel="confidence", ylabel="events")
    return _save(fig, path)


def latency_histogram(latency_ms: np.ndarray, path: Path, budget_ms: float = 20.0) -> Path:
    """Batch-1 latency histogram with p50/p99 and the study's 20 ms line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    hi = max(budget_ms * 1.15, float(np.percentile(latency_ms, 99.9)) * 1.1)
    ax.hist(latency_ms, bins=np.linspace(0, hi, 120), color=COLORS["student"], alpha=0.85)
    for q, ls in ((50, "--"), (99, ":")):
        v = float(np.percentile(latency_ms, q))
        ax.axvline(v, color="black", ls=ls, lw=1, label=f"p{q} {v:.2f} ms")
    ax.axvline(budget_ms, color="orange", lw=2, label=f"{budget_ms:g} ms (the study's CNN)")
    ax.set(xlabel="batch-1 latency per event [ms], ONNX Runtime, 1 thread", ylabel="calls", xlim=(0, hi),
           title=f"student scoring latency ({len(latency_ms)} calls)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def resolution_bars(acc: dict[str, dict[str, float]], path: Path) -> Path:
    """Accuracy at full and half resolution per model (the study's robustness test)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    models = list(acc)
    x = np.arange(len(models))
    for k, (res, shade) in enumerate((("full", 1.0), ("half", 0.55))):
        vals = [acc[m][res] for m in models]
        bars = ax.bar(x + (k - 0.5) * 0.38, vals, width=0.38, alpha=shade, label=f"{res} resolution",
                      color=[COLORS.get(m, "grey") for m in models])
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.axhline(1 / len(CLASSES), color="grey", ls=":", lw=1, label="chance")
    ax.set(xticks=x, xticklabels=models, ylim=(0, 1.05), ylabel="accuracy vs truth",
           title="accuracy at full and half (2x downsampled) resolution")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def robustness_bars(rows: dict[str, list[dict]], path: Path) -> Path:
    """Accuracy per detector shift (horizontal bars), models side by side, a dashed line at each nominal.

    ``rows``: model name -> the ``shifts`` rows of its robustness.json (``shift``, ``accuracy``); the shift
    order is the first model's, with any shift only another model ran appended.
    """
    plt = _plt()
    names = list(dict.fromkeys(r["shift"] for model_rows in rows.values() for r in model_rows))
    fig, ax = plt.subplots(figsize=(8, 0.34 * len(names) + 1.6))
    y, height = np.arange(len(names)), 0.8 / len(rows)
    for k, (model, model_rows) in enumerate(rows.items()):
        acc = {r["shift"]: r["accuracy"] for r in model_rows}
        color = COLORS.get(model, "grey")
        ax.barh(y + (k - (len(rows) - 1) / 2) * height, [acc.get(n, np.nan) for n in names], height=height,
                color=color, label=model)
        if "nominal" in acc:
            ax.axvline(acc["nominal"], color=color, ls="--", lw=1)
    ax.axvline(1 / len(CLASSES), color="grey", ls=":", lw=1, label="chance")
    ax.set(yticks=y, yticklabels=names, xlim=(0, 1), xlabel="accuracy vs truth (dashed: nominal)",
           title="accuracy under named detector shifts")
    ax.invert_yaxis()  # nominal on top
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never over them
    return _save(fig, path)


def example_grid(views: np.ndarray, captions: list[str], titles: list[str], path: Path) -> Path:
    """Events (XZ, YZ) in rows, each with its title and a wrapped caption (rationale, concepts)."""
    import textwrap

    from nudistill.show import plot_views

    plt = _plt()
    n = len(views)
    fig, axes = plt.subplots(n, 3, figsize=(12, 3.1 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1.5]})
    for i in range(n):
        plot_views(axes[i, 0], axes[i, 1], views[i], titles[i])
        axes[i, 2].axis("off")
        lines = [w for para in captions[i].split("\n") for w in (textwrap.wrap(para, 62) or [""])]
        axes[i, 2].text(0, 1, "\n".join(lines),
                        va="top", fontsize=8, family="monospace", transform=axes[i, 2].transAxes)
    return _save(fig, path)
