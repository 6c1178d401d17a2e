"""End to end: the wall time each model takes to train to scikit-learn's test score.

The target is the test score (accuracy on digits, R² on Ames) of scikit-learn's `MLPClassifier` /
`MLPRegressor` with its default training (Adam, learning rate 0.001, mini-batches of 200, up to 200
epochs, stopping early when the training loss stalls), the same hidden sizes and activation as the
project's demo, and seed 0. Then each contender trains the same way (Adam, 0.001, mini-batches of 200,
one shuffle per epoch) and is evaluated on the test split after every epoch; its time is the training
time up to its first epoch at the target, evaluation not counted. The contenders are the hand-written
model, the autograd model, and scikit-learn's own `fit` again, with a hook at the end of each of its
epochs (seed 0 repeats the fit that set the target, which reaches it by its last epoch at the
latest). Each trains from several seeds (initial weights, mini-batch order); the median time is
reported. Every model works in float32; scikit-learn's numpy threads are limited to torch's thread
count.
"""

from __future__ import annotations

import time
import tomllib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bpdemo.autograd_mlp import AutogradMLP
from bpdemo.bench.timing import median
from bpdemo.manual import ManualMLP
from bpdemo.optim import OptimizerSpec
from bpdemo.spec import MLPSpec

PROJECT_ROOT = Path(__file__).resolve().parents[2]
IMAGES_CONFIG = PROJECT_ROOT / "configs" / "images.toml"
HOUSES_CONFIG = PROJECT_ROOT / "configs" / "house_prices.toml"
AMES_CSV = PROJECT_ROOT.parent / "shared" / "data" / "AmesHousing.csv"
# The numeric Ames columns that carry most of the price (../shared/data/README.md lists them).
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
SKLEARN_ACTIVATIONS = {
    "identity": "identity",
    "sigmoid": "logistic",
    "tanh": "tanh",
    "relu": "relu",
}
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
    if activation not in SKLEARN_ACTIVATIONS:  # scikit-learn has no leaky_relu or softplus
        return hidden, "relu", f"configs/{path.name} (activation {activation} -> relu)"
    return hidden, activation, f"configs/{path.name}"


def digits_problem(seed: int = 0) -> Problem:
    """scikit-learn's 8x8 digits: 75/25 split stratified by class, pixels standardised on train."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, stratify=y, random_state=seed
    )
    scale = StandardScaler().fit(x_train)  # a pixel constant on train (a blank corner) becomes 0
    hidden, activation, source = model_config(IMAGES_CONFIG, DIGITS_FALLBACK)
    return Problem(
        name="digits",
        x_train=scale.transform(x_train).astype(np.float32),
        y_train=y_train.astype(np.int64),
        x_test=scale.transform(x_test).astype(np.float32),
        y_test=y_test.astype(np.int64),
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


# -- the three contenders -------------------------------------------------------------------------------
# Each is built for one seed (initial weights, mini-batch order) and gives two functions: one epoch of
# training, and the test score of the model as it stands.
Contender = tuple[Callable[[], None], Callable[[], float]]


def torch_contender(problem: Problem, seed: int, hand_written: bool) -> Contender:
    """The hand-written or the autograd model, trained on shuffled mini-batches of `BATCH_SIZE`."""
    spec, optimizer_spec = problem.spec(seed), OptimizerSpec(name="adam", lr=LEARNING_RATE)
    if hand_written:
        model = ManualMLP(spec)
        optimizer = optimizer_spec.manual(model)
    else:
        model = AutogradMLP(spec)
        optimizer = optimizer_spec.torch(model)
    x, y = torch.from_numpy(problem.x_train), torch.from_numpy(problem.y_train)
    x_test = torch.from_numpy(problem.x_test)
    generator = torch.Generator().manual_seed(seed)
    x_epoch, y_epoch = torch.empty_like(x), torch.empty_like(y)  # the shuffled rows, reused

    def epoch() -> None:
        order = torch.randperm(len(x), generator=generator)
        torch.index_select(x, 0, order, out=x_epoch)
        torch.index_select(y, 0, order, out=y_epoch)
        for first in range(0, len(x), BATCH_SIZE):
            batch = slice(first, first + BATCH_SIZE)
            model.loss_and_grads(x_epoch[batch], y_epoch[batch])
            optimizer.step()

    def score() -> float:
        with torch.no_grad():
            return problem.score(model.forward(x_test))

    return epoch, score


def sklearn_estimator(problem: Problem, random_state, max_iter: int = 200):
    """scikit-learn's MLPClassifier / MLPRegressor, its defaults but for the project's hidden layers."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    kind = MLPClassifier if problem.classification else MLPRegressor
    return kind(
        hidden_layer_sizes=tuple(problem.hidden),
        activation=SKLEARN_ACTIVATIONS[problem.activation],
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
    return {
        "seconds": seconds,
        "epochs": model.n_iter_,
        "score": float(model.score(problem.x_test, y_test)),
    }


def _sklearn_targets(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    if problem.classification:
        return problem.y_train, problem.y_test
    return problem.y_train.ravel(), problem.y_test.ravel()


def train_to_target(contender: Contender, target: float, max_epochs: int) -> dict:
    """Train epoch by epoch until the test score reaches `target` (or `max_epochs` have passed).

    `seconds` counts the training epochs only, not the evaluation after each.
    """
    epoch, score = contender
    seconds, best = 0.0, -float("inf")
    for count in range(1, max_epochs + 1):
        start = time.perf_counter()
        epoch()
        seconds += time.perf_counter() - start
        best = max(best, score())
        if best >= target:
            return {"seconds": seconds, "score": best, "epochs": count, "reached": True}
    return {"seconds": seconds, "score": best, "epochs": max_epochs, "reached": False}


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
                torch_contender(problem, seed, hand_written=True), target, max_epochs
            ),
            "autograd": lambda seed: train_to_target(
                torch_contender(problem, seed, hand_written=False), target, max_epochs
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
