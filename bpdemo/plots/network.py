"""The network as a learner draws it on paper: neurons, edges, and the numbers of one step.

One picture per phase of a step (`NetworkState.phase`):

    step      each neuron's z and a; each weight w with its gradient ∂L/∂w; each bias b with ∂L/∂b
    forward   z and a; the weights and biases
    backward  δ = ∂L/∂z of each neuron, with ∂L/∂a and ∂L/∂b beneath; ∂L/∂w of each weight
    update    each weight and bias before and after the update (old → new)

An edge's width gives the size of the number it stands for (the gradient; in the forward picture the
weight; in the update the change), relative to the largest in the picture. Its colour follows the one
rule the explorer's page follows too (`bpdemo.equations.edge_mark`): blue where the weight rises, red
where it falls (in the step and backward pictures the way gradient descent moves it, against
∂L/∂w; in the update the way the update moved it); in the forward picture the edges are grey, a
negative weight's dashed. Edge labels are placed largest first, each where it covers
no neuron, text or other label and no other edge passes near its middle; with edge_labels "auto" a
label that finds no such place is left out (the picture says how many are shown), "all" writes every
label, "none" none.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle

from bpdemo.equations import EDGE_MARKS, FALLS, NEGATIVE, POSITIVE, RISES, ZERO, edge_mark
from bpdemo.plots.edge_labels import EdgeLabel, Layout

NEURON_GAP = 2.8  # vertical distance between neurons of a layer, in data units
RADIUS = 0.82
INCHES_PER_UNIT = 0.46  # fixed scale, so the size of a text in data units is known
EDGE_FONT, NEURON_FONT, NAME_FONT, LOSS_FONT = 7.0, 7.0, 8.5, 9.5  # points
MIN_LAYER_GAP, MAX_LAYER_GAP = 7.5, 14.0  # data units between layers, whatever their widths
ALL_LABELS_UP_TO = 12  # edges in a layer gap that "auto" labels every one of, if they have room
LOSS_BOX_OFFSET = 3.0  # from the output neurons' centres to the loss box, past the targets
LOSS_BOX_MARGIN = 0.74  # right of the loss text's estimate (`Layout.box`): its frame and a margin
RISES_COLOUR = "tab:blue"
FALLS_COLOUR = "tab:red"
ZERO_COLOUR = "0.6"
WEIGHT_COLOUR = "0.35"
NEURON_FILL = "#f4f4f4"
PHASE_TITLES = {"forward": " — forward pass", "backward": " — backward pass"}
PHASE_TITLES["update"] = " — the update"
DASHED = (0, (3, 2))
MARK_STYLES = {  # how each mark of `bpdemo.equations.EDGE_MARKS` is drawn: colour, line style
    RISES: (RISES_COLOUR, "solid"),
    FALLS: (FALLS_COLOUR, "solid"),
    POSITIVE: (WEIGHT_COLOUR, "solid"),
    NEGATIVE: (WEIGHT_COLOUR, DASHED),
    ZERO: (ZERO_COLOUR, "solid"),
    None: (ZERO_COLOUR, "solid"),  # not finite: no sign
}
WIDTHS = {"step": "|∂L/∂w|", "backward": "|∂L/∂w|", "forward": "|w|", "update": "|change|"}


@dataclass
class NetworkState:
    """The numbers of one step for one sample. Weights (out, in); every other array 1-D, per neuron.

    The backward picture needs grad_activations (dL/da) and deltas (dL/dz), the update picture
    weights_after and biases_after; the others draw without them. A network without biases has
    None for biases, grad_biases and biases_after, and its picture draws no bias.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray] | None
    grad_weights: list[np.ndarray]
    grad_biases: list[np.ndarray] | None
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
    phase: str = "step"  # step, forward, backward or update
    grad_activations: list[np.ndarray] | None = None
    deltas: list[np.ndarray] | None = None
    weights_after: list[np.ndarray] | None = None
    biases_after: list[np.ndarray] | None = None
    biases_trained: bool = True
    weight_labels: list[list[list[str]]] | None = None  # a source's names, (out, in) per layer
    bias_labels: list[list[str]] | None = None  # and its biases', one list per layer
    loss_after: float | None = None  # the loss after the update, when known
    edge_labels: str = "auto"  # auto, all or none
    learning_rate: str | None = None
    note: str | None = None  # a line under the picture, e.g. which numbers are one sample's


def short(value: float) -> str:
    """A number in few characters: 4 significant digits, an exponent only when large or small."""
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)  # nan, inf, -inf
    if 1e-3 <= abs(value) < 1e7:
        text = f"{value:.4g}"
        return f"{float(text):,.0f}" if "e" in text else text  # 40,000 rather than 4e+04
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


# -- what each phase writes and draws ----------------------------------------------------------------
def _neuron_text(state: NetworkState, layer: int, j: int) -> str:
    """Inside neuron j of `layer` (0: the inputs)."""
    if layer == 0:
        return f"x = {short(float(state.inputs[j]))}"
    if state.phase == "backward":
        return f"δ = {short(float(state.deltas[layer - 1][j]))}"
    if state.phase == "update":
        if state.biases is None:
            return ""
        before = float(state.biases[layer - 1][j])
        b = _bias_name(state, layer, j)
        if not state.biases_trained:
            return f"{b} = {short(before)}\n(held fixed)"
        return f"{b} = {short(before)}\n→ {short(float(state.biases_after[layer - 1][j]))}"
    z, a = float(state.pre_activations[layer - 1][j]), float(state.activations[layer - 1][j])
    return f"z = {short(z)}\na = {short(a)}"


def _below_text(state: NetworkState, layer: int, j: int) -> str:
    """Under neuron j of `layer` (> 0): its bias and its gradient; in the backward picture dL/da,
    which times f'(z) gives the delta written inside (BP1, BP2)."""
    lines = []
    if state.phase == "backward":
        lines.append(f"∂L/∂a = {short(float(state.grad_activations[layer - 1][j]))}")
    if state.biases is not None:
        name = _bias_name(state, layer, j)
        b, gb = float(state.biases[layer - 1][j]), float(state.grad_biases[layer - 1][j])
        value, grad = f"{name} = {short(b)}", f"∂L/∂{name} = {short(gb)}"
        by_phase = {"step": [value, grad], "forward": [value], "backward": [grad]}
        lines += by_phase.get(state.phase, [])  # the update writes its biases inside the neuron
    return "\n".join(lines)


def _bias_name(state: NetworkState, layer: int, j: int) -> str:
    """The source's name of the bias of neuron j of `layer` (> 0), or b."""
    return state.bias_labels[layer - 1][j] if state.bias_labels else "b"


def _edge_value(state: NetworkState, layer: int) -> np.ndarray:
    """The number each edge of `layer` stands for: its width, its colour, its label's priority."""
    if state.phase == "forward":
        return state.weights[layer]
    if state.phase == "update":
        return state.weights_after[layer] - state.weights[layer]
    return state.grad_weights[layer]


def _edge_text(state: NetworkState, layer: int, j: int, i: int) -> str:
    w, g = float(state.weights[layer][j, i]), float(state.grad_weights[layer][j, i])
    name = state.weight_labels[layer][j][i] if state.weight_labels else "w"
    if state.phase == "forward":
        return f"{name} = {short(w)}"
    if state.phase == "backward":
        return f"∂L/∂{name} = {short(g)}"
    if state.phase == "update":
        after = short(float(state.weights_after[layer][j, i]))
        return f"{short(w)} → {after}" if name == "w" else f"{name}: {short(w)} → {after}"
    return f"{name} = {short(w)}\n∂L/∂{name} = {short(g)}"


def _edge_mark(state: NetworkState, layer: int, j: int, i: int) -> str | None:
    """The mark of the edge of weight [j, i] of `layer` in the picture's phase (`edge_mark`)."""
    weight, grad = float(state.weights[layer][j, i]), float(state.grad_weights[layer][j, i])
    after = state.weights_after[layer][j, i] if state.weights_after is not None else weight
    return edge_mark(state.phase, weight, grad, float(after) - weight)


def _legend(state: NetworkState, marks: set[str | None]) -> list[Line2D]:
    """The meaning of each mark of the phase; of a zero only when an edge has it."""
    handles = [
        Line2D([], [], color=MARK_STYLES[mark][0], lw=3, ls=MARK_STYLES[mark][1], label=text)
        for mark, text in EDGE_MARKS[state.phase]
        if mark != ZERO or ZERO in marks
    ]
    size = WIDTHS[state.phase]
    width = Line2D([], [], color="0.3", lw=0.8, label=f"line width: {size} (√, largest = widest)")
    return [*handles, width]


def _loss_lines(state: NetworkState, classes: bool) -> list[str]:
    lines = [f"loss ({state.loss_name})"]
    if state.phase == "update":
        lines.append(f"before the update: L = {short(state.loss)}")
        if state.loss_after is not None:
            lines.append(f"after it: L = {short(state.loss_after)}")
        if state.learning_rate is not None:
            lines.append(f"lr = {state.learning_rate}")
        return lines
    lines.append(f"L = {short(state.loss)}")
    return lines + (state.targets if classes else [])


# -- geometry --------------------------------------------------------------------------------------
def _positions(width: int) -> list[float]:
    """Vertical positions of `width` neurons, top to bottom, centred on 0."""
    return [((width - 1) / 2 - j) * NEURON_GAP for j in range(width)]


def _layer_positions(sizes: list[int]) -> list[float]:
    """Horizontal position of each layer: wider apart between wider layers, so edges stay shallow."""
    positions = [0.0]
    for n_in, n_out in itertools.pairwise(sizes):
        gap = min(MAX_LAYER_GAP, max(MIN_LAYER_GAP, 1.25 * max(n_in, n_out) + 3.5))
        positions.append(positions[-1] + gap)
    return positions


def _draw_edges(ax, state: NetworkState, xs: list[float], ys: list[list[float]]) -> tuple:
    """Draw every edge; returns its label-to-be (in order of priority), per layer gap the edges'
    (starts, ends) for the labels to keep clear of, and the marks the edges have."""
    # Widths relative to the largest finite value (a diverged step may hold inf or NaN).
    values = [np.asarray(_edge_value(state, layer), dtype=float) for layer in range(len(xs) - 1)]
    finite = [np.abs(v[np.isfinite(v)]) for v in values]
    largest = max((float(v.max()) for v in finite if v.size), default=0.0)
    labels: list[tuple[int, float, EdgeLabel]] = []  # (rank in its layer, -size, label)
    edges: list[tuple[np.ndarray, np.ndarray]] = []
    marks: set[str | None] = set()
    for layer, value in enumerate(values):
        starts, ends, colours, widths, styles = [], [], [], [], []
        x0, x1 = xs[layer], xs[layer + 1]
        n_out, n_in = value.shape
        order = np.argsort(-np.nan_to_num(np.abs(value), nan=np.inf), axis=None, kind="stable")
        ranks = np.empty(order.size, dtype=int)
        ranks[order] = np.arange(order.size)
        for j, i in itertools.product(range(n_out), range(n_in)):
            y0, y1 = ys[layer][i], ys[layer + 1][j]
            v = float(value[j, i])
            size = math.sqrt(min(abs(v) / largest, 1.0)) if largest > 0 and math.isfinite(v) else 0
            length = math.hypot(x1 - x0, y1 - y0)
            dx, dy = (x1 - x0) / length, (y1 - y0) / length
            start = (x0 + RADIUS * dx, y0 + RADIUS * dy)
            end = (x1 - RADIUS * dx, y1 - RADIUS * dy)
            starts.append(start)
            ends.append(end)
            mark = _edge_mark(state, layer, j, i)
            marks.add(mark)
            colour, style = MARK_STYLES[mark]
            colours.append(colour)
            widths.append(0.8 + 4.5 * size)
            styles.append(style)
            # Without a free spot ("all"), one fraction of the way for each target neuron, so
            # that labels of different targets stand side by side rather than on one another.
            spot = 0.25 + 0.4 * (j / (n_out - 1) if n_out > 1 else 0.5)
            index = j * n_in + i
            text = _edge_text(state, layer, j, i)
            label = EdgeLabel(text, colour, start, end, layer, index, spot)
            labels.append((int(ranks[index]), -size, label))
        edges.append((np.array(starts), np.array(ends)))
        ax.add_collection(  # one collection a gap: quick to draw, however many edges
            LineCollection(
                list(zip(starts, ends, strict=True)), colors=colours, linewidths=widths,
                linestyles=styles, alpha=0.75, zorder=1, capstyle="round",
            )
        )  # fmt: skip
    labels.sort(key=lambda item: item[:2])
    return [label for *_, label in labels], edges, marks


# -- the picture -----------------------------------------------------------------------------------
def network_picture(state: NetworkState) -> Figure:
    """Draw the network of `state`; returns the figure (save it with `RunDir.save_figure`)."""
    sizes = [len(state.inputs)] + [w.shape[0] for w in state.weights]
    num_layers = len(sizes)
    ys = [_positions(width) for width in sizes]
    xs = _layer_positions(sizes)
    top = (max(sizes) - 1) / 2 * NEURON_GAP
    layout = Layout(INCHES_PER_UNIT)  # what an edge label must not cover
    # Room on the right for the widest loss box of any phase, so that every phase of an example has
    # the same canvas and none cuts its box off (the update's lines are the longest). The pictures
    # `bpdemo.worked.files` saves share a canvas anyway, but a notebook shows each figure as drawn.
    classes = state.probabilities is not None or len(state.targets) != sizes[-1]
    box_lines = [
        line for phase in PHASE_TITLES for line in _loss_lines(replace(state, phase=phase), classes)
    ]
    box_left, _, box_right, _ = layout.box(0, 0, "\n".join(box_lines), LOSS_FONT, ha="left")
    x_range = (-1.4, xs[-1] + LOSS_BOX_OFFSET + max(3.6, box_right - box_left + LOSS_BOX_MARGIN))
    y_range = (-top - 3.3 - (0.4 if state.note else 0), top + 1.3)
    # The axes fill the figure, so that a data unit is INCHES_PER_UNIT inches and a text's size in
    # data units is known; the title and the legend outside it are kept by the tight bounding box.
    # The figure is not pyplot's: nothing holds it once it is saved or dropped.
    figure = Figure(
        figsize=(
            (x_range[1] - x_range[0]) * INCHES_PER_UNIT,
            (y_range[1] - y_range[0]) * INCHES_PER_UNIT,
        )
    )
    ax = figure.add_axes((0, 0, 1, 1))

    def write(x: float, y: float, text: str, size: float, ha="center", va="center", **style):
        if text:
            ax.text(x, y, text, fontsize=size, ha=ha, va=va, zorder=5, **style)
            layout.take(layout.box(x, y, text, size, ha, va))

    for layer, width in enumerate(sizes):
        x = xs[layer]
        names = _labels(state, layer, num_layers)
        for j in range(width):
            y = ys[layer][j]
            ax.add_patch(Circle((x, y), RADIUS, fc=NEURON_FILL, ec="0.25", lw=1.2, zorder=4))
            layout.take((x - RADIUS, y - RADIUS, x + RADIUS, y + RADIUS))
            write(x, y, _neuron_text(state, layer, j), NEURON_FONT)
            write(x, y + RADIUS + 0.12, names[j], NAME_FONT, va="bottom", fontweight="bold")
            if layer > 0:
                below = _below_text(state, layer, j)
                write(x, y - RADIUS - 0.08, below, EDGE_FONT, va="top", color="0.25")

    labels, edges, marks = _draw_edges(ax, state, xs, ys)
    shown = 0
    if state.edge_labels != "none":
        # "auto" labels every edge of a small gap; in a larger one about one edge per neuron on
        # either side, so that the largest numbers stand out and the edges still show.
        budgets = [
            n_in * n_out if n_in * n_out <= ALL_LABELS_UP_TO else n_in + n_out
            for n_in, n_out in itertools.pairwise(sizes)
        ]
        placed = layout.place(labels, edges, EDGE_FONT, state.edge_labels, budgets)
        shown = len(placed)
        for label, x, y in placed:
            box = {"boxstyle": "round,pad=0.2", "fc": "white", "ec": label.colour, "lw": 0.6}
            ax.text(
                x, y, label.text, fontsize=EDGE_FONT, ha="center", va="center", color="0.1",
                zorder=3, bbox={**box, "alpha": 0.92},
            )  # fmt: skip

    # The output side: what each output is compared with, and the loss.
    x_out = xs[-1]
    for j, y in enumerate(ys[-1]):
        notes = []
        if state.phase != "update" and state.probabilities is not None:
            notes.append(f"p = {short(float(state.probabilities[j]))}")
        if state.phase != "update" and not classes:
            notes.append(state.targets[j])
        if notes:
            ax.text(x_out + RADIUS + 0.25, y, "\n".join(notes), fontsize=NAME_FONT, va="center")
    ax.text(
        x_out + LOSS_BOX_OFFSET,
        0,
        "\n".join(_loss_lines(state, classes)),
        fontsize=LOSS_FONT,
        ha="left",
        va="center",
        bbox={"boxstyle": "round,pad=0.4", "fc": "#fff6d5", "ec": "0.4"},
        zorder=5,
    )

    caption_y = -top - RADIUS - 1.15
    for layer in range(num_layers):
        caption = (
            "inputs" if layer == 0 else f"layers.{layer - 1}\n{state.activation_names[layer - 1]}"
        )
        ax.text(xs[layer], caption_y, caption, fontsize=NAME_FONT, ha="center", va="top",
                color="0.35", style="italic")  # fmt: skip
    notes = [state.note] if state.note else []
    if state.edge_labels != "none" and shown < len(labels):
        notes.append(
            f"numbers on {shown} of {len(labels)} edges: the largest of those with room for "
            "them; every number is in the trace"
        )
    if notes:
        ax.text(xs[-1] / 2, y_range[0] + 0.15, "\n".join(notes), fontsize=NAME_FONT,
                ha="center", va="bottom", color="0.35")  # fmt: skip
    ax.legend(
        handles=_legend(state, marks),
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
    ax.set_title(state.title + PHASE_TITLES.get(state.phase, ""), fontsize=11)
    return figure


def _labels(state: NetworkState, layer: int, num_layers: int) -> list[str]:
    width = len(state.inputs) if layer == 0 else state.weights[layer - 1].shape[0]
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
