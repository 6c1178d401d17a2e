"""scikit-learn's models, fitted on the same split as the two networks: the yardstick they are held to.

Prices get a linear regression and an `MLPRegressor`, images an `MLPClassifier`. Each MLP has the
networks' hidden sizes, activation (by its scikit-learn name) and seed, and trains until its own
convergence test is met or `SKLEARN_MAX_ITER` epochs have run. They are scored as the networks are
(`bpdemo.scores`), so a results table compares like with like.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from bpdemo.functional import ACTIVATIONS
from bpdemo.infra import interruption
from bpdemo.scores import price_scores

if TYPE_CHECKING:
    from bpdemo.datasets.houses import HouseSplit
    from bpdemo.datasets.images import ImageSplit
    from bpdemo.spec import ModelSection

SKLEARN_MAX_ITER = 1000  # its default 200 can stop before its own convergence test is met
SKLEARN_FALLBACK = "relu"  # scikit-learn's default, for an activation it does not have


@dataclass
class Baseline:
    """A fitted scikit-learn model's numbers.

    Attributes:
        train, test: its scores on each split, as the networks are scored.
        test_output: its test predictions, for the figures: standardised prices (N_test,) or class
            probabilities (N_test, K).
        iterations, activation: an MLP's epochs and activation (None for the linear regression).
    """

    train: dict[str, float]
    test: dict[str, float]
    train_seconds: float
    test_output: np.ndarray
    iterations: int | None = None
    activation: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Its block in metrics.json: everything but the test output."""
        block: dict[str, Any] = {
            "train": self.train,
            "test": self.test,
            "train_seconds": self.train_seconds,
        }
        if self.iterations is not None:
            block.update(iterations=self.iterations, activation=self.activation)
        return block


def sklearn_activation(name: str) -> str:
    """scikit-learn's name for our activation `name`, or relu where it has none (see `activation_note`)."""
    return ACTIVATIONS[name].sklearn or SKLEARN_FALLBACK


def activation_note(name: str) -> str | None:
    """A line for the user when scikit-learn's MLP cannot use activation `name`, else None."""
    if ACTIVATIONS[name].sklearn is not None:
        return None
    return f"scikit-learn's MLP has no {name} activation; its baseline uses {SKLEARN_FALLBACK}"


def mlp_settings(model: ModelSection, seed: int) -> dict[str, Any]:
    """The arguments that make a scikit-learn MLP the networks' counterpart."""
    return {
        "hidden_layer_sizes": tuple(model.hidden_sizes),
        "activation": sklearn_activation(model.hidden_activation),
        "max_iter": SKLEARN_MAX_ITER,
        "random_state": seed,
    }


def fit_timed(estimator, x: np.ndarray, y: np.ndarray) -> float:
    """Fit `estimator` on (x, y), quietly if it stops before converging; returns the seconds.

    scikit-learn's MLPs catch Ctrl-C inside `fit` and return early: the interruption is raised again.
    """
    from sklearn.exceptions import ConvergenceWarning

    interruption.set_phase("baselines")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(x, y)
    interruption.check()
    return time.perf_counter() - start


def fit_regressors(
    split: HouseSplit, model: ModelSection, seed: int, threads: int | None = None
) -> dict[str, Baseline]:
    """`linear` (LinearRegression) and `sklearn_mlp` (MLPRegressor), on the standardised split.

    threads: the BLAS threads they may use (None: the library's default).
    """
    from sklearn.linear_model import LinearRegression
    from sklearn.neural_network import MLPRegressor

    x_train, y_train = split.standardised("train")
    x_test, _ = split.standardised("test")
    estimators = {
        "linear": LinearRegression(),
        "sklearn_mlp": MLPRegressor(**mlp_settings(model, seed)),
    }
    baselines = {}
    with threadpool_limits(limits=threads):
        for name, estimator in estimators.items():
            seconds = fit_timed(estimator, x_train, y_train.ravel())
            test_output = estimator.predict(x_test)
            baselines[name] = Baseline(
                train=price_scores(split, model.loss, "train", estimator.predict(x_train)),
                test=price_scores(split, model.loss, "test", test_output),
                train_seconds=seconds,
                test_output=test_output,
                **mlp_facts(estimator),
            )
    return baselines


def fit_classifier(
    split: ImageSplit, model: ModelSection, seed: int, threads: int | None = None
) -> Baseline:
    """MLPClassifier on the scaled split, scored by accuracy and cross-entropy (log loss)."""
    from sklearn.metrics import log_loss
    from sklearn.neural_network import MLPClassifier

    x_train, y_train = split.scaled("train")
    estimator = MLPClassifier(**mlp_settings(model, seed))
    labels = list(range(len(split.data.classes)))
    scores = {}
    with threadpool_limits(limits=threads):
        seconds = fit_timed(estimator, x_train, y_train)
        for which in ("train", "test"):
            x, y = split.scaled(which)
            probabilities = estimator.predict_proba(x)
            scores[which] = {
                "accuracy": float(np.mean(estimator.classes_[probabilities.argmax(1)] == y)),
                "loss": float(log_loss(y, probabilities, labels=labels)),
            }
    return Baseline(
        train=scores["train"],
        test=scores["test"],
        train_seconds=seconds,
        test_output=probabilities,
        **mlp_facts(estimator),
    )


def mlp_facts(estimator) -> dict[str, Any]:
    """An MLP's epochs run and activation; nothing for another model."""
    if not hasattr(estimator, "n_iter_"):
        return {}
    return {"iterations": int(estimator.n_iter_), "activation": estimator.activation}
