"""House prices: a hand-written and an autograd network trained side by side, against scikit-learn.

    python -m demos.house_prices                                   # synthetic houses, offline
    python -m demos.house_prices --dataset csv --csv FILE --features "A,B" --target PRICE
    python -m demos.house_prices --dataset ames | --dataset california   # downloads once

The house example: predict a house's price from its bedrooms and square footage with a small network.
Both models start from the same weights, see the same mini-batches and are compared at every step; a
linear regression and scikit-learn's MLPRegressor (same hidden sizes) are fitted on the same split.
Prints progress, a results table in dollars, the agreement of the two models and the house example's
house before and after training; writes config.toml, metrics.json, history.csv, steps.csv and four
figures. Data: `bpdemo.datasets.houses`; figures: `bpdemo.plots.houses`.
"""

from __future__ import annotations

import sys
from typing import Annotated

from pydantic import Field

from bpdemo.baselines import fit_regressors
from bpdemo.datasets.house_table import MISSING
from bpdemo.datasets.houses import (
    DATASETS,
    EXAMPLE_BEDROOMS,
    EXAMPLE_LIVING_AREA,
    example_house,
    load_houses,
    split_houses,
)
from bpdemo.experiment import Experiment, check_model
from bpdemo.infra import cli
from bpdemo.infra.command import run_command
from bpdemo.infra.config import Name, Section, Seed, TrainSection, at_most, one_of
from bpdemo.infra.limits import MAX_HOUSES
from bpdemo.optim import OptimizerSpec
from bpdemo.plots import houses as plots
from bpdemo.report import agreement_line
from bpdemo.report import houses as report
from bpdemo.scores import house_price, price_scorer
from bpdemo.spec import ModelSection
from bpdemo.train import torch_threads

DEMO = "house_prices"


class HouseDataSection(Section):
    """[data]: where the houses come from, and how they are split (a key one source alone uses is
    None unless given: `bpdemo.datasets.houses.SOURCE_SETTINGS` has its default)."""

    dataset: Annotated[str, one_of(DATASETS)] = "synthetic"
    houses: at_most(MAX_HOUSES) | None = None  # synthetic only
    csv: str | None = None  # csv only
    features: list[Name] = Field(default_factory=list)
    target: Name | None = None
    missing: Annotated[str, one_of(MISSING)] = "drop"
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2


class WalkthroughSection(Section):
    """[walkthrough]: the house followed through training (by default the house example's)."""

    bedrooms: at_most(100) = EXAMPLE_BEDROOMS
    living_area_sqft: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] = (
        EXAMPLE_LIVING_AREA
    )


class HousePricesConfig(Section):
    seed: Seed = 0
    data: HouseDataSection = HouseDataSection()
    model: ModelSection = ModelSection(hidden=[16], activation="relu")
    optimizer: OptimizerSpec = OptimizerSpec("adam", lr=0.003, weight_decay=0.001)
    train: TrainSection = TrainSection(epochs=200, batch_size=128, threads=1)
    walkthrough: WalkthroughSection = WalkthroughSection()


# -- command line ------------------------------------------------------------------------------------------
EPILOG = """\
examples:
  python -m demos.house_prices                                   synthetic houses (offline, ~15 s)
  python -m demos.house_prices --dataset csv --csv data/houses_sample.csv \\
      --features "bedrooms,living_area_sqft" --target price
  python -m demos.house_prices --dataset csv --csv AmesHousing.csv \\
      --features "Bedroom AbvGr,Gr Liv Area" --target SalePrice
  python -m demos.house_prices --set model.hidden=[32,16] --set optimizer.lr=0.003

--csv FILE alone implies --dataset csv. Rows with a missing value in a used column are dropped and
counted (data.missing = "drop"); --set data.missing='"refuse"' makes them an error instead.
"""


def parse_args(argv: list[str] | None):
    parser = cli.common_parser(
        DEMO,
        "Train a hand-written and an autograd network side by side on house prices.",
        epilog=EPILOG,
    )
    data = parser.add_argument_group("data options")
    data.add_argument("--dataset", choices=DATASETS, help="data source (config: data.dataset)")
    data.add_argument("--csv", metavar="FILE", help="CSV file for --dataset csv (data.csv)")
    data.add_argument(
        "--features", metavar='"A,B,..."', help="input columns, comma-separated (data.features)"
    )
    data.add_argument("--target", metavar="COLUMN", help="price column (data.target)")
    return parser.parse_args(argv)


def data_overrides(args):
    """The data flags, as overrides of the config's [data] section."""
    flags = {
        "dataset": args.dataset or ("csv" if args.csv else None),
        "csv": args.csv,
        "features": None if args.features is None else cli.comma_list(args.features),
        "target": None if args.target is None else args.target.strip(),
    }
    return [cli.flag_override(f"data.{k}", v, f"--{k}") for k, v in flags.items() if v is not None]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = cli.load_demo_config(HousePricesConfig, args, data_overrides(args))
    check_model(config.model, "numbers", "a price needs one of {losses}")
    # small matrices: more threads cost more
    with torch_threads(config.train.threads), run_command(DEMO, args, config) as run:
        data = config.data
        # every [data] key but test_fraction says which houses to load
        houses = load_houses(**data.model_dump(exclude={"test_fraction"}), seed=config.seed)
        split = split_houses(houses, data.test_fraction, config.seed)
        experiment = Experiment.prepare(
            config,
            split,
            report.dataset_block(split),
            inputs=len(houses.features),
            outputs=1,
            run=run.folder,
        )
        run.write_config()
        run.say(report.describe_run(config, split))
        walk = config.walkthrough
        house = example_house(split, walk.bedrooms, walk.living_area_sqft)
        before = house_price(experiment.pair, split, house.x)
        run.say(report.describe_house(house, before))

        experiment.fit(quiet=args.quiet, description="house prices")
        results = experiment.results(price_scorer(split, config.model.loss))
        baselines = fit_regressors(split, config.model, config.seed, config.train.threads)
        after = house_price(experiment.pair, split, house.x)

        run.say(f"\nresults on {len(split.test_index):,} held-out test houses (prices in dollars):")
        run.say(report.results_table(results, baselines))
        run.say("\n" + agreement_line(experiment.pair))
        run.say(report.describe_house(house, before, after))

        metrics = experiment.metrics(
            results, baselines, walkthrough=report.house_block(house, before, after)
        )
        experiment.write(metrics, plots.figures(experiment, split, results, baselines))
        run.finish()
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
