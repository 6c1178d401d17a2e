"""Images as the image demo trains on them (`ImageData`), and how classes and images are chosen
from a source, the same way for every source (`bpdemo.datasets.images` and `image_folder`)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bpdemo.infra.errors import DataError

CLASS_ALIASES = {"car": "automobile", "plane": "airplane"}


@dataclass
class ImageData:
    """Images ready for training.

    Attributes:
        name: the source, one of `DATASETS`.
        description: where the images came from, for messages and titles.
        x: (N, C·H·W) float64 pixels in [0, 1], each image flattened channel by channel, row by row
            (the order of `tensor.flatten()` on a (C, H, W) tensor).
        y: (N,) int64 labels, indices into `classes`.
        classes: the class names, K of them.
        image_shape: (C, H, W) of one image.
        notes: what the user should know about how the images were read (printed by the demo).
    """

    name: str
    description: str
    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    image_shape: tuple[int, int, int]
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.y)

    def counts(self) -> dict[str, int]:
        """Images per class, in class order."""
        counts = np.bincount(self.y, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts, strict=True))

    def pictures(self, rows: np.ndarray) -> np.ndarray:
        """Flattened images (M, C·H·W) back as pictures: (M, H, W) if grayscale, else (M, H, W, 3)."""
        channels, height, width = self.image_shape
        images = np.asarray(rows).reshape(-1, channels, height, width)
        return images[:, 0] if channels == 1 else images.transpose(0, 2, 3, 1)


# -- choosing classes and images --------------------------------------------------------------------------
def select_classes(available: Sequence[str], wanted: Sequence[str], where: str) -> list[int]:
    """Indices into `available` of the `wanted` class names, in the wanted order (all if none).

    A name not there is a `DataError` that lists the names that are (and suggests a close one).
    """
    if not wanted:
        return list(range(len(available)))
    indices = []
    for name in wanted:
        key = CLASS_ALIASES.get(name.lower(), name) if name not in available else name
        if key not in available:
            close = difflib.get_close_matches(name, list(available), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataError(
                f"{where} has no class {name!r}{hint}; its classes are: {', '.join(available)}"
            )
        index = list(available).index(key)
        if index in indices:
            raise DataError(f"{where}: class {key!r} is listed twice in --classes")
        indices.append(index)
    if len(indices) < 2:
        raise DataError(
            f"{where}: --classes names one class ({available[indices[0]]}); a classifier needs at "
            "least two"
        )
    return indices


def keep_classes(labels: np.ndarray, chosen: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(rows of the chosen classes, their labels renumbered 0..K-1 in the chosen order)."""
    new_label = np.full(max(int(labels.max()), *chosen) + 1, -1, dtype=np.int64)
    new_label[list(chosen)] = np.arange(len(chosen))
    rows = np.flatnonzero(new_label[labels] >= 0)
    return rows, new_label[labels[rows]]


def pick_per_class(labels: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    """Positions of at most `per_class` images of each class, drawn from `seed`, in their order."""
    if per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    picked = [
        rng.permutation(np.flatnonzero(labels == label))[:per_class] for label in np.unique(labels)
    ]
    return np.sort(np.concatenate(picked))
