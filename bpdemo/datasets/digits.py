"""A small offline data set: scikit-learn's bundled 8x8 digit images (`load_digits`), standardised.

1,797 images of handwritten digits 0-9, 64 pixel intensities 0-16 each, shipped inside scikit-learn
(no download). `small_digits` draws `rows` of them with a seeded permutation and standardises every
pixel to mean 0 and standard deviation 1 over those rows (a pixel that is constant there, such as the
always-blank corners, becomes 0). `digits_split` splits all of them into a training and a test part,
standardised on the training part, as the benchmark's end-to-end race uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from bpdemo.infra import interruption
from bpdemo.infra.errors import DataError

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


def digits_split(
    test_size: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All 1,797 images split by class proportions (stratified): (x_train, y_train, x_test, y_test),
    pixels (rows, 64) standardised with the training rows' mean and deviation, labels (rows,) int64."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    scale = StandardScaler().fit(x_train)  # a pixel constant on train (a blank corner) becomes 0
    return (
        scale.transform(x_train),
        y_train.astype(np.int64),
        scale.transform(x_test),
        y_test.astype(np.int64),
    )
