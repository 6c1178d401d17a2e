"""How good a model's outputs are, in the data's own terms: prices in dollars, images by class.

The networks learn standardised prices and class scores (logits); a reader wants dollars and
accuracy. The same functions score the two networks and the scikit-learn baselines, so every row of a
results table is measured the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from bpdemo.functional import LOSSES

if TYPE_CHECKING:
    from bpdemo.compare import SideBySide
    from bpdemo.datasets.houses import HouseSplit


# -- prices ------------------------------------------------------------------------------------------
def regression_scores(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MAE (dollars) and R² = 1 − Σ(ŷ − y)² / Σ(y − ȳ)² of predictions (N,) against prices (N,)."""
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    return {
        "rmse": float(root_mean_squared_error(actual, predicted)),
        "mae": float(mean_absolute_error(actual, predicted)),
        "r2": float(r2_score(actual, predicted)),
    }


def price_scores(split: HouseSplit, loss: str, which: str, standardised_prediction) -> dict:
    """`regression_scores` in dollars, plus the training loss on the standardised price.

    which: "train" or "test"; standardised_prediction: (N,) or (N, 1), numpy or torch.
    """
    prediction = torch.as_tensor(
        np.asarray(standardised_prediction, dtype=np.float64).reshape(-1, 1)
    )
    _, target = split.standardised(which)
    loss_value = float(LOSSES[loss].value(prediction, torch.as_tensor(target)))
    actual = split.y_train if which == "train" else split.y_test
    return {"loss": loss_value, **regression_scores(actual, split.to_dollars(prediction))}


def price_scorer(split: HouseSplit, loss: str) -> Callable[[str, Tensor, Tensor, float], dict]:
    """`price_scores` as `Experiment.results` asks for scores: (which, output, target, loss)."""
    return lambda which, output, target, model_loss: price_scores(split, loss, which, output)


def house_price(pair: SideBySide, split: HouseSplit, x: np.ndarray) -> dict[str, float]:
    """Both models' price in dollars for one house's raw features x (F,)."""
    inputs = torch.as_tensor(
        split.features.transform(np.atleast_2d(x)), dtype=pair.spec.dtype, device=pair.spec.device
    )
    outputs = dict(zip(("manual", "autograd"), pair.predict(inputs), strict=True))
    return {model: float(split.to_dollars(output)[0]) for model, output in outputs.items()}


# -- classes -----------------------------------------------------------------------------------------
def accuracy(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """For `fit(..., metrics=accuracy)`: the share of rows whose largest logit is the true class."""
    return {"accuracy": float((logits.argmax(dim=1) == labels).double().mean())}


def class_scores(which: str, logits: Tensor, labels: Tensor, loss: float) -> dict[str, float]:
    """A classifier's accuracy and loss on one split, for `Experiment.results`."""
    return {**accuracy(logits, labels), "loss": loss}


def probabilities_of(logits: Tensor) -> np.ndarray:
    """softmax(z) per row, (N, K) float64."""
    return torch.softmax(logits.detach().double(), dim=1).cpu().numpy()


def prediction_agreement(manual: np.ndarray, autograd: np.ndarray) -> dict[str, float | int]:
    """How alike two models' class probabilities (N, K) are: same predicted class, largest gap."""
    return {
        "same_test_predictions": int((manual.argmax(1) == autograd.argmax(1)).sum()),
        "test_images": len(manual),
        "max_test_probability_difference": float(np.abs(manual - autograd).max()),
    }
