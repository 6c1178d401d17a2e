"""Figures of the image demo: training curves, confusion matrix, test images, one image's step.

`figures` gives all six of a run (`FIGURES`) by file name; the gradient difference and the gradient
norm of each layer are `bpdemo.plots.training`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.artist import setp
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bpdemo.functional import LOSSES
from bpdemo.plots.training import draw_curves, gradient_difference, layer_gradient_norms
from bpdemo.train import History

if TYPE_CHECKING:
    from bpdemo.datasets.images import ImageSplit
    from bpdemo.experiment import Experiment
    from bpdemo.image_step import OneImageStep

RIGHT, WRONG = "tab:green", "tab:red"
FIGURES = (
    "loss_accuracy.png",
    "gradient_difference.png",
    "confusion_matrix.png",
    "test_images.png",
    "gradient_norms.png",
    "walkthrough.png",
    "saliency.png",
)
GRID_IMAGES, GRID_MISTAKES = 24, 12  # test images in the grid, and at most this many mistakes first


def loss_and_accuracy(history: History, title: str, loss: str) -> Figure:
    """The loss (log scale; `loss` names it, a key of `bpdemo.functional.LOSSES`) and accuracy per
    epoch, train and test, of both models, drawn as `bpdemo.plots.training.draw_curves` draws them."""
    figure = Figure(figsize=(12, 4.6))
    loss_ax, accuracy_ax = figure.subplots(1, 2)
    draw_curves(loss_ax, history, "loss")
    loss_ax.set_yscale("log")
    loss_ax.set_ylabel(f"loss {LOSSES[loss].label} (log scale)")
    loss_ax.set_title("loss")
    draw_curves(accuracy_ax, history, "accuracy")
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
    figure = Figure(figsize=(size, size))
    ax = figure.subplots()
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
        setp(ax.get_xticklabels(), rotation=30, ha="right")
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
    figure = Figure(figsize=(1.55 * columns, 1.85 * rows + 0.6))
    axes = figure.subplots(rows, columns)
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
    figure = Figure(figsize=(11, 4.2))
    image_ax, bars_ax = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2.6]})
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
    labelled = [
        (true_class - width / 2, before[true_class]),
        (true_class + width / 2, after[true_class]),
    ]
    wrong = int(np.argmax(before))
    if wrong != true_class:  # the class the network wrongly chose, before the step
        labelled.append((wrong - width / 2, before[wrong]))
    for x, value in labelled:
        bars_ax.annotate(
            f"{value:.2f}",
            (x, value),
            ha="center",
            va="bottom",
            fontsize=9,
            xytext=(0, 2),
            textcoords="offset points",
        )
    bars_ax.set_xticks(positions, list(classes))
    if max(len(c) for c in classes) > 3:
        setp(bars_ax.get_xticklabels(), rotation=30, ha="right")
    bars_ax.set_ylim(0, 1.1)
    bars_ax.set_ylabel("probability p = softmax(z)")
    bars_ax.set_xlabel("class (the true class in green)")
    bars_ax.grid(True, axis="y", alpha=0.3)
    bars_ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def figures(
    experiment: Experiment,
    split: ImageSplit,
    results: Mapping[str, Mapping[str, Any]],
    probabilities: Mapping[str, np.ndarray],
    walk: OneImageStep,
    predictions: Mapping[str, Any],
    network_name: str = "the network",
    mlp: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Callable[[], Figure]]:
    """The six figures of a finished run, by file name (`FIGURES`), of the hand-written model, each as
    the function that draws it (so a run saves each figure as soon as it is drawn).

    results: both networks' (`Experiment.results`); probabilities: each model's test probabilities
    (N_test, K); predictions: `bpdemo.scores.prediction_agreement`; mlp: the comparison MLP's
    ∂L/∂pixel of the walk-through's image, hand-written and autograd (F,) each, if there is one.
    """
    history, agreement, data = experiment.history, experiment.pair.agreement, split.data
    manual = probabilities["manual"]
    labels = split.labels("test")
    predicted = manual.argmax(1)
    name = data.description
    test_accuracy = results["manual"]["test"]["accuracy"]
    shown, which = grid_images(labels, predicted)
    loss_accuracy, differences, confusion_matrix, test_images, norms, walkthrough, pixels = FIGURES
    picture = data.pictures(data.x[split.test_index[[walk.test_image]]])[0]
    networks = [(network_name, walk.grad_pixels, walk.grad_pixels_autograd)]
    if mlp is not None:
        networks.append(("multilayer perceptron", *mlp))
    return {
        loss_accuracy: partial(
            loss_and_accuracy,
            history,
            title=f"Hand-written and autograd, per epoch: {name}",
            loss=walk.loss_name,
        ),
        differences: partial(gradient_difference, history, agreement.tolerance, agreement.dtype),
        confusion_matrix: partial(
            confusion,
            labels,
            predicted,
            data.classes,
            title=f"Hand-written model on {len(labels):,} test images\n"
            f"accuracy {test_accuracy:.4f}; autograd predicts the same for "
            f"{predictions['same_test_predictions']:,}",
        ),
        test_images: partial(
            image_grid,
            data.pictures(data.x[split.test_index[shown]]),
            labels[shown],
            predicted[shown],
            manual[shown, predicted[shown]],
            data.classes,
            title=f"{len(shown)} of the {len(labels):,} test images, hand-written model ({which}); "
            "pred = predicted class and its probability",
            numbers=shown.tolist(),
        ),
        norms: partial(layer_gradient_norms, history, title=f"Gradient norm of each layer: {name}"),
        walkthrough: partial(
            one_image_step,
            data.pictures(data.x[split.test_index[[walk.test_image]]])[0],
            data.classes,
            walk.true_class,
            walk.probabilities,
            walk.probabilities_after,
            walk.lr,
            title=f"Test image #{walk.test_image} ({walk.when}): class probabilities before and "
            f"after one gradient-descent step on it\nloss {LOSSES[walk.loss_name].label} "
            f"{walk.loss:.3f} → {walk.loss_after:.3f}",
        ),
        pixels: partial(
            saliency,
            picture,
            networks,
            data.image_shape,
            title=f"Test image #{walk.test_image} ({walk.when}), true class "
            f"{data.classes[walk.true_class]}: ∂L/∂pixel, which pixels push the loss up (red) "
            "or down (blue)",
        ),
    }


def saliency(
    picture: np.ndarray,
    rows: Sequence[tuple[str, np.ndarray, np.ndarray]],
    image_shape: tuple[int, int, int],
    title: str,
) -> Figure:
    """∂L/∂pixel of one image, a row per network (its label, hand-written (F,), autograd (F,)):
    the image, both models' gradients on one red (pushes the loss up) and blue scale, summed over
    the colour channels, and their difference on its own scale."""
    figure = Figure(figsize=(12, 3.1 * len(rows)))
    axes = figure.subplots(len(rows), 4, squeeze=False)
    for row, (label, manual, autograd) in enumerate(rows):
        maps = [g.reshape(image_shape).sum(axis=0) for g in (manual, autograd)]
        difference = maps[0] - maps[1]
        bound = float(np.abs(maps[0]).max()) or 1.0
        _show(axes[row, 0], picture)
        axes[row, 0].set_ylabel(label)
        axes[row, 0].set_title("the image", fontsize=10)
        for ax, values, name in zip(
            axes[row, 1:3], maps, ("hand-written ∂L/∂pixel", "autograd ∂L/∂pixel"), strict=True
        ):
            shown = ax.imshow(
                values, cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest"
            )
            ax.set_title(name, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
        figure.colorbar(shown, ax=axes[row, 1:3].tolist(), shrink=0.7)
        largest = float(np.abs(difference).max())
        scale = largest or 1.0
        shown = axes[row, 3].imshow(
            difference, cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest"
        )
        axes[row, 3].set_title(
            f"hand-written − autograd\nlargest |difference| {largest:.1e}", fontsize=10
        )
        axes[row, 3].set_xticks([])
        axes[row, 3].set_yticks([])
        figure.colorbar(shown, ax=axes[row, 3], shrink=0.7, format="%.0e")
    figure.suptitle(title)
    return figure


def grid_images(labels: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, str]:
    """The test images to show (their positions, mistakes first), and which they are, in words."""
    mistakes = np.flatnonzero(predicted != labels)[:GRID_MISTAKES]
    rest = [i for i in range(len(labels)) if i not in set(mistakes)]
    shown = np.concatenate([mistakes, rest[: GRID_IMAGES - len(mistakes)]]).astype(int)
    total_mistakes = int((predicted != labels).sum())
    which = (
        f"its {total_mistakes} mistake{'s' if total_mistakes != 1 else ''} first"
        if total_mistakes <= GRID_MISTAKES
        else f"{GRID_MISTAKES} of its {total_mistakes} mistakes first"
    )
    return shown, which
