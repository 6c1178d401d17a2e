"""A small offline data set: scikit-learn's bundled 8x8 digit images (`load_digits`), standardised.

1,797 images of handwritten digits 0-9, 64 pixel intensities 0-16 each, shipped inside scikit-learn
(no download). `small_digits` draws `rows` of them with a seeded permutation and standardises every
pixel to mean 0 and standard deviation 1 over those rows (a pixel that is constant there, such as the
always-blank corners, becomes 0). `digits_split` splits all of them into a training and a test part,
standardised on the training part, as the benchmark's end-to-end race uses them; `split_digits` is
the same split with the pixels as loaded and the standardisation beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from bpdemo.infra import interruption
from bpdemo.infra.errors import DataError

if TYPE_CHECKING:
    from sklearn.preprocessing import StandardScaler

DIGITS_ROWS = 1797


@dataclass(frozen=True)
class Digits:
    """x (rows, 64) standardised pixels, y (rows,) class labels 0-9, and a one-line description."""

    x: np.ndarray
    y: np.ndarray
    description: str

    @property
    def rows(self) -> int:
        return len(self.y)

    def tensors(self, dtype: torch.dtype, device: torch.device | str) -> tuple[Tensor, Tensor]:
        """(inputs (rows, 64) in `dtype`, labels (rows,) as torch.long), on `device`."""
        return (
            torch.as_tensor(self.x, dtype=dtype, device=device),
            torch.as_tensor(self.y, dtype=torch.long, device=device),
        )


def small_digits(rows: int, seed: int) -> Digits:
    """`rows` of the 1,797 digit images, chosen with `seed`, pixels standardised over those rows."""
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    interruption.set_phase("data")
    if not 1 <= rows <= DIGITS_ROWS:
        raise DataError(f"data.rows is {rows}; the digits data set has 1 to {DIGITS_ROWS} images")
    digits = load_digits()
    order = torch.randperm(DIGITS_ROWS, generator=torch.Generator().manual_seed(seed)).numpy()
    chosen = np.sort(order[:rows])
    x = StandardScaler().fit_transform(digits.data[chosen].astype(np.float64))
    return Digits(
        x=x,
        y=digits.target[chosen].astype(np.int64),
        description=(
            f"scikit-learn's bundled 8x8 digits: {rows:,} of {DIGITS_ROWS:,} images (chosen with "
            f"seed {seed}), 64 standardised pixels, 10 classes"
        ),
    )


@dataclass(frozen=True)
class DigitsSplit:
    """All 1,797 images split by class proportions (stratified): pixels (rows, 64) 0-16 as loaded,
    labels (rows,) int64, and the standardisation fitted on the training pixels."""

    train_pixels: np.ndarray
    train_labels: np.ndarray
    test_pixels: np.ndarray
    test_labels: np.ndarray
    scale: StandardScaler

    def standardised(self, pixels: np.ndarray) -> np.ndarray:
        """(rows, 64) pixels 0-16 less the training pixels' mean, over their deviation (1 where a
        pixel is constant on the training images, as a blank corner is)."""
        return self.scale.transform(pixels)

    @property
    def mean(self) -> np.ndarray:
        """(64,) what `standardised` takes from each pixel."""
        return self.scale.mean_

    @property
    def deviation(self) -> np.ndarray:
        """(64,) what `standardised` divides each pixel by."""
        return self.scale.scale_


def split_digits(test_size: float = 0.25, seed: int = 0) -> DigitsSplit:
    """The split of `digits_split`, its pixels as loaded: for a caller that standardises other
    images (one drawn on a page) as the training images were."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    return DigitsSplit(
        train_pixels=x_train,
        train_labels=y_train.astype(np.int64),
        test_pixels=x_test,
        test_labels=y_test.astype(np.int64),
        scale=StandardScaler().fit(x_train),
    )


def digits_split(
    test_size: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All 1,797 images split by class proportions (stratified): (x_train, y_train, x_test, y_test),
    pixels (rows, 64) standardised with the training rows' mean and deviation, labels (rows,) int64."""
    split = split_digits(test_size, seed)
    return (
        split.standardised(split.train_pixels),
        split.train_labels,
        split.standardised(split.test_pixels),
        split.test_labels,
    )
