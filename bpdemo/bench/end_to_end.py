"""End to end: the wall time each model takes to train to scikit-learn's test score.

A step that is fast is only worth something if training to a useful model is fast, so each contender
trains until it reaches the same test score (accuracy on digits, R² on the Ames houses). The target is
the test score of scikit-learn's `MLPClassifier` / `MLPRegressor` with its default training (Adam,
learning rate 0.001, mini-batches of 200, up to 200 epochs, stopping early when the training loss
stalls), the hidden sizes and activation of the project's demo, and seed 0. The hand-written and the
autograd model then train the same way through the project's training loop (`bpdemo.train.run_epochs`
with `OneModel`: Adam, 0.001, mini-batches of 200, one shuffle per epoch), scored on the test split
after every epoch; scikit-learn's own `fit` runs again with a hook at the end of each of its epochs.
A contender's time is its training time up to its first epoch at the target, scoring not counted. Each
trains from several seeds (initial weights, mini-batch order) and the median time is reported. Every
model works in float32; scikit-learn's numpy threads are limited to torch's thread count.

The Ames sales are not shipped with the project: the race runs on the CSV given with `--ames` or in the
environment variable `BPDEMO_AMES_CSV`.
"""

from __future__ import annotations

import os
import time
import tomllib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bpdemo.bench.steps import model_and_optimizer
from bpdemo.bench.timing import median
from bpdemo.datasets.digits import digits_split
from bpdemo.functional import ACTIVATIONS
from bpdemo.infra import interruption
from bpdemo.infra.shipped import CONFIG_DIR
from bpdemo.optim import OptimizerSpec
from bpdemo.spec import MLPSpec
from bpdemo.train import OneModel, run_epochs

IMAGES_CONFIG = CONFIG_DIR / "images.toml"
HOUSES_CONFIG = CONFIG_DIR / "house_prices.toml"
AMES_ENV = "BPDEMO_AMES_CSV"  # where the Ames sales CSV is, when --ames does not say
# The numeric Ames columns that carry most of the price.
AMES_FEATURES = [
    "Overall Qual",
    "Gr Liv Area",
    "Year Built",
    "Total Bsmt SF",
    "Garage Cars",
    "Full Bath",
    "Bedroom AbvGr",
    "Lot Area",
]
DIGITS_FALLBACK = ([64, 32], "relu")
AMES_FALLBACK = ([16], "tanh")
BATCH_SIZE = 200  # scikit-learn's default, min(200, rows)
LEARNING_RATE = 1e-3  # scikit-learn's default for Adam
DTYPE = torch.float32


@dataclass
class Problem:
    """A train/test split ready for all three models, float32 features, standardised on train.

    `classification`: integer labels and accuracy; else (N, 1) standardised targets and R².
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classification: bool
    hidden: list[int]
    activation: str
    model_source: str

    @property
    def outputs(self) -> int:
        return int(self.y_train.max()) + 1 if self.classification else 1

    @property
    def metric(self) -> str:
        return "acc" if self.classification else "r2"

    def spec(self, seed: int) -> MLPSpec:
        return MLPSpec(
            [self.x_train.shape[1], *self.hidden, self.outputs],
            [self.activation] * len(self.hidden) + ["identity"],
            loss="cross_entropy" if self.classification else "mse",
            seed=seed,
            dtype=DTYPE,
        )

    def score(self, prediction: Tensor) -> float:
        """Test accuracy of logits (N, classes), or test R² of predictions (N, 1)."""
        if self.classification:
            labels = torch.from_numpy(self.y_test)
            return float((prediction.argmax(dim=1) == labels).double().mean())
        target = torch.from_numpy(self.y_test).double()
        residual = ((target - prediction.double()) ** 2).sum()
        total = ((target - target.mean()) ** 2).sum()
        return float(1.0 - residual / total)


def model_config(path: Path, fallback: tuple[list[int], str]) -> tuple[list[int], str, str]:
    """(hidden sizes, activation, where they came from): a demo's `[model]`, else `fallback`."""
    hidden, activation = fallback
    try:
        with open(path, "rb") as file:
            model = tomllib.load(file).get("model", {})
    except FileNotFoundError:
        return hidden, activation, f"{path.name} not found; fallback {hidden} {activation}"
    except (OSError, tomllib.TOMLDecodeError) as error:
        return (
            hidden,
            activation,
            f"{path.name} unreadable ({error}); fallback {hidden} {activation}",
        )
    hidden = [int(h) for h in model.get("hidden", hidden)]
    activation = model.get("activation", activation)
    if activation not in ACTIVATIONS or ACTIVATIONS[activation].sklearn is None:
        return hidden, "relu", f"configs/{path.name} (activation {activation} -> relu)"
    return hidden, activation, f"configs/{path.name}"


def digits_problem(seed: int = 0) -> Problem:
    """scikit-learn's 8x8 digits: 75/25 split stratified by class, pixels standardised on train."""
    x_train, y_train, x_test, y_test = digits_split(test_size=0.25, seed=seed)
    hidden, activation, source = model_config(IMAGES_CONFIG, DIGITS_FALLBACK)
    return Problem(
        name="digits",
        x_train=x_train.astype(np.float32),
        y_train=y_train,
        x_test=x_test.astype(np.float32),
        y_test=y_test,
        classification=True,
        hidden=hidden,
        activation=activation,
        model_source=source,
    )


def ames_problem(csv: Path, seed: int = 0) -> Problem:
    """The Ames sales from `csv` (`AMES_FEATURES` -> SalePrice), split and standardised as the demo."""
    from bpdemo.datasets.houses import load_houses, split_houses

    split = split_houses(
        load_houses("csv", csv=csv, features=AMES_FEATURES, target="SalePrice"), seed=seed
    )
    x_train, y_train = split.standardised("train")
    x_test, y_test = split.standardised("test")
    hidden, activation, source = model_config(HOUSES_CONFIG, AMES_FALLBACK)
    return Problem(
        name="ames",
        x_train=x_train.astype(np.float32),
        y_train=y_train.astype(np.float32),
        x_test=x_test.astype(np.float32),
        y_test=y_test.astype(np.float32),
        classification=False,
        hidden=hidden,
        activation=activation,
        model_source=source,
    )


def ames_csv_from_environment() -> Path | None:
    """The Ames sales CSV named by `BPDEMO_AMES_CSV`, or None where it is not set."""
    value = os.environ.get(AMES_ENV, "").strip()
    return Path(value) if value else None


# -- the three contenders -------------------------------------------------------------------------------
def train_to_target(
    problem: Problem, seed: int, target: float, max_epochs: int, *, hand_written: bool
) -> dict:
    """The hand-written or the autograd model, trained by the shared loop until its test score reaches
    `target` (or `max_epochs` have passed); `seconds` is the loop's time in its epochs, without the
    scoring after each."""
    model, optimizer = model_and_optimizer(
        problem.spec(seed), OptimizerSpec(name="adam", lr=LEARNING_RATE), hand_written
    )
    x_test = torch.from_numpy(problem.x_test)
    best = -float("inf")

    def end_of_epoch(epoch: int) -> bool:
        nonlocal best
        with torch.no_grad():
            best = max(best, problem.score(model.forward(x_test)))
        return best >= target

    loop = run_epochs(
        OneModel(model, optimizer).step,
        torch.from_numpy(problem.x_train),
        torch.from_numpy(problem.y_train),
        epochs=max_epochs,
        batch_size=BATCH_SIZE,
        generator=torch.Generator().manual_seed(seed),
        end_of_epoch=end_of_epoch,
    )
    if loop.interrupted:  # Ctrl-C stops the benchmark, not only this contender
        raise KeyboardInterrupt
    return {"seconds": loop.seconds, "score": best, "epochs": loop.epochs, "reached": loop.stopped}


def sklearn_estimator(problem: Problem, random_state, max_iter: int = 200):
    """scikit-learn's MLPClassifier / MLPRegressor, its defaults but for the project's hidden layers."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    kind = MLPClassifier if problem.classification else MLPRegressor
    return kind(
        hidden_layer_sizes=tuple(problem.hidden),
        activation=ACTIVATIONS[problem.activation].sklearn,
        solver="adam",
        learning_rate_init=LEARNING_RATE,
        batch_size=BATCH_SIZE,
        max_iter=max_iter,
        random_state=random_state,
    )


class _TargetReached(Exception):
    """Raised at the end of an epoch inside scikit-learn's `fit`, once the test score is reached."""


def sklearn_to_target(problem: Problem, seed: int, target: float, max_iter: int = 200) -> dict:
    """scikit-learn's own `fit`, evaluated on the test split at the end of every epoch.

    `fit` cannot stop to be evaluated, so the estimator is given a hook where its training loop ends
    an epoch (where it checks whether the loss still improves); the hook stops the clock, scores the
    test split, and stops `fit` once the score reaches `target`. Its training is unchanged.
    """
    from sklearn.exceptions import ConvergenceWarning

    clock = {"seconds": 0.0, "epochs": 0, "score": -float("inf")}
    _, y_test = _sklearn_targets(problem)

    def epoch_end(model) -> None:
        clock["seconds"] += time.perf_counter() - clock["since"]
        clock["epochs"] += 1
        clock["score"] = max(clock["score"], float(model.score(problem.x_test, y_test)))
        if clock["score"] >= target:
            raise _TargetReached
        clock["since"] = time.perf_counter()

    model = _with_epoch_hook(sklearn_estimator(problem, seed, max_iter), epoch_end)
    y_train, _ = _sklearn_targets(problem)
    reached = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clock["since"] = time.perf_counter()
        try:
            model.fit(problem.x_train, y_train)
        except _TargetReached:
            reached = True
    interruption.check()  # scikit-learn's fit catches Ctrl-C and returns: the benchmark stops
    if clock["epochs"] == 0:
        raise RuntimeError("scikit-learn's fit never reached the end-of-epoch hook")
    return {
        "seconds": clock["seconds"],
        "score": clock["score"],
        "epochs": clock["epochs"],
        "reached": reached,
    }


def _with_epoch_hook(estimator, epoch_end: Callable):
    """`estimator` as an instance of a subclass that calls `epoch_end(estimator)` after each epoch."""

    class EpochHook(type(estimator)):
        def _update_no_improvement_count(self, *args, **kwargs):
            super()._update_no_improvement_count(*args, **kwargs)
            epoch_end(self)

    EpochHook.__name__ = type(estimator).__name__
    hooked = EpochHook(**estimator.get_params())
    return hooked


def sklearn_fit(problem: Problem, seed: int, max_iter: int = 200) -> dict:
    """scikit-learn's default training, `fit`: its wall time, epochs and final test score."""
    from sklearn.exceptions import ConvergenceWarning

    model = sklearn_estimator(problem, seed, max_iter)
    y_train, y_test = _sklearn_targets(problem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(problem.x_train, y_train)
        seconds = time.perf_counter() - start
    interruption.check()
    return {
        "seconds": seconds,
        "epochs": model.n_iter_,
        "score": float(model.score(problem.x_test, y_test)),
    }


def _sklearn_targets(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    if problem.classification:
        return problem.y_train, problem.y_test
    return problem.y_train.ravel(), problem.y_test.ravel()


def race(problem: Problem, repeats: int, max_epochs: int, sklearn_max_iter: int = 200) -> dict:
    """The time each contender takes to reach scikit-learn's test score, median over `repeats` seeds.

    The target is the final test score of scikit-learn's default `fit` (seed 0, `sklearn_max_iter`
    epochs at most: its default, 200, unless a smoke test cuts it). Then, for seeds 0, 1, ..., each
    contender trains from its own initial weights and mini-batch order for that seed, the order of
    the three rotating from seed to seed, and is timed up to its first epoch at the target (at most
    `max_epochs` for the torch models; scikit-learn stops where its `fit` stops).
    """
    from threadpoolctl import threadpool_limits

    metric = problem.metric
    with threadpool_limits(limits=torch.get_num_threads()):
        fit = sklearn_fit(problem, seed=0, max_iter=sklearn_max_iter)
        target = fit["score"]
        contenders = {
            "manual": lambda seed: train_to_target(
                problem, seed, target, max_epochs, hand_written=True
            ),
            "autograd": lambda seed: train_to_target(
                problem, seed, target, max_epochs, hand_written=False
            ),
            "sklearn": lambda seed: sklearn_to_target(problem, seed, target, sklearn_max_iter),
        }
        runs: dict[str, list[dict]] = {name: [] for name in contenders}
        names = list(contenders)
        for seed in range(repeats):
            shift = seed % len(names)
            for name in names[shift:] + names[:shift]:
                runs[name].append({"seed": seed, **contenders[name](seed)})
    result = {
        "hidden": problem.hidden,
        "activation": problem.activation,
        "model_from": problem.model_source,
        "train_rows": len(problem.x_train),
        "test_rows": len(problem.x_test),
        "batch_size": BATCH_SIZE,
        f"target_{metric}": target,
        f"sklearn_{metric}": target,
        "sklearn_fit_s": fit["seconds"],
        "sklearn_fit_epochs": fit["epochs"],
        "sklearn_fit_epoch_ms": 1e3 * fit["seconds"] / fit["epochs"],
        "repeats": repeats,
        "max_epochs": max_epochs,
    }
    for name, results in runs.items():
        result[f"{name}_s"] = median([r["seconds"] for r in results])
        result[f"{name}_epochs"] = median([r["epochs"] for r in results])
        result[f"{name}_epoch_ms"] = (
            1e3 * sum(r["seconds"] for r in results) / sum(r["epochs"] for r in results)
        )
        result[f"{name}_reached"] = sum(r["reached"] for r in results)
        if name != "sklearn":  # scikit-learn's score is the target
            result[f"{name}_{metric}"] = median([r["score"] for r in results])
    result["runs"] = runs
    return result
