"""The network as a learner draws it on paper: neurons, edges, and the numbers of one step.

Each neuron is a circle holding its pre-activation z and activation a (inputs hold their value x), with
its bias and the bias's gradient beneath. Each edge carries its weight w and gradient ∂L/∂w; its
colour gives the sign of ∂L/∂w (blue: negative, so the update raises w; red: positive, the update
lowers w) and its width the size of |∂L/∂w| relative to the largest in the picture. The loss is
written at the output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle

NEURON_GAP = 2.8  # vertical distance between neurons of a layer, in data units
RADIUS = 0.82
INCHES_PER_UNIT = 0.6  # fixed scale, so the labels' size in data units is known
LABEL_WIDTH = 1.7  # width of an edge label in data units (two lines of 7 pt, about 15 characters)
# Edge labels sit between these fractions of the way from the source: near the sources, where the
# edges of one source fan out and labels have room above and below each other.
LABEL_SPAN = (0.25, 0.65)
# Far enough apart that the labels nearest a source clear its circle.
MIN_LAYER_GAP = (RADIUS + LABEL_WIDTH / 2 + 0.2) / LABEL_SPAN[0]
LOSS_BOX_OFFSET = 3.0  # from the output neurons' centres to the loss box, past the targets
NEGATIVE_COLOUR = "tab:blue"
POSITIVE_COLOUR = "tab:red"
ZERO_COLOUR = "0.6"
NEURON_FILL = "#f4f4f4"


@dataclass
class NetworkState:
    """The numbers of one step for one sample. Weights (out, in); every other array 1-D, per neuron."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    grad_weights: list[np.ndarray]
    grad_biases: list[np.ndarray]
    inputs: np.ndarray
    pre_activations: list[np.ndarray]
    activations: list[np.ndarray]
    activation_names: list[str]
    loss: float
    loss_name: str
    targets: list[str]  # one line per output ("y = 4"), or one line naming the target class
    probabilities: np.ndarray | None = None  # softmax of the outputs (cross_entropy)
    input_labels: list[str] | None = None
    hidden_labels: list[list[str]] | None = None
    output_labels: list[str] | None = None
    title: str = "Network"


def short(value: float) -> str:
    """A number in few characters: 4 significant digits, an exponent only when large or small."""
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e7:
        text = f"{value:.4g}"
        return f"{float(text):,.0f}" if "e" in text else text  # 40,000 rather than 4e+04
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _positions(width: int) -> list[float]:
    """Vertical positions of `width` neurons, top to bottom, centred on 0."""
    return [((width - 1) / 2 - j) * NEURON_GAP for j in range(width)]


def _layer_positions(sizes: list[int]) -> list[float]:
    """Horizontal position of each layer: wide enough that edge labels of neighbouring targets,
    spread over LABEL_SPAN, stand at least a label's width apart."""
    positions = [0.0]
    span = LABEL_SPAN[1] - LABEL_SPAN[0]
    for n_out in sizes[1:]:
        gap = max(MIN_LAYER_GAP, 1.1 * LABEL_WIDTH * (n_out - 1) / span)
        positions.append(positions[-1] + gap)
    return positions


def _edge_colour(gradient: float) -> str:
    if gradient == 0:
        return ZERO_COLOUR
    return POSITIVE_COLOUR if gradient > 0 else NEGATIVE_COLOUR


def network_picture(state: NetworkState) -> Figure:
    """Draw the network of `state`; returns the figure (save it with `RunDir.save_figure`)."""
    sizes = [len(state.inputs)] + [len(b) for b in state.biases]
    num_layers = len(sizes)
    ys = [_positions(width) for width in sizes]
    xs = _layer_positions(sizes)
    tallest = max(sizes)
    top = (tallest - 1) / 2 * NEURON_GAP
    x_range = (-1.4, xs[-1] + LOSS_BOX_OFFSET + 3.4)
    y_range = (-top - 2.9, top + 1.3)
    figure, ax = plt.subplots(
        figsize=(
            (x_range[1] - x_range[0]) * INCHES_PER_UNIT,
            (y_range[1] - y_range[0]) * INCHES_PER_UNIT + 0.6,
        )
    )

    # Widths are relative to the largest finite gradient (a diverged step may hold inf or NaN).
    finite = [np.abs(g[np.isfinite(g)]) for g in state.grad_weights]
    largest = max((float(g.max()) for g in finite if g.size), default=0.0)
    # Edges first, so the circles sit on top of them.
    for layer, (weight, grad) in enumerate(zip(state.weights, state.grad_weights, strict=True)):
        x0, x1 = xs[layer], xs[layer + 1]
        n_out, n_in = weight.shape
        for j in range(n_out):
            # The labels of the edges into neuron j sit at one fraction of the way, a different one
            # for each j, so labels of different targets stand side by side, never on one another.
            start, end = LABEL_SPAN
            t = (start + end) / 2 if n_out == 1 else start + (end - start) * j / (n_out - 1)
            for i in range(n_in):
                y0, y1 = ys[layer][i], ys[layer + 1][j]
                g = float(grad[j, i])
                size = (
                    math.sqrt(min(abs(g) / largest, 1.0))
                    if largest > 0 and math.isfinite(g)
                    else 0.0
                )
                length = math.hypot(x1 - x0, y1 - y0)
                dx, dy = (x1 - x0) / length, (y1 - y0) / length
                ax.plot(
                    [x0 + RADIUS * dx, x1 - RADIUS * dx],
                    [y0 + RADIUS * dy, y1 - RADIUS * dy],
                    color=_edge_colour(g),
                    linewidth=0.8 + 4.5 * size,
                    alpha=0.75,
                    zorder=1,
                    solid_capstyle="round",
                )
                ax.text(
                    x0 + t * (x1 - x0),
                    y0 + t * (y1 - y0),
                    f"w = {short(float(weight[j, i]))}\n∂L/∂w = {short(g)}",
                    fontsize=7,
                    ha="center",
                    va="center",
                    color="0.1",
                    zorder=3,
                    bbox={
                        "boxstyle": "round,pad=0.2",
                        "fc": "white",
                        "ec": _edge_colour(g),
                        "lw": 0.6,
                        "alpha": 0.92,
                    },
                )

    for layer, width in enumerate(sizes):
        x = xs[layer]
        labels = _labels(state, layer, num_layers)
        for j in range(width):
            y = ys[layer][j]
            ax.add_patch(Circle((x, y), RADIUS, fc=NEURON_FILL, ec="0.25", lw=1.2, zorder=4))
            if layer == 0:
                inside = f"x = {short(float(state.inputs[j]))}"
            else:
                z = float(state.pre_activations[layer - 1][j])
                a = float(state.activations[layer - 1][j])
                inside = f"z = {short(z)}\na = {short(a)}"
            ax.text(x, y, inside, fontsize=7.5, ha="center", va="center", zorder=5)
            ax.text(
                x,
                y + RADIUS + 0.12,
                labels[j],
                fontsize=8.5,
                ha="center",
                va="bottom",
                fontweight="bold",
                zorder=5,
            )
            if layer > 0:
                b = float(state.biases[layer - 1][j])
                gb = float(state.grad_biases[layer - 1][j])
                ax.text(
                    x,
                    y - RADIUS - 0.08,
                    f"b = {short(b)}\n∂L/∂b = {short(gb)}",
                    fontsize=7,
                    ha="center",
                    va="top",
                    color="0.25",
                    zorder=5,
                )

    # The output side: what each output is compared with, and the loss.
    x_out = xs[-1]
    for j, y in enumerate(ys[-1]):
        notes = []
        if state.probabilities is not None:
            notes.append(f"p = {short(float(state.probabilities[j]))}")
        if len(state.targets) == len(ys[-1]) and state.probabilities is None:
            notes.append(state.targets[j])
        if notes:
            ax.text(
                x_out + RADIUS + 0.25,
                y,
                "\n".join(notes),
                fontsize=8.5,
                ha="left",
                va="center",
                zorder=5,
            )
    loss_lines = [f"loss ({state.loss_name})", f"L = {short(state.loss)}"]
    if state.probabilities is not None or len(state.targets) != len(ys[-1]):
        loss_lines += state.targets
    ax.text(
        x_out + LOSS_BOX_OFFSET,
        0,
        "\n".join(loss_lines),
        fontsize=9.5,
        ha="left",
        va="center",
        bbox={"boxstyle": "round,pad=0.4", "fc": "#fff6d5", "ec": "0.4"},
        zorder=5,
    )

    for layer in range(num_layers):
        caption = (
            "inputs" if layer == 0 else f"layers.{layer - 1}\n{state.activation_names[layer - 1]}"
        )
        ax.text(
            xs[layer],
            -top - RADIUS - 1.15,
            caption,
            fontsize=8.5,
            ha="center",
            va="top",
            color="0.35",
            style="italic",
        )

    ax.legend(
        handles=[
            Line2D([], [], color=NEGATIVE_COLOUR, lw=3, label="∂L/∂w < 0: the update raises w"),
            Line2D([], [], color=POSITIVE_COLOUR, lw=3, label="∂L/∂w > 0: the update lowers w"),
            Line2D([], [], color="0.3", lw=0.8, label="line width: |∂L/∂w| (√, largest = widest)"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.02),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    ax.set_xlim(*x_range)
    ax.set_ylim(*y_range)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(state.title, fontsize=11)
    return figure


def _labels(state: NetworkState, layer: int, num_layers: int) -> list[str]:
    width = len(state.inputs) if layer == 0 else len(state.biases[layer - 1])
    if layer == 0:
        given, prefix = state.input_labels, "x"
    elif layer == num_layers - 1:
        given, prefix = state.output_labels, "ŷ"
    else:
        given = state.hidden_labels[layer - 1] if state.hidden_labels else None
        prefix = f"h{layer - 1}." if num_layers > 3 else "h"
    if given:
        return list(given)
    return [f"{prefix}{j}" for j in range(width)]
