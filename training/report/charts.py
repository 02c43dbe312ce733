"""PNG charts of an eval report, drawn with matplotlib's object API (no global state, no display).

matplotlib comes with the ``train`` extra (ultralytics needs it);
:func:`require_matplotlib` says so clearly where it is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from anjian.training.report.matching import CONFIDENCE_GRID, ClassCurves

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_confusion", "plot_f1_curves", "plot_pr_curves", "require_matplotlib"]

_DPI = 110


def require_matplotlib() -> None:
    """Check that the charts can be drawn.

    Raises:
        ModuleNotFoundError: matplotlib is not installed (it comes with the ``train`` extra).
    """
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "the HTML eval report draws its charts with matplotlib, which comes with the train extra: "
            "pip install -e '.[train]'"
        ) from exc


def _figure(width_in: float, height_in: float) -> Figure:
    """A figure with an Agg canvas attached, independent of pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def plot_pr_curves(
    curves: Sequence[ClassCurves], names: Sequence[str], ap50: Sequence[float], out: Path
) -> Path:
    """Precision against recall at IoU 0.5, one line per class, AP50 in the legend.

    Returns:
        ``out``.
    """
    figure = _figure(6.4, 4.8)
    axes = figure.add_subplot()
    for curve, name, ap in zip(curves, names, ap50, strict=True):
        if curve.instances == 0:
            continue
        recall = np.concatenate([[0.0], curve.recall])
        precision = np.concatenate([[curve.precision[0] if len(curve.precision) else 0.0], curve.precision])
        axes.step(recall, precision, where="post", label=f"{name}: AP50 {ap:.3f} ({curve.instances})")
    axes.set(
        xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall, IoU 0.5"
    )
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize="small")
    figure.savefig(out)
    return out


def plot_f1_curves(curves: Sequence[ClassCurves], names: Sequence[str], confidence: float, out: Path) -> Path:
    """F1 against the confidence threshold, one line per class; the report's threshold marked.

    Returns:
        ``out``.
    """
    figure = _figure(6.4, 4.8)
    axes = figure.add_subplot()
    for curve, name in zip(curves, names, strict=True):
        if curve.instances == 0:
            continue
        best = curve.best_confidence
        axes.plot(
            CONFIDENCE_GRID, curve.f1_at, label=f"{name}: best F1 {curve.f1_at.max():.2f} at {best:.2f}"
        )
    axes.axvline(
        confidence, color="grey", linestyle="--", linewidth=1, label=f"report threshold {confidence:.2f}"
    )
    axes.set(xlabel="confidence threshold", ylabel="F1", xlim=(0, 1), ylim=(0, 1.02), title="F1, IoU 0.5")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right", fontsize="small")
    figure.savefig(out)
    return out


def plot_confusion(matrix: np.ndarray, names: Sequence[str], confidence: float, out: Path) -> Path:
    """Heat map of true (rows) against predicted (columns) classes, background last, counts written in.

    Colours show each row's shares, so a rare class reads as clearly as a common one.

    Returns:
        ``out``.
    """
    labels = [*names, "background"]
    side = max(3.6, 0.75 * len(labels) + 1.6)
    figure = _figure(side + 0.8, side)
    axes = figure.add_subplot()
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if matrix[i, j]:
                colour = "white" if shares[i, j] > 0.6 else "black"
                axes.text(j, i, str(matrix[i, j]), ha="center", va="center", color=colour, fontsize="small")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set(xlabel="predicted", ylabel="true", title=f"Confusion at IoU 0.5, confidence ≥ {confidence:.2f}")
    figure.colorbar(image, ax=axes, label="share of the row", shrink=0.8)
    figure.savefig(out)
    return out
