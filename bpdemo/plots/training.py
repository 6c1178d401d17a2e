"""Figures of a side-by-side training run: loss curves, gradient agreement, gradient norms per layer."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bpdemo.agreement import Drift
from bpdemo.train import History

MANUAL_STYLE = {"color": "tab:blue", "linestyle": "-", "linewidth": 2.5, "alpha": 0.7}
AUTOGRAD_STYLE = {"color": "tab:orange", "linestyle": "--", "linewidth": 1.5}


def loss_curves(
    history: History, title: str = "Loss per epoch", ylabel: str = "loss", metric: str = "loss"
) -> Figure:
    """Train and test `metric` of both models per epoch; coinciding lines mean the models agree.

    `metric` is `loss` or any metric name the training loop recorded (e.g. `accuracy`).
    """
    figure = Figure(figsize=(7, 4.5))
    ax = figure.subplots()
    draw_curves(ax, history, metric)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if metric == "loss" and all(
        v > 0 for row in history.epochs for k, v in row.items() if "loss" in k
    ):
        ax.set_yscale("log")
    ax.legend()
    return figure


def draw_curves(ax: Axes, history: History, metric: str) -> None:
    """Train (line) and test (line with dots) `metric` of both models per epoch, on `ax`.

    The hand-written model is a wide pale line, autograd a thin dashed one on top of it: where the
    models agree, the dashes run inside the wide line.
    """
    epochs = [row["epoch"] for row in history.epochs]
    marker_every = max(1, len(epochs) // 15)
    for split, marker in (("train", None), ("test", "o")):
        for model, style in (("manual", MANUAL_STYLE), ("autograd", AUTOGRAD_STYLE)):
            key = f"{split}_{metric}_{model}"
            if key not in history.epochs[0]:
                continue
            ax.plot(
                epochs,
                [row[key] for row in history.epochs],
                label=f"{split}, {'hand-written' if model == 'manual' else 'autograd'}",
                marker=marker,
                markevery=marker_every,
                markersize=4,
                **{**style, "alpha": style.get("alpha", 1) * (1 if split == "train" else 0.8)},
            )
    ax.set_xlabel("epoch")
    ax.grid(True, alpha=0.3)


def gradient_difference(history: History, tolerance: float, dtype: str) -> Figure:
    """Per step, log scale: the two questions of `bpdemo.agreement`, apart.

    The check: the largest absolute and relative gradient difference with both gradients taken at
    the hand-written model's parameters, against the tolerance. The drift: the relative gradient
    difference between the two runs, each at its own parameters, in grey (drawn once the runs are
    no longer bitwise identical; until then it is the check itself).

    A log scale has no 0, and identical bits give exactly 0: such steps are drawn on a floor a decade
    below the smallest non-zero difference (1e-20 if every difference is 0), the absolute series on a
    floor of its own a little lower, so that neither line hides the other; the legend counts them.
    """
    figure = Figure(figsize=(7, 4.8))
    ax = figure.subplots()
    steps = np.array([r.step for r in history.steps])
    keys = ("max_rel_grad_diff", "max_abs_grad_diff", "drift_max_rel_grad_diff")
    series = {key: np.array([getattr(r, key) for r in history.steps]) for key in keys}
    drift = Drift()
    for record in history.steps:
        drift.add(record, tolerance)
    parted, past = drift.parted_at_step, drift.past_tolerance_at_step
    nonzero = np.concatenate([v[(v > 0) & np.isfinite(v)] for v in series.values()])
    floor = nonzero.min() / 10 if nonzero.size else 1e-20
    floors = dict(zip(keys, (floor, floor / 4, floor), strict=True))
    lines = [  # the drift behind the check, which it would hide where they coincide
        ("max_rel_grad_diff", "check, relative: max|Δg| / max Σ|terms of g|", "tab:purple", "-", 3),
        ("max_abs_grad_diff", "check, absolute: max|Δg|", "tab:green", "--", 3),
    ]
    if parted is not None:
        above = f", above the tolerance from step {past}" if past else ""
        label = f"drift of the two runs, relative (first apart at step {parted}{above})"
        lines.append(("drift_max_rel_grad_diff", label, "0.65", "-", 2))
    for key, label, color, style, zorder in lines:
        values, at = series[key], floors[key]
        zeros = int((values == 0).sum())
        if zeros:
            label += f" ({zeros} of {len(values)} steps exactly 0, drawn at {at:.0e})"
        ax.plot(
            steps,
            np.where(values > 0, values, at),
            label=label,
            color=color,
            linewidth=1.2,
            linestyle=style,
            zorder=zorder,
        )
    ax.axhline(
        tolerance,
        color="black",
        linestyle=":",
        label=f"tolerance of the check ({dtype}): {tolerance:g}",
    )
    if parted is None:
        ax.plot([], [], " ", label="drift: none, the two runs bitwise identical at every step")
    ax.set_yscale("log")
    ax.set_ylim(floor / 12, 10 * max(tolerance, nonzero.max() if nonzero.size else tolerance))
    ax.set_xlabel("training step (mini-batch)")
    ax.set_ylabel("hand-written − autograd gradient")
    ax.set_title(
        f"Gradient difference per step ({dtype}): the check, both at the hand-written weights,\n"
        "and the drift of the two runs, each trained on its own"
    )
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1, frameon=False)
    return figure


def layer_gradient_norms(history: History, title: str = "Gradient norm of each layer") -> Figure:
    """L2 norm of each layer's weight gradient over training, both models (log scale).

    Every step is drawn faintly (mini-batches make it noisy); over it, a running mean over about 2 %
    of the run, per model, so the layers' trends read apart.
    """
    figure = Figure(figsize=(7, 4.5))
    ax = figure.subplots()
    steps = [r.step for r in history.steps]
    window = max(1, len(steps) // 50)
    names = [n for n in history.steps[0].grad_norm_manual if n.endswith(".weight")]
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(names)))
    for name, color in zip(names, colors, strict=True):
        layer = name.removesuffix(".weight").replace("layers.", "layer ")
        manual = pd.Series([max(r.grad_norm_manual[name], 1e-300) for r in history.steps])
        autograd = pd.Series([max(r.grad_norm_autograd[name], 1e-300) for r in history.steps])
        ax.plot(steps, manual, color=color, linewidth=0.5, alpha=0.25)
        mean_m = manual.rolling(window, min_periods=1).mean()
        mean_a = autograd.rolling(window, min_periods=1).mean()
        ax.plot(
            steps, mean_m, color=color, linewidth=2.5, alpha=0.6, label=f"{layer}, hand-written"
        )
        ax.plot(steps, mean_a, color=color, linestyle="--", linewidth=1, label=f"{layer}, autograd")
    ax.set_yscale("log")
    ax.set_xlabel("training step (mini-batch)")
    ax.set_ylabel(f"‖dL/dW‖ (L2 norm; lines: mean over {window} steps)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=2)
    return figure
