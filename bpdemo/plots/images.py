"""Figures of the image demo: training curves, confusion matrix, test images, one image's step.

The gradient difference and the gradient norm of each layer are `bpdemo.plots.training`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bpdemo.plots.training import AUTOGRAD_STYLE, MANUAL_STYLE
from bpdemo.train import History

RIGHT, WRONG = "tab:green", "tab:red"


def _curves(ax: Axes, history: History, metric: str) -> None:
    """Train (line) and test (line with dots) `metric` of both models per epoch on `ax`, drawn as
    `bpdemo.plots.training.loss_curves` draws them."""
    epochs = [row["epoch"] for row in history.epochs]
    marker_every = max(1, len(epochs) // 15)
    for split, marker in (("train", None), ("test", "o")):
        for model, style in (("manual", MANUAL_STYLE), ("autograd", AUTOGRAD_STYLE)):
            values = [row[f"{split}_{metric}_{model}"] for row in history.epochs]
            name = "hand-written" if model == "manual" else "autograd"
            ax.plot(
                epochs,
                values,
                label=f"{split}, {name}",
                marker=marker,
                markevery=marker_every,
                markersize=4,
                **{**style, "alpha": style.get("alpha", 1) * (1 if split == "train" else 0.8)},
            )
    ax.set_xlabel("epoch")
    ax.grid(True, alpha=0.3)


def loss_and_accuracy(history: History, title: str) -> Figure:
    """Cross-entropy (log scale) and accuracy per epoch, train and test, of both models.

    The hand-written model is a wide pale line, autograd a thin dashed one on top of it: where the
    models agree, the dashes run inside the wide line.
    """
    figure, (loss_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(12, 4.6))
    _curves(loss_ax, history, "loss")
    loss_ax.set_yscale("log")
    loss_ax.set_ylabel("cross-entropy loss (log scale)")
    loss_ax.set_title("loss")
    _curves(accuracy_ax, history, "accuracy")
    accuracy_ax.set_ylabel("accuracy (share of images classified right)")
    accuracy_ax.set_title("accuracy")
    low = min(row[k] for row in history.epochs for k in row if "accuracy" in k)
    accuracy_ax.set_ylim(max(0.0, low - 0.05), 1.02)
    accuracy_ax.legend(loc="lower right")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def _show(ax: Axes, picture: np.ndarray) -> None:
    """One image, (H, W) grayscale (dark ink on white) or (H, W, 3) colour, values in [0, 1]."""
    if picture.ndim == 2:
        ax.imshow(picture, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.clip(picture, 0, 1), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def confusion(
    true: np.ndarray, predicted: np.ndarray, classes: Sequence[str], title: str
) -> Figure:
    """Confusion matrix of test predictions: rows the true class, columns the predicted one."""
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.5, 0.55 * len(classes) + 2.5)
    figure, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        true,
        predicted,
        labels=list(range(len(classes))),
        display_labels=list(classes),
        cmap="Blues",
        colorbar=False,
        ax=ax,
    )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if max(len(c) for c in classes) > 3:
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    ax.set_title(title)
    figure.tight_layout()
    return figure


def image_grid(
    pictures: np.ndarray,
    true: Sequence[int],
    predicted: Sequence[int],
    probability: Sequence[float],
    classes: Sequence[str],
    title: str,
    numbers: Sequence[int] | None = None,
    columns: int = 8,
) -> Figure:
    """Images with their true class, the predicted class and its probability; mistakes in red.

    Args:
        pictures: (M, H, W) or (M, H, W, 3) in [0, 1].
        true, predicted: class indices (M,); probability: the predicted class's probability (M,).
        numbers: each image's position in the test split, shown as "#12".
    """
    count = len(pictures)
    rows = max(1, -(-count // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(1.55 * columns, 1.85 * rows + 0.6))
    axes = np.atleast_1d(axes).ravel()
    for k, ax in enumerate(axes):
        if k >= count:
            ax.axis("off")
            continue
        _show(ax, pictures[k])
        right = true[k] == predicted[k]
        number = f"#{numbers[k]} " if numbers is not None else ""
        ax.set_title(
            f"{number}true {classes[true[k]]}\npred {classes[predicted[k]]} {probability[k]:.2f}",
            fontsize=8,
            color=RIGHT if right else WRONG,
        )
        for spine in ax.spines.values():
            spine.set_edgecolor(RIGHT if right else WRONG)
            spine.set_linewidth(1.0 if right else 2.5)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def one_image_step(
    picture: np.ndarray,
    classes: Sequence[str],
    true_class: int,
    before: np.ndarray,
    after: np.ndarray,
    lr: float,
    title: str,
) -> Figure:
    """One image, and its class probabilities before and after one gradient step on it.

    Args:
        picture: (H, W) or (H, W, 3) in [0, 1].
        before, after: (K,) softmax probabilities.
    """
    figure, (image_ax, bars_ax) = plt.subplots(
        1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 2.6]}
    )
    _show(image_ax, picture)
    image_ax.set_title(f"true class: {classes[true_class]}")
    positions = np.arange(len(classes))
    width = 0.38
    colors = ["tab:gray"] * len(classes)
    colors[true_class] = RIGHT
    bars_ax.bar(positions - width / 2, before, width, color=colors, alpha=0.45, label="before")
    bars_ax.bar(
        positions + width / 2,
        after,
        width,
        color=colors,
        edgecolor="black",
        linewidth=0.6,
        label=f"after one step (lr {lr:g})",
    )
    for x, value in ((true_class - width / 2, before), (true_class + width / 2, after)):
        bars_ax.annotate(
            f"{value[true_class]:.2f}",
            (x, value[true_class]),
            ha="center",
            va="bottom",
            fontsize=9,
            xytext=(0, 2),
            textcoords="offset points",
        )
    wrong = int(np.argmax(before))
    if wrong != true_class:
        bars_ax.annotate(
            f"{before[wrong]:.2f}",
            (wrong - width / 2, before[wrong]),
            ha="center",
            va="bottom",
            fontsize=9,
            xytext=(0, 2),
            textcoords="offset points",
        )
    bars_ax.set_xticks(positions, list(classes))
    if max(len(c) for c in classes) > 3:
        plt.setp(bars_ax.get_xticklabels(), rotation=30, ha="right")
    bars_ax.set_ylim(0, 1.1)
    bars_ax.set_ylabel("probability p = softmax(z)")
    bars_ax.set_xlabel("class (the true class in green)")
    bars_ax.grid(True, axis="y", alpha=0.3)
    bars_ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    figure.suptitle(title)
    figure.tight_layout()
    return figure
