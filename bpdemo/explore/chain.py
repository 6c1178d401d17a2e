"""What the page shows of one step of a worked example: every number, how it was made, autograd's.

For each phase (forward, loss, backward, update) the view has one item per element of the drawn
network: neurons `n{L}_{j}` (L = 0 the inputs, L = l + 1 the outputs of layers.l), weights
`w{l}_{j}_{i}` (layers.l.weight[j, i]), biases `b{l}_{j}` and the loss `loss`. An item holds the short
texts drawn on the element, its numbers, the equations that make it (`bpdemo.equations`, the very
lines of the printed walk-through; for a gradient also the chain rule path by path, each factor
with its number), and one row per number: the hand-written value, autograd's from the same
parameters, and their difference. A weight's item says how its edge is marked (`edge_mark`). The
numbers are the run's own; the page computes nothing.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

from torch import Tensor

from bpdemo.equations import a_name, edge_mark, factor, fmt, parameter_symbol
from bpdemo.plots.network import short
from bpdemo.worked import StepValues, WorkedRun
from bpdemo.worked.walkthrough import step_equations

SHOWN_PATHS = 4  # chain-rule paths written out for one gradient; the others are counted
Factor = tuple[str, float]


def row(quantity: str, hand: float, autograd: float | None) -> dict[str, Any]:
    """One number, hand-written and autograd, and their difference."""
    difference = None if autograd is None else abs(hand - autograd)
    return {
        "quantity": quantity,
        "hand_written": hand,
        "autograd": autograd,
        "difference": difference,
        "text": [
            fmt(hand),
            "–" if autograd is None else fmt(autograd),
            "–" if difference is None or math.isnan(difference) else f"{difference:.1e}",
        ],
    }


class StepView:
    """The items of one step for one sample; autograd's numbers are `values.autograd`, its step
    from the same parameters (`bpdemo.worked.trace`)."""

    def __init__(self, run: WorkedRun, values: StepValues, sample: int):
        self.run, self.values, self.s = run, values, sample
        self.twin = values.autograd
        self.example = run.example
        self.spec = run.example.spec
        self.layers = self.spec.num_layers
        self.equations = step_equations(run, values)
        self.written: dict[tuple[int, int], tuple[str, str]] = {}
        self.lists: dict[int, tuple[Tensor, list]] = {}  # tensors as lists, made once: `number`

    # -- helpers -----------------------------------------------------------------------------------
    def number(self, tensor: Tensor, index: tuple[int, ...]) -> float:
        """tensor[index] as a float, read from the tensor's Python list, made at its first read:
        a view reads hundreds of numbers, and indexing a tensor costs microseconds each time."""
        entry = self.lists.get(id(tensor))
        if entry is None:  # the tensor is kept with its list, so that its id is never reused
            entry = self.lists[id(tensor)] = (tensor, tensor.tolist())
        values = entry[1]
        for k in index:
            values = values[k]
        return float(values)

    def twin_value(self, kind: str, layer: int | str, index: tuple) -> float | None:
        if self.twin is None:
            return None
        return self.number(getattr(self.twin, kind)[layer], index)

    def neuron_name(self, depth: int, unit: int) -> str:
        """Input neurons at depth 0, layers.l's neurons at depth l + 1; with its [labels] name."""
        layer = depth - 1
        label = self.equations.label(layer, unit)  # " (y3)", or nothing
        if depth == 0:
            return f"input x[{unit}]{label}"
        if layer == self.layers - 1:
            return f"output neuron {unit}{label}"
        return f"hidden layer {layer}, neuron {unit}{label}"

    def a_prev(self, layer: int) -> Tensor:
        return self.example.inputs if layer == 0 else self.values.activations[layer - 1]

    # -- forward -----------------------------------------------------------------------------------
    def input_item(self, unit: int) -> dict[str, Any]:
        x = float(self.example.inputs[self.s, unit])
        name = self.equations.neuron_name(-1, unit) or f"x[{unit}]"  # "x 1" would read as an index
        return {
            "title": self.neuron_name(0, unit),
            "show": [f"{name} = {short(x)}"],
            "values": {"x": x},
            "lines": [f"x[{unit}] = {fmt(x)} (sample {self.s}), an input: nothing to compute"],
            "compare": [],
            "edit": {"what": "input", "row": self.s, "column": unit, "value": x},
        }

    def forward_item(self, layer: int, unit: int) -> dict[str, Any]:
        s = self.s
        equation = self.equations.forward(layer, unit, s)
        z, a = equation.values["z"], equation.values["a"]
        return {
            "title": self.neuron_name(layer + 1, unit) + f", {self.spec.activations[layer]}",
            "show": [f"z {short(z)}", f"a {short(a)}"],  # short, to fit the circle
            "values": {"z": z, "a": a},
            "lines": [equation.text],
            "compare": [
                row("z", z, self.twin_value("pre_activations", layer, (s, unit))),
                row("a", a, self.twin_value("activations", layer, (s, unit))),
            ],
        }

    def parameter_item(self, name: str, index: tuple[int, ...], phase: str) -> dict[str, Any]:
        """A weight or bias: its value (forward, loss), its gradient (backward), its update."""
        v = self.values
        layer = int(name.split(".")[1])
        kind = name.split(".")[2]
        where = f"{name}[{','.join(map(str, index))}]"
        before, grad = self.number(v.params_before[name], index), self.number(v.grads[name], index)
        after = self.number(v.params_after[name], index)
        symbol = parameter_symbol(name, index)
        label = self.equations.parameter_name(name, index) or ""
        item: dict[str, Any] = {"title": where + (f" ({label})" if label else "")}
        if phase in ("forward", "loss"):
            item["show"] = [f"{label} = {fmt(before)}" if label else fmt(before)]
            item["values"] = {"value": before}
            # autograd's step starts from this very value: there is nothing to compare
            item["lines"] = [
                f"{symbol} = {fmt(before)}, before the update of step {v.step} "
                "(autograd's step starts from it too)"
            ]
            item["compare"] = []
            if v.step == 1:
                item["edit"] = {
                    "what": kind,
                    "layer": layer,
                    "row": index[0],
                    "column": index[1] if len(index) > 1 else 0,
                    "value": before,
                }
        elif phase == "backward":
            item["title"] = f"∂L/∂{symbol} ({where}{', ' + label if label else ''})"
            item["show"] = [f"∂L/∂{label} = {fmt(grad)}" if label else fmt(grad)]
            item["values"] = {"grad": grad}
            item["lines"] = self.gradient_lines(layer, kind, index)
            item["paths"] = self.gradient_paths(layer, index)
            item["compare"] = [row(f"∂L/∂{symbol}", grad, self.twin_value("grads", name, index))]
        else:
            item["show"] = [f"{label}: " * bool(label) + f"{fmt(before)} → {fmt(after)}"]
            item["values"] = {"before": before, "after": after}
            item["lines"] = [self.equations.update(name, index).text]
            item["compare"] = [
                row(f"{symbol} after", after, self.twin_value("params_after", name, index))
            ]
        if kind == "weight":
            item["mark"] = edge_mark(phase, before, grad, after - before)
        return item

    # -- loss --------------------------------------------------------------------------------------
    def loss_item(self) -> dict[str, Any]:
        loss = self.values.loss
        return {
            "title": f"loss {self.spec.loss}",
            "show": [f"L = {fmt(loss)}"],
            "values": {"loss": loss},
            "lines": [equation.text for equation in self.equations.loss()],
            "compare": [row("L", loss, None if self.twin is None else self.twin.loss)],
        }

    def output_loss_item(self, unit: int) -> dict[str, Any]:
        """An output neuron in the loss phase: its output beside its target."""
        item = self.forward_item(self.layers - 1, unit)
        v, s, targets = self.values, self.s, self.example.targets
        output = float(v.outputs[s, unit])
        if v.probabilities is not None:
            p = float(v.probabilities[s, unit])
            hit = int(targets[s]) == unit
            item["show"] = [f"z {short(output)}", f"p {short(p)}" + (" ← class" if hit else "")]
            item["values"] = {**item["values"], "p": p}
            item["edit"] = {"what": "target", "row": s, "column": 0, "value": int(targets[s])}
        else:
            y = float(targets[s, unit])
            item["show"] = [f"ŷ {short(output)}", f"y {short(y)}"]
            item["values"] = {**item["values"], "y": y}
            item["lines"].append(f"target y[{unit}] = {fmt(y)} (sample {s})")
            item["edit"] = {"what": "target", "row": s, "column": unit, "value": y}
        return item

    # -- backward ----------------------------------------------------------------------------------
    def backward_item(self, layer: int, unit: int) -> dict[str, Any]:
        s = self.s
        grad_a = self.equations.grad_activation(layer, unit, s)
        delta = self.equations.delta(layer, unit, s)
        return {
            "title": self.neuron_name(layer + 1, unit) + " — backward",
            "show": [
                f"∂L/∂a {short(grad_a.values['grad_a'])}",
                f"δ {short(delta.values['delta'])}",
            ],
            "values": {"grad_a": grad_a.values["grad_a"], "delta": delta.values["delta"]},
            "lines": [grad_a.text, delta.text],
            "compare": [
                row(
                    "∂L/∂a",
                    grad_a.values["grad_a"],
                    self.twin_value("grad_activations", layer, (s, unit)),
                ),
                row(
                    "δ = ∂L/∂z",
                    delta.values["delta"],
                    self.twin_value("deltas", layer, (s, unit)),
                ),
            ],
        }

    def gradient_lines(self, layer: int, kind: str, index: tuple[int, ...]) -> list[str]:
        """∂L/∂W (BP4) or ∂L/∂b (BP3) summed over the samples, then the δ it is made of."""
        unit = index[0]
        if kind == "weight":
            lines = [self.equations.grad_weight(layer, unit, index[1]).text]
        else:
            lines = [self.equations.grad_bias(layer, unit).text]
        if len(self.example.inputs) > 1:
            lines.append(f"for sample {self.s}:")
        for depth in range(layer, self.layers):  # the δ it needs, then the δ those need, ...
            units = [unit] if depth == layer else range(self.spec.sizes[depth + 1])
            for j in units:
                lines.extend(self.delta_lines(depth, j))
        return lines

    def delta_lines(self, layer: int, unit: int) -> tuple[str, str]:
        """∂L/∂a and δ of one neuron for the shown sample, written once: every gradient below it
        repeats them."""
        key = (layer, unit)
        if key not in self.written:
            self.written[key] = (
                self.equations.grad_activation(layer, unit, self.s).text,
                self.equations.delta(layer, unit, self.s).text,
            )
        return self.written[key]

    def paths(self, layer: int, unit: int) -> Iterator[list[Factor]]:
        """The chain-rule paths from the loss down to δ of one neuron: their products add up to δ."""
        v, s = self.values, self.s
        f_prime = self.number(self.equations.derivatives[layer], (s, unit))
        derivative = (f"f'(z{layer}[{unit}])", f_prime)
        if layer == self.layers - 1:
            grad_a = self.number(v.grad_activations[layer], (s, unit))
            yield [(f"∂L/∂a{layer}[{unit}]", grad_a), derivative]
            return
        w_next = v.params_before[f"layers.{layer + 1}.weight"]
        for k in range(w_next.shape[0]):
            for path in self.paths(layer + 1, k):
                w = self.number(w_next, (k, unit))
                yield [*path, (f"W{layer + 1}[{k},{unit}]", w), derivative]

    def gradient_paths(self, layer: int, index: tuple[int, ...]) -> dict[str, Any]:
        """dL/dp for the shown sample as a sum of products along paths, each factor with its number."""
        unit = index[0]
        last: list[Factor] = []
        if len(index) > 1:
            last = [(a_name(layer - 1, index[1]), float(self.a_prev(layer)[self.s, index[1]]))]
        count = math.prod(self.spec.sizes[layer + 2 :])
        shown = []
        for path in itertools.islice(self.paths(layer, unit), SHOWN_PATHS):
            factors = [*path, *last]
            product = math.prod(value for _, value in factors)
            shown.append(
                {
                    "factors": [{"name": n, "value": x, "text": fmt(x)} for n, x in factors],
                    "product": product,
                    "text": "·".join(factor(x) for _, x in factors) + f" = {fmt(product)}",
                    "names": "·".join(n for n, _ in factors),
                }
            )
        return {"sample": self.s, "count": count, "shown": shown}

    # -- the phases --------------------------------------------------------------------------------
    def parameters(self) -> Iterator[tuple[str, str, tuple[int, ...]]]:
        for layer in range(self.layers):
            out, into = self.spec.sizes[layer + 1], self.spec.sizes[layer]
            for j in range(out):
                for i in range(into):
                    yield f"w{layer}_{j}_{i}", f"layers.{layer}.weight", (j, i)
                if self.spec.bias:
                    yield f"b{layer}_{j}", f"layers.{layer}.bias", (j,)

    def phases(self) -> dict[str, dict[str, Any]]:
        sizes = self.spec.sizes
        inputs = {f"n0_{i}": self.input_item(i) for i in range(sizes[0])}
        forward = dict(inputs)
        backward = dict(inputs)
        for layer in range(self.layers):
            for j in range(sizes[layer + 1]):
                forward[f"n{layer + 1}_{j}"] = self.forward_item(layer, j)
                backward[f"n{layer + 1}_{j}"] = self.backward_item(layer, j)
        loss_phase, update = dict(forward), dict(forward)
        for j in range(sizes[-1]):
            loss_phase[f"n{self.layers}_{j}"] = self.output_loss_item(j)
        for element, name, index in self.parameters():
            forward[element] = self.parameter_item(name, index, "forward")
            loss_phase[element] = self.parameter_item(name, index, "loss")
            backward[element] = self.parameter_item(name, index, "backward")
            update[element] = self.parameter_item(name, index, "update")
        loss = self.loss_item()
        forward["loss"] = {
            "title": loss["title"],
            "show": ["L = ?"],
            "values": {},
            "lines": ["the loss is computed in the next phase, from the outputs"],
            "compare": [],
        }
        for phase in (loss_phase, backward, update):
            phase["loss"] = loss
        return {"forward": forward, "loss": loss_phase, "backward": backward, "update": update}
