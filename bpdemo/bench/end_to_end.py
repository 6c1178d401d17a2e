"""End to end: the wall time each model takes to train to scikit-learn's test score.

The target is the test score (accuracy on digits, R² on Ames) that scikit-learn's `MLPClassifier` /
`MLPRegressor` reaches with its default training (Adam, learning rate 0.001, mini-batches of 200, up to
200 epochs, stopping early when the training loss stalls), with the same hidden sizes and activation
as the project's demo. The hand-written and the autograd model then train the same way (Adam, 0.001,
mini-batches of 200, one shuffle per epoch) and are evaluated on the test split after every epoch; the
time reported is the training time up to the first epoch whose test score reaches the target.
Evaluation is not counted in their time (scikit-learn does none on test data during `fit`). Every model
works in float32; scikit-learn's own numpy threads are limited to torch's thread count.
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
Step = Callable[[Tensor, Tensor], object]
Predict = Callable[[Tensor], Tensor]


def manual_model(problem: Problem, seed: int) -> tuple[Step, Predict]:
    model = ManualMLP(problem.spec(seed))
    optimizer = OptimizerSpec(name="adam", lr=LEARNING_RATE).manual(model)

    def step(x: Tensor, y: Tensor) -> None:
        model.loss_and_grads(x, y)
        optimizer.step()

    return step, model.forward


def autograd_model(problem: Problem, seed: int) -> tuple[Step, Predict]:
    model = AutogradMLP(problem.spec(seed))
    optimizer = OptimizerSpec(name="adam", lr=LEARNING_RATE).torch(model)

    def step(x: Tensor, y: Tensor) -> None:
        model.loss_and_grads(x, y)
        optimizer.step()

    @torch.no_grad()
    def predict(x: Tensor) -> Tensor:
        return model(x)

    return step, predict


def train_to_target(
    problem: Problem, build: Callable, target: float, max_epochs: int, seed: int
) -> dict:
    """Train with shuffled mini-batches until the test score reaches `target` (or `max_epochs`)."""
    step, predict = build(problem, seed)
    x, y = torch.from_numpy(problem.x_train), torch.from_numpy(problem.y_train)
    x_test = torch.from_numpy(problem.x_test)
    generator = torch.Generator().manual_seed(seed)
    rows, seconds, best = len(x), 0.0, -float("inf")
    for epoch in range(1, max_epochs + 1):
        start = time.perf_counter()
        order = torch.randperm(rows, generator=generator)
        x_epoch, y_epoch = x[order], y[order]
        for first in range(0, rows, BATCH_SIZE):
            step(x_epoch[first : first + BATCH_SIZE], y_epoch[first : first + BATCH_SIZE])
        seconds += time.perf_counter() - start
        best = max(best, problem.score(predict(x_test)))
        if best >= target:
            return {"seconds": seconds, "score": best, "epochs": epoch, "reached": True}
    return {"seconds": seconds, "score": best, "epochs": max_epochs, "reached": False}


def train_sklearn(problem: Problem, seed: int, max_iter: int = 200) -> dict:
    """scikit-learn's MLP with its default training; `fit`'s wall time and the test score."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from threadpoolctl import threadpool_limits

    kind = MLPClassifier if problem.classification else MLPRegressor
    model = kind(
        hidden_layer_sizes=tuple(problem.hidden),
        activation=SKLEARN_ACTIVATIONS[problem.activation],
        solver="adam",
        learning_rate_init=LEARNING_RATE,
        batch_size=BATCH_SIZE,
        max_iter=max_iter,
        random_state=seed,
    )
    y_train = problem.y_train if problem.classification else problem.y_train.ravel()
    y_test = problem.y_test if problem.classification else problem.y_test.ravel()
    with threadpool_limits(limits=torch.get_num_threads()), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(problem.x_train, y_train)
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "score": float(model.score(problem.x_test, y_test)),
        "epochs": model.n_iter_,
    }


def race(
    problem: Problem, repeats: int, max_epochs: int, sklearn_max_iter: int = 200, seed: int = 0
) -> dict:
    """Each contender `repeats` times, the order rotating; median times, scores of the first run.

    `max_epochs` stops the hand-written and autograd trainings that have not reached the target;
    `sklearn_max_iter` is scikit-learn's `max_iter` (its default, 200, unless a smoke test cuts it).
    """
    contenders = {
        "sklearn": lambda target: train_sklearn(problem, seed, sklearn_max_iter),
        "manual": lambda target: train_to_target(problem, manual_model, target, max_epochs, seed),
        "autograd": lambda target: train_to_target(
            problem, autograd_model, target, max_epochs, seed
        ),
    }
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    runs["sklearn"].append(contenders["sklearn"](None))  # the target comes from this first fit
    target = runs["sklearn"][0]["score"]
    names = list(contenders)
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            if name == "sklearn" and repeat == 0:
                continue
            runs[name].append(contenders[name](target))
    metric = problem.metric
    result = {
        "hidden": problem.hidden,
        "activation": problem.activation,
        "model_from": problem.model_source,
        "train_rows": len(problem.x_train),
        "test_rows": len(problem.x_test),
        "batch_size": BATCH_SIZE,
        f"target_{metric}": target,
        "repeats": repeats,
    }
    for name, results in runs.items():
        first = results[0]
        result[f"{name}_s"] = median([r["seconds"] for r in results])
        result[f"{name}_{metric}"] = first["score"]
        result[f"{name}_epochs"] = first["epochs"]
        if name != "sklearn":
            result[f"{name}_reached"] = all(r["reached"] for r in results)
    return result
