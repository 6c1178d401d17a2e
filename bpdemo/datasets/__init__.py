"""Data sources for the demos: houses (`houses.py`), images (`images.py`), and the small digits set
of the gradient-health demo (`digits.py`).

Downloads are cached in `DATA_DIR`: `$BPDEMO_DATA` if set; else, run from the repository, its
`data/` folder; else, installed, the user's cache folder (`$XDG_CACHE_HOME/bpdemo`, by default
`~/.cache/bpdemo`), never the installed package. In it, `sklearn/` for scikit-learn's fetchers
(OpenML's Ames table, California housing) and `cifar10/` for torchvision's CIFAR-10. Nothing is
downloaded unless a user asks for a data set that needs it; without network the fetch fails with
one clear `DataError` line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bpdemo.infra.errors import DataError
from bpdemo.infra.shipped import CHECKOUT


def _default_data_dir() -> Path:
    if CHECKOUT is not None:
        return CHECKOUT / "data"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bpdemo"


DATA_DIR = Path(os.environ.get("BPDEMO_DATA") or _default_data_dir())
SKLEARN_CACHE = DATA_DIR / "sklearn"
CIFAR10_CACHE = DATA_DIR / "cifar10"


def source_settings(
    dataset: str, given: Mapping[str, Any], settings: Mapping[str, tuple[str, str, Any]]
) -> dict[str, Any]:
    """The settings that one source alone uses, each given (not None) or its default.

    `settings` holds, for each such key, (the source that uses it, the flag that sets it, its
    default). A key given for another source is refused: it would be ignored without a word.
    """
    resolved = {}
    for key, value in given.items():
        source, flag, default = settings[key]
        if value is not None and dataset != source:
            named = f"{flag} (data.{key})" if flag.startswith("--") else f"data.{key} ({value})"
            raise DataError(
                f"{named} is for --dataset {source}, but the data source is {dataset} "
                f"(data.dataset): drop it, or choose --dataset {source}"
            )
        resolved[key] = default if value is None else value
    return resolved
