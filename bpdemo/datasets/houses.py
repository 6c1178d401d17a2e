"""House-price data: a calibrated synthetic generator, any CSV file, and two downloadable tables.

Every source ends as a `HouseData`: numeric features (N, F) and sale prices in dollars (N,), float64,
with the rows that had a missing value dropped (and counted) or refused. `split_houses` then draws a
train/test split from the seed and fits the standardisation of features and price on the training
rows only, so nothing about the test houses leaks into training.

Sources (`load_houses(dataset=...)`):

- `synthetic` (offline, the default): `synthetic_houses` below; its price rule is `rule_price`.
- `csv`: any CSV file, read with pandas; column names may contain spaces (`house_table.py` reads
  it and checks every column used).
- `ames`: OpenML's `house_prices` table (the 1,460 Ames sales of the Kaggle competition, column names
  without spaces: `BedroomAbvGr`, `GrLivArea`, `SalePrice`), cached under `data/sklearn/`.
- `california`: scikit-learn's California housing (20,640 census block groups, 1990); its target,
  the median house value in units of $100,000, is converted to dollars.

Every problem with the data is one `DataError` line: what is wrong, where, and what to do.

Run `python -m bpdemo.datasets.houses --sample data/houses_sample.csv` to write a small sample of the
synthetic houses, in the format `--dataset csv` expects.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bpdemo.datasets import SKLEARN_CACHE, source_settings
from bpdemo.datasets.house_table import HouseData, load_csv, squeeze, table_to_houses
from bpdemo.infra import interruption
from bpdemo.infra.errors import DataError

if TYPE_CHECKING:  # scikit-learn is imported where it is used: it takes most of a second to load
    from sklearn.preprocessing import StandardScaler

DATASETS = ("synthetic", "csv", "ames", "california")

# -- the synthetic houses ------------------------------------------------------------------------------
# Calibrated to the Ames, Iowa sales of 2006-2010 (De Cock 2011; 2,930 sales): living area mean
# 1,500 sq ft, standard deviation 506, skewed to the right; bedrooms above grade mostly 2 to 4,
# median 3; sale price mean $180,800, standard deviation $79,900.
BEDROOMS, LIVING_AREA, PRICE = "bedrooms", "living_area_sqft", "price"
AREA_MEAN, AREA_STD = 1500.0, 506.0
# Share of the Ames houses with 1 (0 or 1), 2, 3, 4, 5 and 6 or more bedrooms.
BEDROOM_SHARES = (0.041, 0.2536, 0.5451, 0.1365, 0.0164, 0.0074)
BEDROOM_AREA_CORRELATION = 0.5  # of the latent score behind the bedroom count with log living area
BASE_PRICE = 181_000.0  # the rule's price of a 1,500 sq ft, 3-bedroom house
AREA_EXPONENT = 1.1  # price grows a little faster than the living area
NOISE_SIGMA = 0.19  # log-normal noise: a typical house sells within about ±19% of its rule price


def rule_price(bedrooms: np.ndarray | float, living_area: np.ndarray | float) -> np.ndarray:
    """The synthetic market's price rule, in dollars, before noise.

        price = 181,000 · (living_area / 1,500)^1.1 · exp(0.05·(b − 3) − 0.04·(b − 3)²)

    Living area raises the price a little faster than proportionally. At a given area, a third
    bedroom adds value, but more bedrooms than three make the rooms small and lower it again.
    A sale price is this times exp(ε), ε ~ N(0, 0.19²).
    """
    extra = np.asarray(bedrooms, dtype=np.float64) - 3.0
    area = np.asarray(living_area, dtype=np.float64)
    return BASE_PRICE * (area / AREA_MEAN) ** AREA_EXPONENT * np.exp(0.05 * extra - 0.04 * extra**2)


def synthetic_houses(n: int, seed: int = 0) -> pd.DataFrame:
    """`n` houses from the calibrated generator: columns bedrooms, living_area_sqft, price ($).

    Living area is log-normal with mean 1,500 and standard deviation 506 sq ft. Bedrooms come from
    a latent score correlated (0.5) with log living area, cut at the Ames shares of 1 to 6 bedrooms,
    so bigger houses tend to have more bedrooms and the counts match Ames. Prices follow
    `rule_price` times log-normal noise, rounded to $100; the mean is about $180,800 and the
    standard deviation about $79,900, as in Ames.
    """
    rng = np.random.default_rng(seed)
    log_sigma = math.sqrt(math.log(1.0 + (AREA_STD / AREA_MEAN) ** 2))
    log_mu = math.log(AREA_MEAN) - log_sigma**2 / 2
    area_score = rng.standard_normal(n)
    living_area = np.round(np.exp(log_mu + log_sigma * area_score))
    rho = BEDROOM_AREA_CORRELATION
    latent = rho * area_score + math.sqrt(1 - rho**2) * rng.standard_normal(n)
    cuts = [NormalDist().inv_cdf(p) for p in np.cumsum(BEDROOM_SHARES)[:-1]]
    bedrooms = 1 + np.searchsorted(cuts, latent)
    noise = np.exp(NOISE_SIGMA * rng.standard_normal(n))
    price = np.round(rule_price(bedrooms, living_area) * noise, -2)
    return pd.DataFrame(
        {
            BEDROOMS: bedrooms.astype(np.int64),
            LIVING_AREA: living_area.astype(np.int64),
            PRICE: price,
        }
    )


# -- the sources ---------------------------------------------------------------------------------------
DEFAULT_COLUMNS = {
    "synthetic": ([BEDROOMS, LIVING_AREA], PRICE),
    "ames": (["BedroomAbvGr", "GrLivArea"], "SalePrice"),
    "california": (
        [
            "MedInc",
            "HouseAge",
            "AveRooms",
            "AveBedrms",
            "Population",
            "AveOccup",
            "Latitude",
            "Longitude",
        ],
        "MedHouseVal",
    ),
}
CALIFORNIA_DOLLARS = 100_000.0  # MedHouseVal is in units of $100,000
SYNTHETIC_HOUSES = 2000  # the default number of synthetic houses
# The settings that one source alone uses: (the source, the flag that sets it, its default).
SOURCE_SETTINGS = {
    "csv": ("csv", "--csv", None),
    "houses": ("synthetic", "data.houses", SYNTHETIC_HOUSES),
}


def load_houses(
    dataset: str = "synthetic",
    *,
    csv: str | Path | None = None,
    features: Sequence[str] = (),
    target: str | None = None,
    houses: int | None = None,
    seed: int = 0,
    missing: str = "drop",
) -> HouseData:
    """Load houses from one of `DATASETS`; `features` and `target` default to the source's own.

    Args:
        csv: the file, for `dataset="csv"` (which also needs `features` and `target`).
        houses, seed: how many synthetic houses (`SYNTHETIC_HOUSES` if None), and the generator's
            seed.
        missing: `drop` (rows with a missing value in a used column are dropped and counted) or
            `refuse` (a missing value is a `DataError`).

    A setting the source does not use (`csv` for another source, `houses` for a table) is refused;
    None is a setting not given.
    """
    interruption.set_phase("data")
    given = source_settings(dataset, {"csv": csv, "houses": houses}, SOURCE_SETTINGS)
    features = [name.strip() for name in features if name.strip()]
    if dataset == "csv":
        if csv is None or not str(csv).strip():
            raise DataError(
                '--dataset csv needs a file: --csv FILE --features "A,B,..." --target COLUMN'
            )
        if not features or not target:
            raise DataError(
                f'--dataset csv needs the columns to use: --features "A,B,..." and --target COLUMN '
                f"(for {csv})"
            )
        return load_csv(csv, features, target, missing=missing)
    if dataset not in DEFAULT_COLUMNS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    default_features, default_target = DEFAULT_COLUMNS[dataset]
    features = features or default_features
    target = target or default_target
    if dataset == "synthetic":
        frame = synthetic_houses(given["houses"], seed)
        where = f"synthetic houses (seed {seed})"
        return table_to_houses(frame, features, target, "synthetic", where, missing=missing)
    if dataset == "ames":
        return load_ames(features, target, missing=missing)
    return load_california(features, target, missing=missing)


def load_ames(
    features: Sequence[str] = DEFAULT_COLUMNS["ames"][0],
    target: str = DEFAULT_COLUMNS["ames"][1],
    missing: str = "drop",
) -> HouseData:
    """OpenML's `house_prices` (Ames sales, Kaggle's 1,460), downloaded once into `data/sklearn/`."""
    from sklearn.datasets import fetch_openml  # looked up at call time, so tests can replace it

    try:
        with quiet_retries():
            bunch = fetch_openml(
                name="house_prices", version=1, as_frame=True, data_home=str(SKLEARN_CACHE)
            )
    except OSError as error:  # URLError, HTTPError, timeouts, a cache that cannot be written
        raise DataError(offline_message("the Ames table from OpenML", error, "SalePrice")) from None
    return table_to_houses(bunch.frame, features, target, "ames", "the Ames table", missing=missing)


def load_california(
    features: Sequence[str] = DEFAULT_COLUMNS["california"][0],
    target: str = DEFAULT_COLUMNS["california"][1],
    missing: str = "drop",
) -> HouseData:
    """scikit-learn's California housing, downloaded once into `data/sklearn/`; target in dollars."""
    from sklearn.datasets import fetch_california_housing

    try:
        with quiet_retries():
            bunch = fetch_california_housing(data_home=str(SKLEARN_CACHE), as_frame=True)
    except OSError as error:
        raise DataError(
            offline_message("the California housing data", error, "MedHouseVal")
        ) from None
    data = table_to_houses(
        bunch.frame, features, target, "california", "the California housing table", missing
    )
    if target == DEFAULT_COLUMNS["california"][1]:
        data.y = data.y * CALIFORNIA_DOLLARS
        data.notes.append("MedHouseVal (units of $100,000) converted to dollars")
    return data


@contextlib.contextmanager
def quiet_retries():
    """Silence scikit-learn's "network error ... Retrying" warnings: a failure is our one line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def offline_message(what: str, error: OSError, target: str) -> str:
    reason = getattr(error, "reason", None) or error.strerror or error
    return (
        f"cannot download {what} (no network? {reason}); use a local file instead: "
        f'--dataset csv --csv FILE --features "A,B" --target {target}, or the offline default '
        "--dataset synthetic"
    )


# -- split and standardisation ---------------------------------------------------------------------------
MIN_TRAIN_ROWS, MIN_TEST_ROWS = 5, 2


@dataclass
class HouseSplit:
    """A train/test split of `data`, with standardisers fitted on the training rows only.

    Attributes:
        x_train, x_test: (N_train, F), (N_test, F) raw features.
        y_train, y_test: (N_train,), (N_test,) prices in dollars.
        features, prices: scikit-learn `StandardScaler`s of the features (per column) and of the
            price, fitted on the training rows (a constant column gets scale 1: it becomes 0).
    """

    data: HouseData
    train_index: np.ndarray
    test_index: np.ndarray
    features: StandardScaler = field(init=False)
    prices: StandardScaler = field(init=False)

    def __post_init__(self) -> None:
        from sklearn.preprocessing import StandardScaler

        self.features = StandardScaler().fit(self.x_train)
        self.prices = StandardScaler().fit(self.y_train[:, None])
        table = np.column_stack([self.data.x, self.data.y])
        means = np.concatenate([self.features.mean_, self.prices.mean_])
        scales = np.concatenate([self.features.scale_, self.prices.scale_])
        for i, column in enumerate([*self.data.features, self.data.target]):
            if not (np.isfinite(means[i]) and np.isfinite(scales[i])):
                raise DataError(
                    f"{self.data.source}: column {column!r} is too large to standardise (values "
                    f"up to {np.abs(table[:, i]).max():.3g}: their mean or spread overflows float64); "
                    "rescale it, e.g. into thousands"
                )

    @property
    def x_train(self) -> np.ndarray:
        return self.data.x[self.train_index]

    @property
    def x_test(self) -> np.ndarray:
        return self.data.x[self.test_index]

    @property
    def y_train(self) -> np.ndarray:
        return self.data.y[self.train_index]

    @property
    def y_test(self) -> np.ndarray:
        return self.data.y[self.test_index]

    def standardised(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(x (N, F), y (N, 1)) of `split` ("train" or "test"), both standardised, float64."""
        x, y = (self.x_train, self.y_train) if split == "train" else (self.x_test, self.y_test)
        return self.features.transform(x), self.prices.transform(y[:, None])

    def tensors(self, split: str, dtype, device="cpu"):
        """`standardised(split)` as torch tensors of `dtype` on `device`."""
        import torch

        x, y = self.standardised(split)
        return (
            torch.as_tensor(x, dtype=dtype, device=device),
            torch.as_tensor(y, dtype=dtype, device=device),
        )

    def to_dollars(self, standardised_price) -> np.ndarray:
        """Standardised prices (N,) or (N, 1), numpy or torch, back to dollars (N,)."""
        values = np.asarray(
            standardised_price.detach().cpu().double()
            if hasattr(standardised_price, "detach")
            else standardised_price,
            dtype=np.float64,
        )
        return self.prices.inverse_transform(values.reshape(-1, 1)).reshape(-1)


def split_houses(data: HouseData, test_fraction: float = 0.2, seed: int = 0) -> HouseSplit:
    """Hold out round(test_fraction · N) rows, drawn with `seed` (scikit-learn's `train_test_split`)."""
    n = data.rows
    n_test = round(test_fraction * n)
    if n_test < MIN_TEST_ROWS or n - n_test < MIN_TRAIN_ROWS:
        raise DataError(
            f"{data.source}: too few rows to split: {n} usable rows give {n_test} test and "
            f"{n - n_test} training rows (data.test_fraction = {test_fraction:g}); at least "
            f"{MIN_TEST_ROWS} test and {MIN_TRAIN_ROWS} training rows are needed, so add rows"
        )
    from sklearn.model_selection import train_test_split

    train_index, test_index = train_test_split(np.arange(n), test_size=n_test, random_state=seed)
    split = HouseSplit(data, train_index=np.sort(train_index), test_index=np.sort(test_index))
    if np.all(split.y_train == split.y_train[0]):
        raise DataError(
            f"{data.source}: the target {data.target!r} has one value in every training row; "
            "add rows with other prices"
        )
    return split


# -- the walk-through house --------------------------------------------------------------------------------
def bedroom_column(features: Sequence[str]) -> str | None:
    """The feature that counts bedrooms (`bedrooms`, `BedroomAbvGr`, `Bedroom AbvGr`), if any."""
    return next((f for f in features if "bedroom" in squeeze(f)), None)


def living_area_column(features: Sequence[str]) -> str | None:
    """The feature holding the living area in sq ft (`living_area_sqft`, `Gr Liv Area`), if any."""
    keys = ("livarea", "livingarea", "sqftliving", "sqft")
    return next((f for f in features if any(k in squeeze(f) for k in keys)), None)


@dataclass
class ExampleHouse:
    """One house to follow through training: its features (F,), and what was set how.

    `rule_price` is the synthetic market's price of the house asked for, before noise (synthetic
    houses only, else None).
    """

    x: np.ndarray
    description: str
    values: dict[str, float]
    rule_price: float | None = None


# The house example's house: the one a demo follows through training.
EXAMPLE_BEDROOMS, EXAMPLE_LIVING_AREA = 3, 2000.0  # sq ft


def example_house(
    split: HouseSplit, bedrooms: float = EXAMPLE_BEDROOMS, living_area: float = EXAMPLE_LIVING_AREA
) -> ExampleHouse:
    """A house of `bedrooms` and `living_area` (sq ft; by default the house example's), every other
    feature at its training median.

    Where the data have no bedroom or living-area column, that part is left at the median too, and
    the description says so.
    """
    features = split.data.features
    x = np.median(split.x_train, axis=0)
    given = []
    for column, value, unit in (
        (bedroom_column(features), bedrooms, "bedrooms"),
        (living_area_column(features), living_area, "sq ft"),
    ):
        if column is not None:
            x[features.index(column)] = value
            given.append(f"{value:,.0f} {unit}")
    if not given:
        description = (
            "the median training house (this data set has no bedrooms or living-area column)"
        )
    else:
        description = ", ".join(given)
        if len(given) < len(features):
            description += " (every other feature at its training median)"
    synthetic = split.data.name == "synthetic"
    return ExampleHouse(
        x=x,
        description=description,
        values=dict(zip(features, x.tolist(), strict=True)),
        rule_price=float(rule_price(bedrooms, living_area)) if synthetic else None,
    )


# -- the sample file in data/ ------------------------------------------------------------------------------
def write_sample(path: str | Path, rows: int = 40, seed: int = 0) -> Path:
    """Write `rows` synthetic houses as CSV (the format `--dataset csv` reads)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic_houses(rows, seed).to_csv(path, index=False, float_format="%.0f")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bpdemo.datasets.houses",
        description="Write a sample of the synthetic houses as CSV.",
    )
    parser.add_argument("--sample", metavar="FILE", required=True, help="CSV file to write")
    parser.add_argument("--rows", type=int, default=40, help="number of houses (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    path = write_sample(args.sample, args.rows, args.seed)
    print(f"wrote {args.rows} synthetic houses to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
