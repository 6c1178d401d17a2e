"""Figures of the gradient-health study: norms by layer, loss curves, and norms over training.

`figures` makes all three, by file name, as the gradients demo writes them.

The line figures are grids of panels, one row per activation and one column per depth; a colour is an
initialisation, the same in every figure. The hand-written model is a thick translucent line, the
autograd model a thin dashed line on top of it: where they agree, the dashed line runs inside the
thick one. Over training each model is its own run: where the two runs drift apart (a chaotic
setting amplifies their rounding differences, `bpdemo.agreement.why_runs_drift`), the dashed line
leaves the thick one, while the gradient check at the same weights still holds (the demo's lines).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, NullFormatter

from bpdemo.health import STUDY_INITS, SettingResult, TrainingRun

# One colour per initialisation of the study, the same in every figure.
INIT_COLORS = dict(
    zip(STUDY_INITS, ("tab:green", "tab:purple", "tab:blue", "tab:brown", "tab:red"), strict=True)
)
CLIPPED_COLOR = "tab:orange"
VERDICT_MARKERS = {"vanishing": "v", "healthy": "o", "exploding": "^"}
MANUAL = {"linewidth": 3.0, "alpha": 0.45}
AUTOGRAD = {"linewidth": 1.0, "linestyle": "--"}
LOSS_CEILING = 1e3  # loss axes stop at this multiple of the largest first loss in the panel


def figures(results: Sequence[SettingResult], focus_depth: int) -> dict[str, Callable[[], Figure]]:
    """The study's three figures by file name, each as the function that draws it; the heat map
    shows the settings at `focus_depth`."""
    return {
        "grad_norms_by_layer.png": partial(
            norms_by_layer,
            results,
            "Gradient norm of every layer at initialisation (log scale), one line per setting",
        ),
        "loss_curves.png": partial(
            loss_curves, results, "Training loss per step (log scale): stalls and divergences"
        ),
        "grad_norm_heatmap.png": partial(
            norm_heatmaps,
            results,
            focus_depth,
            f"Gradient norm of every layer over training, depth {focus_depth} (hand-written "
            "model; white ≈ 1, blue smaller, red larger)",
        ),
    }


def _positive(values) -> np.ndarray:
    """As an array, with every value a log scale cannot show (0, inf, NaN) made NaN (a gap)."""
    array = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(array) & (array > 0), array, np.nan)


def _panels(results: Sequence[SettingResult], width: float = 3.4, height: float = 2.8):
    activations = list(dict.fromkeys(r.setting.activation for r in results))
    depths = sorted({r.setting.depth for r in results})
    figure = Figure(figsize=(width * len(depths) + 0.6, height * len(activations) + 0.9))
    axes = figure.subplots(len(activations), len(depths), squeeze=False)
    cells = {
        (activation, depth): axes[row][column]
        for row, activation in enumerate(activations)
        for column, depth in enumerate(depths)
    }
    for (activation, depth), ax in cells.items():
        ax.set_title(f"{activation}, depth {depth}", fontsize=10)
    return figure, axes, cells


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power_of_ten(value: float, _position=None) -> str:
    """A log-axis label as plain text: 0.01, 1, 100, or 10⁻³⁶ (no mathtext, which is slow to lay out)."""
    if value <= 0:
        return ""
    exponent = round(math.log10(value))
    if not math.isclose(value, 10.0**exponent, rel_tol=1e-6):
        return f"{value:g}"
    if -2 <= exponent <= 3:
        return f"{value:g}"
    return "10" + str(exponent).translate(SUPERSCRIPT)


def _readable_log_ticks(ax: Axes) -> None:
    """Plain-text labels on a log axis; the minor ticks labelled too if it spans about a decade."""
    low, high = ax.get_ylim()
    if high / low < 12:
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis="y", which="minor", labelsize=7)
    else:
        ax.yaxis.set_major_formatter(FuncFormatter(_power_of_ten))
        ax.yaxis.set_minor_formatter(NullFormatter())


def _log_axes(axes, ylabel: str, xlabel: str) -> None:
    """Every panel on a log y axis with a light grid; labels on the left column and the bottom row."""
    for row in axes:
        for ax in row:
            ax.set_yscale("log")
            ax.grid(True, alpha=0.3, which="major")
            _readable_log_ticks(ax)
        row[0].set_ylabel(ylabel)
    for ax in axes[-1]:
        ax.set_xlabel(xlabel)


def _inits_legend(results: Sequence[SettingResult]) -> list[Line2D]:
    inits = dict.fromkeys(r.setting.init for r in results)
    return [
        Line2D([], [], color=INIT_COLORS.get(init, "black"), linewidth=3, label=f"init {init}")
        for init in inits
    ]


def _finish(figure: Figure, title: str, handles: Sequence[Line2D]) -> None:
    height = figure.get_figheight()
    figure.suptitle(title, x=0.01, y=1 - 0.08 / height, ha="left", va="top", fontsize=12)
    figure.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(0.005, 1 - 0.38 / height),
        ncol=len(handles),
        fontsize=9,
        frameon=False,
        handlelength=1.8,
        columnspacing=1.2,
    )
    # Fixed margins rather than tight_layout: measuring every label twice is slow, and the layout of
    # these grids does not change with the data.
    width = figure.get_figwidth()
    figure.subplots_adjust(
        left=0.75 / width,
        right=1 - 0.15 / width,
        bottom=0.6 / height,
        top=1 - 0.95 / height,
        wspace=0.28,
        hspace=0.38,
    )


def norms_by_layer(results: Sequence[SettingResult], title: str) -> Figure:
    """‖dL/dW‖ of every layer at initialisation (log scale), a panel per activation and depth.

    One line per setting (colour: initialisation; marker: verdict), both models.
    """
    figure, axes, cells = _panels(results)
    for result in results:
        setting = result.setting
        ax = cells[(setting.activation, setting.depth)]
        layers = np.arange(1, setting.depth + 1)
        color = INIT_COLORS.get(setting.init, "black")
        marker = VERDICT_MARKERS[result.verdict.name]
        ax.plot(
            layers,
            _positive(result.initial.norms_manual),
            color=color,
            marker=marker,
            markersize=6,
            **MANUAL,
        )
        ax.plot(layers, _positive(result.initial.norms_autograd), color=color, **AUTOGRAD)
    for (_, depth), ax in cells.items():
        ax.set_xticks(_layer_ticks(depth))
    _log_axes(axes, "‖dL/dW‖ at initialisation", "layer (1 = first, next to the input)")
    handles = [
        *_inits_legend(results),
        *(
            Line2D([], [], color="gray", marker=m, linestyle="none", markersize=7, label=verdict)
            for verdict, m in VERDICT_MARKERS.items()
        ),
        Line2D([], [], color="gray", **MANUAL, label="hand-written"),
        Line2D([], [], color="black", **AUTOGRAD, label="autograd"),
    ]
    _finish(figure, title, handles)
    return figure


def _layer_ticks(depth: int) -> list[int]:
    if depth <= 10:
        return list(range(1, depth + 1))
    step = 5 if depth <= 40 else 10
    return [1, *range(step, depth + 1, step)]


def loss_curves(results: Sequence[SettingResult], title: str) -> Figure:
    """Mini-batch training loss per step (log scale), a panel per activation and depth.

    A run that exploded ends in a cross at its last finite loss; its rerun with clipping is orange.
    The axis stops at `LOSS_CEILING` times the largest first loss of the panel: a loss beyond it is
    drawn on the top edge, with an upward triangle.
    """
    figure, axes, cells = _panels(results)
    firsts: dict[Axes, float] = {}
    clip_norms = set()
    for result in results:
        ax = cells[(result.setting.activation, result.setting.depth)]
        firsts[ax] = max(firsts.get(ax, 0.0), result.initial.loss_manual)
    for result in results:
        ax = cells[(result.setting.activation, result.setting.depth)]
        ceiling = LOSS_CEILING * firsts[ax]
        _loss_line(ax, result.run, INIT_COLORS.get(result.setting.init, "black"), ceiling)
        if result.clipped is not None:
            clip_norms.add(result.clipped.max_grad_norm)
            _loss_line(ax, result.clipped, CLIPPED_COLOR, ceiling)
    _log_axes(axes, "training loss (cross-entropy)", "training step (mini-batch)")
    handles = _inits_legend(results)
    if clip_norms:
        norms = ", ".join(f"{n:g}" for n in sorted(clip_norms))
        handles.append(
            Line2D([], [], color=CLIPPED_COLOR, linewidth=3, label=f"rerun, clipped to {norms}")
        )
    handles += [
        Line2D([], [], color="gray", **MANUAL, label="hand-written"),
        Line2D([], [], color="black", **AUTOGRAD, label="autograd, its own run (may drift)"),
        Line2D([], [], color="black", marker="X", linestyle="none", label="then inf/NaN"),
        Line2D(
            [],
            [],
            color="black",
            marker="^",
            linestyle="none",
            label="beyond the axis (≥10³× start)",
        ),
    ]
    _finish(figure, title, handles)
    return figure


def _loss_line(ax: Axes, run: TrainingRun, color: str, ceiling: float) -> None:
    steps = np.asarray(run.steps)
    for model, style in (("manual", MANUAL), ("autograd", AUTOGRAD)):
        losses = _positive(run.losses(model))
        beyond = losses > ceiling
        ax.plot(steps, np.minimum(losses, ceiling), color=color, **style)
        if model == "manual" and beyond.any():
            ax.plot(steps[beyond], np.full(beyond.sum(), ceiling), "^", color=color, markersize=6)
    if run.history.diverged_at_step is not None:
        finite = np.flatnonzero(np.isfinite(_positive(run.losses("manual"))))
        if finite.size:
            last = finite[-1]
            value = min(run.losses("manual")[last], ceiling)
            ax.plot(steps[last], value, "X", color=color, markersize=10, markeredgecolor="black")


def _no_data(ax: Axes, start: float, end: float, depth: int) -> None:
    """Hatch the steps a run never reached (white would read as a norm of 1)."""
    ax.add_patch(
        Rectangle(
            (start, 0.5), end - start, depth, hatch="///", fill=False, edgecolor="silver", lw=0
        )
    )


def _color_range(values: np.ndarray) -> tuple[float, float]:
    """A range 10^-k to 10^k centred on 1, wide enough for the norms (at most 10^±12)."""
    shown = values[np.isfinite(values) & (values > 0)]
    if shown.size == 0:
        return 1e-1, 1e1
    decades = np.abs(np.log10(shown))
    k = int(min(12, max(2, math.ceil(float(np.percentile(decades, 99))))))
    return 10.0**-k, 10.0**k


def norm_heatmaps(results: Sequence[SettingResult], depth: int, title: str) -> Figure:
    """‖dL/dW‖ of every layer (y) at every training step (x), one panel per setting at `depth`.

    One colour scale (log, centred on 1: blue smaller, red larger) for every panel, so the same colour
    is the same size everywhere; grey cells are not finite. A last column shows the reruns with
    clipping (norms before clipping), where there are any.
    """
    chosen = [r for r in results if r.setting.depth == depth]
    activations = list(dict.fromkeys(r.setting.activation for r in chosen))
    inits = list(dict.fromkeys(r.setting.init for r in chosen))
    has_clipped = any(r.clipped is not None for r in chosen)
    columns = [*inits, "clipped"] if has_clipped else inits
    planned = max(len(r.run.steps) for r in chosen)

    panels: dict[tuple[str, str], tuple[np.ndarray, TrainingRun]] = {}
    for result in chosen:
        activation = result.setting.activation
        panels[(activation, result.setting.init)] = (
            np.asarray(result.run.layer_norms(), dtype=np.float64),
            result.run,
        )
        if result.clipped is not None:
            panels[(activation, "clipped")] = (
                np.asarray(result.clipped.layer_norms(), dtype=np.float64),
                result.clipped,
            )
    low, high = _color_range(np.concatenate([v.ravel() for v, _ in panels.values()]))
    norm = LogNorm(vmin=low, vmax=high, clip=False)
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(
        bad="lightgrey", under="navy", over="darkred"
    )

    figure = Figure(figsize=(2.9 * len(columns) + 1.4, 2.5 * len(activations) + 1.0))
    axes = figure.subplots(len(activations), len(columns), squeeze=False, sharex=True, sharey=True)
    image = None
    for row, activation in enumerate(activations):
        for column, init in enumerate(columns):
            ax = axes[row][column]
            ax.set_title(f"{activation}, {'large, clipped' if init == 'clipped' else init}")
            ax.title.set_fontsize(10)
            ax.set_xlim(0.5, planned + 0.5)
            ax.set_ylim(0.5, depth + 0.5)
            if (activation, init) not in panels:
                _no_data(ax, 0.5, planned + 0.5, depth)
                note = "no rerun:\nthe run did not explode" if init == "clipped" else "not run"
                ax.text(
                    0.5,
                    0.5,
                    note,
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    bbox={"facecolor": "white", "edgecolor": "none"},
                )
                continue
            data, run = panels[(activation, init)]
            if len(data) < planned:
                _no_data(ax, len(data) + 0.5, planned + 0.5, depth)
            image = ax.imshow(
                np.ma.masked_invalid(np.where(data > 0, data, np.nan)).T,
                origin="lower",
                aspect="auto",
                interpolation="nearest",
                cmap=cmap,
                norm=norm,
                extent=(0.5, len(data) + 0.5, 0.5, depth + 0.5),
            )
            if run.history.diverged_at_step is not None:
                ax.text(
                    0.97,
                    0.5,
                    f"loss inf/NaN\nat step {run.history.diverged_at_step}:\nrun stopped",
                    ha="right",
                    va="center",
                    transform=ax.transAxes,
                    fontsize=9,
                    bbox={"facecolor": "white", "edgecolor": "none"},
                )
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    for row in axes:
        row[0].set_ylabel("layer (1 = first)")
    width, height = figure.get_figwidth(), figure.get_figheight()
    figure.suptitle(title, x=0.01, y=1 - 0.08 / height, ha="left", va="top", fontsize=12)
    right = 1 - 1.25 / width
    figure.subplots_adjust(
        left=0.6 / width,
        right=right,
        bottom=0.55 / height,
        top=1 - 0.7 / height,
        wspace=0.08,
        hspace=0.3,
    )
    if image is not None:
        bar_axes = figure.add_axes((right + 0.2 / width, 0.12, 0.15 / width, 0.76))
        bar = figure.colorbar(image, cax=bar_axes, extend="both")
        bar.ax.yaxis.set_major_formatter(FuncFormatter(_power_of_ten))
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
        bar.set_label("‖dL/dW‖ (log scale; 1 is white; grey: not finite; hatched: no step)")
    return figure
