"""Matplotlib figures for the reports stage (Agg backend), saved as byte-for-byte reproducible PNGs.

Each ``*_figure`` function takes plain data (arrays, DataFrames) and returns a
Figure; :func:`save_figure` writes it without the metadata (software version,
date) that would make identical figures differ, so git and ``dvc plots diff``
only see real changes.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from catsdogs.core.io import atomic_path  # noqa: E402

DPI = 100
PNG_METADATA = {"Software": None}  # no matplotlib version in the file: same inputs, same bytes


def save_figure(figure, target: str | Path) -> Path:
    """Save ``figure`` as a PNG atomically, without version/date metadata, and close it."""
    target = Path(target)
    try:
        with atomic_path(target) as temporary:
            figure.savefig(temporary, format="png", dpi=DPI, metadata=PNG_METADATA)
    finally:
        plt.close(figure)
    return target


def history_figure(history: pd.DataFrame, metric: str, title: str):
    """Training vs validation ``metric`` (loss or accuracy) per epoch: the tutorial's curves."""
    missing = [column for column in ("epoch", metric, f"val_{metric}") if column not in history.columns]
    if missing:
        raise ValueError(f"the history has no column {', '.join(missing)} (columns: {', '.join(history.columns)})")
    if history.empty:
        raise ValueError("the history has no epochs")
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    axes.plot(history["epoch"], history[metric], marker="o", label=f"training {metric}")
    axes.plot(history["epoch"], history[f"val_{metric}"], marker="o", label=f"validation {metric}")
    axes.set_xlabel("epoch")
    if len(history) <= 20:
        axes.set_xticks(history["epoch"])  # whole epochs only, also for a one-epoch run
    else:
        axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.ticklabel_format(axis="y", useOffset=False)  # flat curves read as values, not "1e-6 + 0.6931"
    axes.set_ylabel(metric)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure


def confusion_figure(matrices: dict[str, np.ndarray], class_names=("cat", "dog")):
    """One panel per model: rows the actual class, columns the predicted class, with counts."""
    figure, axes_row = plt.subplots(1, len(matrices), figsize=(3.6 * len(matrices), 3.6), squeeze=False)
    for axes, (name, matrix) in zip(axes_row[0], matrices.items()):
        matrix = np.asarray(matrix)
        axes.imshow(matrix, cmap="Blues", vmin=0, vmax=max(int(matrix.max()), 1))
        for (row, column), count in np.ndenumerate(matrix):
            color = "white" if count > matrix.max() / 2 else "black"
            axes.text(column, row, str(int(count)), ha="center", va="center", color=color, fontsize=12)
        axes.set_xticks(range(len(class_names)), class_names)
        axes.set_yticks(range(len(class_names)), class_names)
        axes.set_xlabel("predicted")
        axes.set_ylabel("actual")
        axes.set_title(name)
    figure.suptitle("Validation confusion matrices")
    figure.tight_layout()
    return figure


def roc_figure(curves: dict[str, pd.DataFrame], auc: dict[str, float | None]):
    """ROC curves (fpr, tpr) of every model on one axes, with their AUC in the legend (three decimals: not
    scikit-learn's RocCurveDisplay, which rounds to two; docs/design.md "The ROC figure is drawn by hand")."""
    figure, axes = plt.subplots(figsize=(5.2, 5.0))
    # Line styles differ too: identical models (finetune with finetune.epochs 0 is top) overlap exactly.
    styles = ("-", "--", ":", "-.")
    for index, (name, curve) in enumerate(curves.items()):
        value = auc.get(name)
        label = f"{name} (AUC {value:.3f})" if value is not None else name
        axes.plot(curve["fpr"], curve["tpr"], linestyle=styles[index % len(styles)], linewidth=1.8, label=label)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_xlabel("false positive rate (cats called dogs)")
    axes.set_ylabel("true positive rate (dogs found)")
    axes.set_title("Validation ROC curves")
    axes.legend(loc="lower right")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    return figure


def gallery_figure(images: list[np.ndarray], captions: list[str], title: str, columns: int = 4):
    """A grid of images with a caption under each (the worst misclassified images)."""
    if not images:
        figure, axes = plt.subplots(figsize=(6, 2))
        axes.axis("off")
        axes.text(0.5, 0.5, "no misclassified validation images", ha="center", va="center", fontsize=12)
        axes.set_title(title)
        return figure
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(max(2.0 * columns, 6.0), 2.35 * rows), squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, image, caption in zip(grid.flat, images, captions):
        axes.imshow(np.clip(image, 0, 255).astype(np.uint8))
        axes.set_title(caption, fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def box_kernel(size: int) -> np.ndarray:
    """A ``size`` x ``size`` averaging (box blur) kernel."""
    return np.full((size, size), 1.0 / (size * size), dtype=np.float64)


def convolution_walkthrough(gray: np.ndarray) -> dict[str, np.ndarray]:
    """The tutorial's filters on a grayscale image: box blurs, Sobel x/y and the gradient magnitude.

    Uses both libraries the tutorial used: ``scipy.signal.convolve2d`` for the
    3x3 box blur and OpenCV (``cv2.filter2D``, ``cv2.Sobel``) for the rest.
    """
    import cv2
    from scipy.signal import convolve2d

    gray = np.asarray(gray, dtype=np.float64)
    sobel_x = cv2.Sobel(gray, cv2.CV_64F, 1, 0, ksize=3)
    sobel_y = cv2.Sobel(gray, cv2.CV_64F, 0, 1, ksize=3)
    return {
        "original": gray,
        "box blur 3x3 (scipy convolve2d)": convolve2d(gray, box_kernel(3), mode="same", boundary="symm"),
        "box blur 8x8 (cv2.filter2D)": cv2.filter2D(gray, cv2.CV_64F, box_kernel(8)),
        "Sobel x (cv2.Sobel)": sobel_x,
        "Sobel y (cv2.Sobel)": sobel_y,
        "gradient magnitude": np.hypot(sobel_x, sobel_y),
    }


def panels_figure(panels: dict[str, np.ndarray], title: str, columns: int = 3, cmap: str = "gray"):
    """Grayscale panels side by side, each with its own title (the convolution walk-through)."""
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.7 * rows), squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, (name, panel) in zip(grid.flat, panels.items()):
        axes.imshow(panel, cmap=cmap)
        axes.set_title(name, fontsize=9)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def feature_maps_figure(image: np.ndarray, maps: np.ndarray, title: str, columns: int = 8):
    """The input image followed by every channel of a (H, W, C) feature map, one small panel each."""
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"feature maps must be (height, width, channels), got shape {maps.shape}")
    count = maps.shape[-1] + 1
    columns = min(columns, count)
    rows = -(-count // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.75 * rows), squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    cells = list(grid.flat)
    cells[0].imshow(np.clip(image, 0, 255).astype(np.uint8))
    cells[0].set_title("input", fontsize=7)
    for channel in range(maps.shape[-1]):
        cells[channel + 1].imshow(maps[..., channel], cmap="viridis")
        cells[channel + 1].set_title(f"filter {channel}", fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    return figure
