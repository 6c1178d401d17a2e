"""Data sources for the demos: houses (`houses.py`), images (`images.py`), and the small digits set
of the gradient-health demo (`digits.py`).

Downloads are cached under the project's `data/` folder (or `$BPDEMO_DATA` if set):
`data/sklearn/` for scikit-learn's fetchers (OpenML's Ames table, California housing) and
`data/cifar10/` for torchvision's CIFAR-10. Nothing is downloaded unless a user asks for a data set
that needs it; without network the fetch fails with one clear `DataError` line.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR = Path(os.environ.get("BPDEMO_DATA", Path(__file__).resolve().parents[2] / "data"))
SKLEARN_CACHE = DATA_DIR / "sklearn"
CIFAR10_CACHE = DATA_DIR / "cifar10"
