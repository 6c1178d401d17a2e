"""House prices: a hand-written and an autograd network trained side by side, against scikit-learn.

    python -m demos.house_prices                                   # synthetic houses, offline
    python -m demos.house_prices --dataset csv --csv FILE --features "A,B" --target PRICE
    python -m demos.house_prices --dataset ames | --dataset california   # downloads once

Seed 003's example: predict a house's price from its bedrooms and square footage with a small network.
Both models start from the same weights, see the same mini-batches and are compared at every step; a
linear regression and scikit-learn's MLPRegressor (same hidden sizes) are fitted on the same split.
Prints progress, a results table in dollars, the agreement of the two models and one house (3
bedrooms, 2,000 sq ft) before and after training; writes config.toml, metrics.json, history.csv,
steps.csv and four figures. Data: `bpdemo.datasets.houses`; figures: `bpdemo.plots.houses`.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import Field

from bpdemo import SideBySide, fit
from bpdemo.cli import comma_list, common_parser, load_demo_config, printer, run_main, set_override
from bpdemo.config import (
    ModelSection,
    OptimizerSection,
    PositiveFloat,
    PositiveInt,
    Section,
    TrainSection,
    dump_config,
)
from bpdemo.datasets.houses import (
    DATASETS,
    ExampleHouse,
    HouseSplit,
    example_house,
    load_houses,
    rule_price,
    split_houses,
)
from bpdemo.errors import ConfigError
from bpdemo.functional import LOSSES
from bpdemo.outputs import RunDir
from bpdemo.plots.houses import error_distribution, predicted_vs_actual
from bpdemo.plots.training import gradient_difference, loss_curves
from bpdemo.report import (
    agreement,
    agreement_line,
    run_status,
    stop_if_unfinished,
    write_history,
)

DEMO = "house_prices"
REGRESSION_LOSSES = ("mse", "half_sse", "sse")
# MLPRegressor's activations; ours without a counterpart there leave it at its default, relu.
SKLEARN_ACTIVATIONS = {
    "identity": "identity",
    "sigmoid": "logistic",
    "tanh": "tanh",
    "relu": "relu",
}
SKLEARN_MAX_ITER = 1000  # its default 200 can stop before its own convergence test is met
MODELS = {
    "manual": "hand-written",
    "autograd": "autograd",
    "linear": "linear regression",
    "sklearn_mlp": "scikit-learn MLP",
}


class HouseDataSection(Section):
    """[data]: where the houses come from, and how they are split."""

    dataset: Literal["synthetic", "csv", "ames", "california"] = "synthetic"
    houses: PositiveInt = 2000
    csv: str | None = None
    features: list[str] = Field(default_factory=list)
    target: str | None = None
    missing: Literal["drop", "refuse"] = "drop"
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2


class WalkthroughSection(Section):
    """[walkthrough]: the house followed through training (seed 003's: 3 bedrooms, 2,000 sq ft)."""

    bedrooms: PositiveInt = 3
    living_area_sqft: PositiveFloat = 2000.0


class HousePricesConfig(Section):
    seed: int = 0
    data: HouseDataSection = HouseDataSection()
    model: ModelSection = ModelSection(hidden=[16], activation="relu")
    optimizer: OptimizerSection = OptimizerSection(name="adam", lr=0.003, weight_decay=0.001)
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
    parser = common_parser(
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


def data_overrides(args) -> list[str]:
    """The data flags as `--set` overrides (values written as TOML strings)."""
    overrides = []
    dataset = args.dataset or ("csv" if args.csv else None)
    if dataset is not None:
        overrides.append(set_override("data.dataset", dataset))
    if args.csv is not None:
        overrides.append(set_override("data.csv", args.csv))
    if args.features is not None:
        features = comma_list(args.features)
        overrides.append(set_override("data.features", features))
    if args.target is not None:
        overrides.append(set_override("data.target", args.target.strip()))
    return overrides


# -- evaluation in dollars ---------------------------------------------------------------------------------
def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MAE (dollars) and R² = 1 − Σ(ŷ − y)² / Σ(y − ȳ)² of predictions (N,) against prices (N,)."""
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    return {
        "rmse": float(root_mean_squared_error(actual, predicted)),
        "mae": float(mean_absolute_error(actual, predicted)),
        "r2": float(r2_score(actual, predicted)),
    }


def split_metrics(split: HouseSplit, loss: str, which: str, standardised_prediction) -> dict:
    """`regression_metrics` in dollars, plus the training loss on the standardised price."""
    prediction = torch.as_tensor(
        np.asarray(standardised_prediction, dtype=np.float64).reshape(-1, 1)
    )
    _, target = split.standardised(which)
    loss_value = float(LOSSES[loss].value(prediction, torch.as_tensor(target)))
    actual = split.y_train if which == "train" else split.y_test
    return {"loss": loss_value, **regression_metrics(actual, split.to_dollars(prediction))}


def fit_baselines(split: HouseSplit, config: HousePricesConfig) -> dict[str, dict[str, Any]]:
    """LinearRegression and MLPRegressor (same hidden sizes, seed) on the same standardised split.

    Returns, per baseline: `train` and `test` metrics, `train_seconds`, and the standardised test
    predictions under `predictions` (N_test,).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LinearRegression
    from sklearn.neural_network import MLPRegressor

    x_train, y_train = split.standardised("train")
    x_test, _ = split.standardised("test")
    models = {
        "linear": LinearRegression(),
        "sklearn_mlp": MLPRegressor(
            hidden_layer_sizes=tuple(config.model.hidden),
            activation=SKLEARN_ACTIVATIONS.get(config.model.activation, "relu"),
            max_iter=SKLEARN_MAX_ITER,
            random_state=config.seed,
        ),
    }
    results = {}
    for name, model in models.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x_train, y_train.ravel())
        seconds = time.perf_counter() - start
        results[name] = {
            "train": split_metrics(split, config.model.loss, "train", model.predict(x_train)),
            "test": split_metrics(split, config.model.loss, "test", model.predict(x_test)),
            "train_seconds": seconds,
            "predictions": model.predict(x_test),
        }
        if name == "sklearn_mlp":
            results[name]["iterations"] = int(model.n_iter_)
            results[name]["activation"] = model.activation
    return results


def predict_dollars(pair: SideBySide, split: HouseSplit, x: np.ndarray) -> dict[str, np.ndarray]:
    """Both models' prices in dollars for raw features x (N, F)."""
    inputs = torch.as_tensor(
        split.features.transform(np.atleast_2d(x)), dtype=pair.spec.dtype, device=pair.spec.device
    )
    with torch.no_grad():
        return {
            "manual": split.to_dollars(pair.manual.forward(inputs).clone()),
            "autograd": split.to_dollars(pair.autograd(inputs)),
        }


# -- printing ----------------------------------------------------------------------------------------------
def dollars(value: float) -> str:
    return f"-${-value:,.0f}" if value < 0 else f"${value:,.0f}"


def results_table(results: dict[str, dict[str, Any]]) -> str:
    """One row per model: loss, RMSE, MAE and R² on train and test, and the training time."""
    header = (
        f"{'':18} {'train':>9} {'test':>9} {'train':>10} {'test':>10} {'train':>10} "
        f"{'test':>10} {'train':>7} {'test':>7} {'train':>8}\n"
        f"{'model':18} {'loss':>9} {'loss':>9} {'RMSE':>10} {'RMSE':>10} {'MAE':>10} "
        f"{'MAE':>10} {'R²':>7} {'R²':>7} {'seconds':>8}"
    )
    lines = [header]
    for key, label in MODELS.items():
        r = results[key]
        train, test = r["train"], r["test"]
        lines.append(
            f"{label:18} {train['loss']:>9.4f} {test['loss']:>9.4f} {dollars(train['rmse']):>10} "
            f"{dollars(test['rmse']):>10} {dollars(train['mae']):>10} {dollars(test['mae']):>10} "
            f"{train['r2']:>7.3f} {test['r2']:>7.3f} {r['train_seconds']:>8.2f}"
        )
    return "\n".join(lines)


def describe_run(config: HousePricesConfig, split: HouseSplit) -> str:
    data, model, opt, train = split.data, config.model, config.optimizer, config.train
    sizes = "-".join(str(s) for s in [len(data.features), *model.hidden, 1])
    decay = f", weight decay {opt.weight_decay:g}" if opt.weight_decay else ""
    lines = [
        f"data: {data.description}: {data.rows:,} houses ({len(split.train_index):,} train, "
        f"{len(split.test_index):,} test, split with seed {config.seed}); "
        f"features {', '.join(data.features)}; target {data.target} (dollars)",
        f"network {sizes} ({model.activation}, output {model.output_activation}), loss {model.loss} "
        f"on the standardised price; {opt.name} lr {opt.lr:g}{decay}; {train.epochs} epochs of batches of "
        f"{train.batch_size}; {model.dtype}",
    ]
    lines += [f"note: {note}" for note in data.notes]
    return "\n".join(lines)


def walkthrough_lines(
    house: ExampleHouse, before: dict, after: dict | None, split: HouseSplit, config
) -> list[str]:
    lines = [f"one house: {house.description}"]
    lines.append(
        f"  before training: hand-written {dollars(before['manual'])}, "
        f"autograd {dollars(before['autograd'])}"
    )
    if after is not None:
        lines.append(
            f"  after training:  hand-written {dollars(after['manual'])}, "
            f"autograd {dollars(after['autograd'])}"
        )
    if split.data.name == "synthetic":
        rule = float(rule_price(config.walkthrough.bedrooms, config.walkthrough.living_area_sqft))
        lines.append(f"  the synthetic market's rule price (before noise): {dollars(rule)}")
    return lines


# -- the run -------------------------------------------------------------------------------------------------
def dataset_block(split: HouseSplit) -> dict[str, Any]:
    data = split.data
    return {
        "name": data.name,
        "description": data.description,
        "rows": data.rows,
        "features": data.features,
        "target": data.target,
        "train_rows": len(split.train_index),
        "test_rows": len(split.test_index),
        "dropped_rows": data.dropped_rows,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Everything a user can get wrong (config, data, columns) is checked before the folder is made.
    config = load_demo_config(HousePricesConfig, args, data_overrides(args))
    if config.model.loss not in REGRESSION_LOSSES:
        raise ConfigError(
            f"model.loss {config.model.loss!r} is for classes; a price needs one of "
            f"{', '.join(REGRESSION_LOSSES)}"
        )
    config.train.apply_threads()
    data_config = config.data
    houses = load_houses(
        data_config.dataset,
        csv=data_config.csv,
        features=data_config.features,
        target=data_config.target,
        houses=data_config.houses,
        seed=config.seed,
        missing=data_config.missing,
    )
    split = split_houses(houses, data_config.test_fraction, config.seed)
    pair = SideBySide(
        config.model.spec(len(houses.features), 1, config.seed), config.optimizer.spec()
    )
    run = RunDir.prepare(args.out, DEMO, args.force)
    run.write_text("config.toml", dump_config(config))
    quiet = args.quiet

    say = printer(quiet)

    say(describe_run(config, split))
    house = example_house(split, config.walkthrough.bedrooms, config.walkthrough.living_area_sqft)
    before = {k: float(v[0]) for k, v in predict_dollars(pair, split, house.x).items()}
    say(walkthrough_lines(house, before, None, split, config)[0])
    say(walkthrough_lines(house, before, None, split, config)[1])

    dtype, device = pair.spec.dtype, pair.spec.device
    train, test = split.tensors("train", dtype, device), split.tensors("test", dtype, device)
    history = fit(
        pair,
        train,
        test,
        epochs=config.train.epochs,
        batch_size=config.train.batch_size,
        seed=config.seed,
        quiet=quiet,
        description="house prices",
    )
    stop_if_unfinished(
        run, history, pair, dataset_block(split), config.optimizer.lr, config.train.epochs
    )

    evaluations = {"train": pair.evaluate(*train), "test": pair.evaluate(*test)}
    results: dict[str, dict[str, Any]] = {}
    for model, seconds in (
        ("manual", history.seconds_manual),
        ("autograd", history.seconds_autograd),
    ):
        results[model] = {
            which: split_metrics(
                split, config.model.loss, which, getattr(evaluations[which], f"output_{model}")
            )
            for which in ("train", "test")
        }
        results[model]["train_seconds"] = seconds
    baselines = fit_baselines(split, config)
    results.update(baselines)
    after = {k: float(v[0]) for k, v in predict_dollars(pair, split, house.x).items()}

    say()
    say(f"results on {len(split.test_index):,} held-out test houses (prices in dollars):")
    say(results_table(results))
    say()
    say(agreement_line(pair))
    for line in walkthrough_lines(house, before, after, split, config):
        say(line)

    write_outputs(run, config, split, pair, history, results, house, before, after)
    say(
        f"\nwrote config.toml, metrics.json, history.csv, steps.csv, loss.png, "
        f"gradient_difference.png, predicted_vs_actual.png and errors.png to {run.path}"
    )
    return 0


def write_outputs(run, config, split, pair, history, results, house, before, after) -> None:
    """metrics.json, history.csv, steps.csv and the four figures."""
    metrics = {
        "dataset": dataset_block(split),
        "seed": config.seed,
        **{model: _public(results[model]) for model in ("manual", "autograd")},
        "baselines": {name: _public(results[name]) for name in ("linear", "sklearn_mlp")},
        "agreement": agreement(pair),
        "walkthrough": {
            "house": house.values,
            "description": house.description,
            "before": before,
            "after": after,
        },
        **run_status(history),
    }
    run.write_json("metrics.json", metrics)
    write_history(run, history)

    name = split.data.description
    run.save_figure(
        loss_curves(
            history,
            title=f"Loss per epoch, hand-written and autograd\n{name}",
            ylabel=f"{config.model.loss} of the standardised price",
        ),
        "loss.png",
    )
    run.save_figure(
        gradient_difference(history, pair.agreement.tolerance, pair.agreement.dtype),
        "gradient_difference.png",
    )
    test_evaluation = pair.evaluate(*split.tensors("test", pair.spec.dtype, pair.spec.device))
    predicted = {
        "hand-written": split.to_dollars(test_evaluation.output_manual),
        "autograd": split.to_dollars(test_evaluation.output_autograd),
        "scikit-learn MLP": split.to_dollars(results["sklearn_mlp"]["predictions"]),
    }
    labels = {"hand-written": "manual", "autograd": "autograd", "scikit-learn MLP": "sklearn_mlp"}
    r2 = {label: results[key]["test"]["r2"] for label, key in labels.items()}
    run.save_figure(
        predicted_vs_actual(
            split.y_test,
            {k: predicted[k] for k in ("scikit-learn MLP", "hand-written", "autograd")},
            title=f"Predicted against actual price, {len(split.y_test):,} test houses\n{name}",
            r2=r2,
        ),
        "predicted_vs_actual.png",
    )
    predicted["linear regression"] = split.to_dollars(results["linear"]["predictions"])
    order = ("hand-written", "autograd", "scikit-learn MLP", "linear regression")
    run.save_figure(
        error_distribution(
            {label: predicted[label] - split.y_test for label in order},
            title=f"Prediction errors on the test houses\n{name}",
            mae={
                label: results[key]["test"]["mae"]
                for key, label in MODELS.items()
                if label in order
            },
        ),
        "errors.png",
    )


def _public(result: dict[str, Any]) -> dict[str, Any]:
    """A model's results without its raw predictions (those are in the figures, not the json)."""
    return {k: v for k, v in result.items() if k != "predictions"}


if __name__ == "__main__":
    sys.exit(run_main(main))
