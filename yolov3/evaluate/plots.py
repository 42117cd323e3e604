"""PNG plots: of an evaluation (precision-recall, F1 / precision / recall against confidence,
confusion), and of a training run's loss curves.

Drawn with matplotlib's object API on an Agg canvas (no global backend switch, no display needed).
Classes are thin lines (labelled when there are at most 20), the class mean is the thick one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from yolov3.evaluate.curves import ConfidenceCurves
from yolov3.evaluate.evaluator import Evaluation
from yolov3.evaluate.voc import ClassCurve

_LEGEND_MAX = 20


def _figure(size: tuple[float, float] = (7, 5)) -> tuple[Figure, object]:
    fig = Figure(figsize=size, dpi=110, tight_layout=True)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def envelope_on_grid(curve: ClassCurve, grid: np.ndarray) -> np.ndarray:
    """Interpolated precision ``max p(r' >= r)`` at each recall of ``grid`` (0 past the last recall)."""
    if not len(curve.recall):
        return np.zeros_like(grid)
    env = np.maximum.accumulate(curve.precision[::-1])[::-1]
    idx = np.searchsorted(curve.recall, grid, side="left")
    return np.where(idx < len(env), env[np.minimum(idx, len(env) - 1)], 0.0)


def plot_loss_curves(steps: dict[str, np.ndarray], epochs: dict[str, np.ndarray], path: Path) -> Path:
    """Training loss terms per optimiser step (thin: raw, thick: moving average) and the learning rate
    from a run's ``steps.csv``; validation losses per epoch from its ``results.csv`` (both as columns,
    ``yolov3.engine.logging.read_columns``)."""
    fig = Figure(figsize=(10, 4), dpi=110, tight_layout=True)
    FigureCanvasAgg(fig)
    ax, ax_lr = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    x = steps.get("step", np.zeros(0))
    for term, colour in (("total", "k"), ("giou", "tab:blue"), ("conf", "tab:orange"), ("prob", "tab:green")):
        y = steps.get(f"loss/{term}_loss")
        if y is None or not len(y):
            continue
        k = max(1, len(y) // 25)
        smooth = np.convolve(y, np.ones(k) / k, mode="valid")
        ax.plot(x, y, color=colour, alpha=0.25, lw=0.8)
        ax.plot(x[k - 1 :], smooth, color=colour, lw=2, label=f"train {term}")
        val = epochs.get(f"val/{term}_loss")
        if val is not None and np.isfinite(val).any():
            ax.plot(epochs["step"], val, "o--", color=colour, label=f"val {term}")
    ax.set(xlabel="optimiser step", ylabel="loss (seed's terms)", yscale="log", title="Loss")
    ax.legend(fontsize=8)
    if "lr" in steps:
        ax_lr.plot(x, steps["lr"], color="tab:purple")
    ax_lr.set(xlabel="optimiser step", ylabel="learning rate", title="Warmup + cosine schedule")
    fig.savefig(path)
    return path


def plot_pr_curves(curves: Sequence[ClassCurve], names: Sequence[str], path: Path) -> Path:
    """Precision against recall (IoU 0.5) per class, and the class mean of the interpolated curves."""
    fig, ax = _figure()
    grid = np.linspace(0, 1, 101)
    shown = [(n, c) for n, c in zip(names, curves) if c.npos]
    label = len(shown) <= _LEGEND_MAX
    for name, c in shown:
        ax.plot(c.recall, c.precision, linewidth=1, label=f"{name} {c.ap[0]:.3f}" if label else None,
                color=None if label else "grey", alpha=1.0 if label else 0.4)  # fmt: skip
    if shown:
        mean = np.mean([envelope_on_grid(c, grid) for _, c in shown], axis=0)
        m_ap = np.mean([c.ap[0] for _, c in shown])
        ax.plot(grid, mean, linewidth=3, color="tab:blue", label=f"all classes mAP@0.5 {m_ap:.3f}")
    ax.set(
        xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall (IoU 0.5)"
    )
    ax.legend(loc="lower left", fontsize=7)
    fig.savefig(path)
    return path


def plot_confidence_curve(cc: ConfidenceCurves, names: Sequence[str], which: str, path: Path) -> Path:
    """``which`` = f1 | precision | recall against the confidence threshold, per class and mean."""
    values = getattr(cc, which)
    fig, ax = _figure()
    rows = [(n, v) for n, v in zip(names, values) if not np.all(np.isnan(v))]
    label = len(rows) <= _LEGEND_MAX
    for name, v in rows:
        ax.plot(cc.conf, v, linewidth=1, label=name if label else None,
                color=None if label else "grey", alpha=1.0 if label else 0.4)  # fmt: skip
    if rows:
        mean = np.nanmean(np.stack([v for _, v in rows]), axis=0)
        i = int(np.nanargmax(mean))
        text = f"all classes {mean[i]:.2f} at {cc.conf[i]:.3f}" if which == "f1" else "all classes"
        ax.plot(cc.conf, mean, linewidth=3, color="tab:blue", label=text)
    ax.set(
        xlabel="confidence", ylabel=which, xlim=(0, 1), ylim=(0, 1.02), title=f"{which} against confidence"
    )
    ax.legend(loc="lower left", fontsize=7)
    fig.savefig(path)
    return path


def plot_confusion_matrix(matrix: np.ndarray, names: Sequence[str], path: Path, conf: float) -> Path:
    """Rows predicted, columns true (last: background); each column normalised to sum 1."""
    labels = [*names, "background"]
    m = matrix.astype(np.float64)
    col = m.sum(0, keepdims=True)
    norm = np.divide(m, col, out=np.zeros_like(m), where=col > 0)
    n = len(labels)
    side = min(4 + 0.35 * n, 24)
    fig, ax = _figure((side, side * 0.85))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ticks = n <= 40
    ax.set_xticks(range(n) if ticks else [])
    ax.set_yticks(range(n) if ticks else [])
    if ticks:
        ax.set_xticklabels(labels, rotation=90, fontsize=7)
        ax.set_yticklabels(labels, fontsize=7)
    if n <= 25:
        for (i, j), v in np.ndenumerate(norm):
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if v > 0.5 else "black",
                )
    ax.set(xlabel="true", ylabel="predicted", title=f"Confusion matrix (conf >= {conf}, IoU 0.5)")
    fig.savefig(path)
    return path


def save_plots(evaluation: Evaluation, out_dir: str | Path) -> list[Path]:
    """All plots of ``evaluation`` into ``out_dir``: PR_curve, F1_curve, P_curve, R_curve,
    confusion_matrix (.png). Returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names, cc = evaluation.names, evaluation.conf_curves
    return [
        plot_pr_curves(evaluation.curves, names, out / "PR_curve.png"),
        plot_confidence_curve(cc, names, "f1", out / "F1_curve.png"),
        plot_confidence_curve(cc, names, "precision", out / "P_curve.png"),
        plot_confidence_curve(cc, names, "recall", out / "R_curve.png"),
        plot_confusion_matrix(
            evaluation.matrix, names, out / "confusion_matrix.png", evaluation.summary.get("matrix_conf", 0.3)
        ),  # fmt: skip
    ]
