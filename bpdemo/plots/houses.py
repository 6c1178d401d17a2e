"""Figures of the house-price demo, in dollars: predicted against actual price, and the errors.

`figures` gives all four of a run by file name; the loss curves and the gradient difference are
`bpdemo.plots.training`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from bpdemo.plots.training import AUTOGRAD_STYLE, MANUAL_STYLE, gradient_difference, loss_curves
from bpdemo.report import MODEL_LABELS

if TYPE_CHECKING:
    from bpdemo.baselines import Baseline
    from bpdemo.datasets.houses import HouseSplit
    from bpdemo.experiment import Experiment

# One colour per model, the same in every figure; the two backprop models as in the loss curves.
COLORS = {
    "hand-written": MANUAL_STYLE["color"],
    "autograd": AUTOGRAD_STYLE["color"],
    "linear regression": "tab:gray",
    "scikit-learn MLP": "tab:green",
}


def _dollars(value: float, _position=None) -> str:
    sign = "−" if value < 0 else ""
    value = abs(value)
    if value >= 1e6:
        return f"{sign}${value / 1e6:g}M"
    return f"{sign}${value / 1e3:,.0f}k" if value >= 1e3 else f"{sign}${value:,.0f}"


DOLLARS = FuncFormatter(_dollars)


def predicted_vs_actual(
    actual: np.ndarray, predicted: Mapping[str, np.ndarray], title: str, r2: Mapping[str, float]
) -> Figure:
    """Test houses: predicted (y) against actual (x) price, one marker style per model.

    Args:
        actual: (N,) prices in dollars.
        predicted: model label -> (N,) predictions in dollars; "hand-written" and "autograd" are drawn
            as filled circles and crosses, so that agreeing models show a cross in every circle.
        r2: model label -> test R², shown in the legend.
    """
    figure = Figure(figsize=(6.5, 6))
    ax = figure.subplots()
    markers = {"hand-written": ("o", 22, 0.45), "autograd": ("x", 14, 0.9)}
    for label, values in predicted.items():
        marker, size, alpha = markers.get(label, (".", 10, 0.5))
        ax.scatter(
            actual,
            values,
            s=size,
            marker=marker,
            alpha=alpha,
            color=COLORS.get(label),
            linewidths=0.8 if marker == "x" else 0,
            label=f"{label} (R² {r2[label]:.3f})" if label in r2 else label,
        )
    everything = np.concatenate([actual, *predicted.values()])
    low, high = float(everything.min()), float(everything.max())
    margin = 0.03 * (high - low)
    ax.plot(
        [low - margin, high + margin],
        [low - margin, high + margin],
        color="black",
        linestyle=":",
        linewidth=1,
        label="perfect prediction",
    )
    ax.set_xlim(low - margin, high + margin)
    ax.set_ylim(low - margin, high + margin)
    ax.set_aspect("equal")
    ax.xaxis.set_major_formatter(DOLLARS)
    ax.yaxis.set_major_formatter(DOLLARS)
    ax.set_xlabel("actual sale price (US dollars)")
    ax.set_ylabel("predicted price (US dollars)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    return figure


def error_distribution(
    errors: Mapping[str, np.ndarray], title: str, mae: Mapping[str, float] | None = None
) -> Figure:
    """Histogram of the prediction errors (predicted − actual, dollars) of each model, as outlines.

    Args:
        errors: model label -> (N,) errors in dollars on the same houses.
        mae: model label -> mean absolute error, shown in the legend.
    """
    figure = Figure(figsize=(7.5, 4.5))
    ax = figure.subplots()
    everything = np.concatenate(list(errors.values()))
    # The bins cover the central 99% of all errors; the rare extreme ones are counted in the end bins,
    # and the figure says how many (a pile in an end bin is not a bump of the distribution).
    low, high = np.percentile(everything, [0.5, 99.5])
    bins = np.linspace(low, high, 41)
    widths = {"hand-written": 3.0, "autograd": 1.5}
    piled = {label: (int((v < low).sum()), int((v > high).sum())) for label, v in errors.items()}
    for label, values in errors.items():
        style = "--" if label == "autograd" else "-"
        shown = f"{label} (MAE {_dollars(mae[label])})" if mae and label in mae else label
        below, above = piled[label]
        if below or above:
            shown += f"; {below} below, {above} above the range, in the end bins"
        ax.hist(
            np.clip(values, low, high),
            bins=bins,
            histtype="step",
            linewidth=widths.get(label, 1.3),
            linestyle=style,
            color=COLORS.get(label),
            alpha=0.75 if label == "hand-written" else 1.0,
            label=shown,
        )
    ax.axvline(0, color="black", linewidth=0.8, linestyle=":")
    ax.xaxis.set_major_formatter(DOLLARS)
    xlabel = "prediction error: predicted − actual price (US dollars)"
    if any(below or above for below, above in piled.values()):
        bounds = f"{_dollars(low)} or above {_dollars(high)}".replace("$", r"\$")  # not math
        xlabel += f"\nthe end bins also hold every error below {bounds}"
    ax.set_xlabel(xlabel)
    ax.set_ylabel("number of test houses")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    # below the axes: inside, it would hide the tallest bins
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    return figure


def figures(
    experiment: Experiment,
    split: HouseSplit,
    results: Mapping[str, Mapping[str, Any]],
    baselines: Mapping[str, Baseline],
) -> dict[str, Callable[[], Figure]]:
    """loss.png, gradient_difference.png, predicted_vs_actual.png and errors.png of a finished run,
    each as the function that draws it (so a run saves each figure as soon as it is drawn).

    results: both networks' (`Experiment.results`); baselines: `linear` and `sklearn_mlp`.
    """
    history, agreement, name = experiment.history, experiment.pair.agreement, split.data.description
    outputs = experiment.outputs("test")  # standardised prices, as the models give them
    test_scores = {key: results[key]["test"] for key in outputs}
    for key, baseline in baselines.items():
        outputs[key], test_scores[key] = baseline.test_output, baseline.test
    order = ("manual", "autograd", "sklearn_mlp", "linear")
    predicted = {MODEL_LABELS[key]: split.to_dollars(outputs[key]) for key in order}
    test_scores = {MODEL_LABELS[key]: test_scores[key] for key in order}
    shown = ("scikit-learn MLP", "hand-written", "autograd")  # drawn in this order, the pair on top
    return {
        "loss.png": partial(
            loss_curves,
            history,
            title=f"Loss per epoch, hand-written and autograd\n{name}",
            ylabel=f"{experiment.config.model.loss} of the standardised price",
        ),
        "gradient_difference.png": partial(
            gradient_difference, history, agreement.tolerance, agreement.dtype
        ),
        "predicted_vs_actual.png": partial(
            predicted_vs_actual,
            split.y_test,
            {label: predicted[label] for label in shown},
            title=f"Predicted against actual price, {len(split.y_test):,} test houses\n{name}",
            r2={label: test_scores[label]["r2"] for label in shown},
        ),
        "errors.png": partial(
            error_distribution,
            {label: values - split.y_test for label, values in predicted.items()},
            title=f"Prediction errors on the test houses\n{name}",
            mae={label: scores["mae"] for label, scores in test_scores.items()},
        ),
    }
