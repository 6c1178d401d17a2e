"""Figures of what a convolutional network learned: the first convolution's filters in both models,
and the feature maps of one image through each layer (`figures` gives both by file name).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
from matplotlib.figure import Figure

from bpdemo import image_cnn
from bpdemo.plots.images import _show

MAX_CHANNELS = 8  # feature maps shown per layer
FIGURES = ("filters.png", "feature_maps.png")


def _colour(weights: np.ndarray) -> np.ndarray:
    """Filters (out, 3, kh, kw) as pictures (out, kh, kw, 3) in [0, 1], each scaled on its own."""
    pictures = weights.transpose(0, 2, 3, 1)
    low = pictures.min(axis=(1, 2, 3), keepdims=True)
    high = pictures.max(axis=(1, 2, 3), keepdims=True)
    return (pictures - low) / np.maximum(high - low, 1e-12)


def filters(manual: np.ndarray, autograd: np.ndarray, title: str) -> Figure:
    """The first layer's filters (out, C, kh, kw) of both models, up to `MAX_CHANNELS` a row, the
    hand-written row above autograd's: a kernel of one channel in red (positive) and blue
    (negative) on one scale; of three channels as colours."""
    count, channels = manual.shape[:2]
    columns = min(MAX_CHANNELS, count)
    blocks = -(-count // columns)
    figure = Figure(figsize=(1.3 * columns + 1.6, 2.7 * blocks + 0.8))
    axes = figure.subplots(2 * blocks, columns, squeeze=False)
    bound = float(np.abs(manual).max()) or 1.0
    for ax in axes.flat:
        ax.axis("off")
    for model, (label, weights) in enumerate([("hand-written", manual), ("autograd", autograd)]):
        pictures = _colour(weights) if channels == 3 else weights.sum(axis=1)
        for k in range(count):
            ax = axes[2 * (k // columns) + model, k % columns]
            ax.axis("on")
            if channels == 3:
                ax.imshow(pictures[k], interpolation="nearest")
            else:
                ax.imshow(
                    pictures[k], cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest"
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if model == 0:
                ax.set_title(f"filter {k}", fontsize=9)
            if k % columns == 0:
                ax.set_ylabel(label, fontsize=9)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def feature_maps(picture: np.ndarray, maps: Sequence[image_cnn.FeatureMap], title: str) -> Figure:
    """One image (H, W) or (H, W, 3) and, a row per layer, the first `MAX_CHANNELS` channels of the
    hand-written model's output there (each channel on its own grey scale)."""
    columns = min(MAX_CHANNELS, max(m.manual.shape[0] for m in maps))
    figure = Figure(figsize=(1.25 * columns + 1.8, 1.35 * (len(maps) + 1) + 0.8))
    axes = figure.subplots(len(maps) + 1, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    _show(axes[0, 0], picture)
    axes[0, 0].axis("on")
    axes[0, 0].set_title("the image", fontsize=9)
    for row, feature in enumerate(maps, start=1):
        for k in range(min(columns, feature.manual.shape[0])):
            ax = axes[row, k]
            ax.imshow(feature.manual[k], cmap="viridis", interpolation="nearest")
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
        channels, height, width = feature.manual.shape
        axes[row, 0].set_ylabel(
            f"layer {feature.layer}\n{feature.name}\n{channels}×{height}×{width}", fontsize=8
        )
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def figures(pair, picture: np.ndarray, x, test_image: int) -> dict[str, Callable[[], Figure]]:
    """Both figures of a trained convolutional `pair`, by file name, each as the function that draws
    it; the feature maps are of test image `test_image`, x (F,), shown as `picture`."""
    manual, autograd = image_cnn.first_filters(pair)
    maps = image_cnn.feature_maps(pair, x)
    filter_difference = float(np.abs(manual - autograd).max())
    map_difference = max(float(np.abs(m.manual - m.autograd).max()) for m in maps)
    out, channels, kh, kw = manual.shape
    return {
        FIGURES[0]: partial(
            filters,
            manual,
            autograd,
            title=f"What the first layer's {out} filters ({channels}×{kh}×{kw}) learned: "
            f"hand-written and autograd\nlargest |difference| {filter_difference:.1e}",
        ),
        FIGURES[1]: partial(
            feature_maps,
            picture,
            maps,
            title=f"Test image #{test_image} through each layer (hand-written model)\n"
            f"largest |difference| from autograd's feature maps {map_difference:.1e}",
        ),
    }
