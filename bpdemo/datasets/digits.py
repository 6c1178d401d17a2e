"""A small offline data set: scikit-learn's bundled 8x8 digit images (`load_digits`), standardised.

1,797 images of handwritten digits 0-9, 64 pixel intensities 0-16 each, shipped inside scikit-learn
(no download). `small_digits` draws `rows` of them with a seeded permutation and standardises every
pixel to mean 0 and standard deviation 1 over those rows (a pixel that is constant there, such as the
always-blank corners, becomes 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from bpdemo.errors import DataError

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
