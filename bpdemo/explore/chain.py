"""What the page shows of one step of a worked example: every number, how it was made, autograd's.

For each phase (forward, loss, backward, update) the view has one item per element of the drawn
network: neurons `n{L}_{j}` (L = 0 the inputs, L = l + 1 the outputs of layers.l), weights
`w{l}_{j}_{i}` (layers.l.weight[j, i]), biases `b{l}_{j}` and the loss `loss`. An item holds the short
texts drawn on the element, its numbers, the lines that make it (z = W·a_prev + b; for a gradient the
chain rule, each factor with its number, as the printed walk-through writes it) and one row per
number: the hand-written value, autograd's, and their difference. The hand-written numbers are the
run's own; the page computes nothing.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

from torch import Tensor

from bpdemo.functional import ACTIVATIONS, LOSSES
from bpdemo.worked import StepValues, Walkthrough, WorkedRun, factor, fmt
from bpdemo.worked.walkthrough import neuron_fields

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
    """The items of one step for one sample; `twin` is autograd's own run of the same step."""

    def __init__(self, run: WorkedRun, values: StepValues, twin: Any, sample: int):
        self.run, self.values, self.twin, self.s = run, values, twin, sample
        self.example = run.example
        self.spec = run.example.spec
        self.labels = run.example.config.labels
        self.layers = self.spec.num_layers
        self.derivatives = [
            ACTIVATIONS[name].derivative(z, a)
            for name, z, a in zip(
                self.spec.activations, values.pre_activations, values.activations, strict=True
            )
        ]

    # -- helpers -----------------------------------------------------------------------------------
    def twin_value(self, kind: str, layer: int | str, index: tuple) -> float | None:
        if self.twin is None:
            return None
        return float(getattr(self.twin, kind)[layer][index])

    def neuron_name(self, depth: int, unit: int) -> str:
        """Input neurons at depth 0, layers.l's neurons at depth l + 1."""
        if depth == 0:
            names = self.labels.inputs
            return f"input x[{unit}]" + (f" ({names[unit]})" if names else "")
        layer = depth - 1
        if layer == self.layers - 1:
            names = self.labels.outputs
            return f"output neuron {unit}" + (f" ({names[unit]})" if names else "")
        names = self.labels.hidden[layer] if self.labels.hidden else None
        return f"hidden layer {layer}, neuron {unit}" + (f" ({names[unit]})" if names else "")

    def a_prev(self, layer: int) -> Tensor:
        return self.example.inputs if layer == 0 else self.values.activations[layer - 1]

    def a_prev_name(self, layer: int, unit: int | str) -> str:
        return f"x[{unit}]" if layer == 0 else f"a{layer - 1}[{unit}]"

    # -- forward -----------------------------------------------------------------------------------
    def input_item(self, unit: int) -> dict[str, Any]:
        x = float(self.example.inputs[self.s, unit])
        return {
            "title": self.neuron_name(0, unit),
            "show": [f"x {fmt(x)}"],
            "values": {"x": x},
            "lines": [f"x[{unit}] = {fmt(x)} (sample {self.s}), an input: nothing to compute"],
            "compare": [],
            "edit": {"what": "input", "row": self.s, "column": unit, "value": x},
        }

    def forward_item(self, layer: int, unit: int) -> dict[str, Any]:
        v, s = self.values, self.s
        weight = v.params_before[f"layers.{layer}.weight"]
        bias = float(v.params_before[f"layers.{layer}.bias"][unit])
        a_prev = self.a_prev(layer)
        terms = [
            f"{factor(float(weight[unit, i]))}·{factor(float(a_prev[s, i]))}"
            for i in range(weight.shape[1])
        ]
        z, a = float(v.pre_activations[layer][s, unit]), float(v.activations[layer][s, unit])
        activation = ACTIVATIONS[self.spec.activations[layer]]
        value = activation.value_text.format(**neuron_fields(z, a))
        previous = self.a_prev_name(layer, "i")
        return {
            "title": self.neuron_name(layer + 1, unit) + f", {activation.name}",
            "show": [f"z {fmt(z)}", f"a {fmt(a)}"],
            "values": {"z": z, "a": a},
            "lines": [
                f"z{layer}[{unit}] = Σ_i W{layer}[{unit},i]·{previous} + b{layer}[{unit}] = "
                f"{' + '.join(terms)} + {factor(bias)} = {fmt(z)}",
                f"a{layer}[{unit}] = f(z) = {activation.formula} = "
                + (f"{value} = " if value != activation.formula else "")
                + fmt(a),
            ],
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
        before, grad = float(v.params_before[name][index]), float(v.grads[name][index])
        after = float(v.params_after[name][index])
        symbol = ("W" if kind == "weight" else "b") + f"{layer}[{','.join(map(str, index))}]"
        item: dict[str, Any] = {"title": where}
        if phase in ("forward", "loss"):
            item["show"] = [fmt(before)]
            item["values"] = {"value": before}
            item["lines"] = [f"{symbol} = {fmt(before)}, before the update of step {v.step}"]
            item["compare"] = [row(symbol, before, self.twin_value("params_before", name, index))]
            if v.step == 1:
                item["edit"] = {
                    "what": kind,
                    "layer": layer,
                    "row": index[0],
                    "column": index[1] if len(index) > 1 else 0,
                    "value": before,
                }
        elif phase == "backward":
            item["title"] = f"∂L/∂{symbol} ({where})"
            item["show"] = [fmt(grad)]
            item["values"] = {"grad": grad}
            item["lines"] = self.gradient_lines(layer, kind, index, grad)
            item["paths"] = self.gradient_paths(layer, index)
            item["compare"] = [row(f"∂L/∂{symbol}", grad, self.twin_value("grads", name, index))]
        else:
            item["show"] = [f"{fmt(before)} → {fmt(after)}"]
            item["values"] = {"before": before, "after": after}
            item["lines"] = [self.update_line(symbol, name, before, grad, after)]
            item["compare"] = [
                row(f"{symbol} after", after, self.twin_value("params_after", name, index))
            ]
        return item

    # -- loss --------------------------------------------------------------------------------------
    def loss_item(self) -> dict[str, Any]:
        loss = self.values.loss
        lines = [line.strip() for line in Walkthrough(self.run).loss(self.values)]
        autograd = None if self.twin is None else self.twin.loss
        return {
            "title": f"loss {self.spec.loss}",
            "show": [f"L = {fmt(loss)}"],
            "values": {"loss": loss},
            "lines": lines,
            "compare": [row("L", loss, autograd)],
        }

    def output_loss_item(self, unit: int) -> dict[str, Any]:
        """An output neuron in the loss phase: its output beside its target."""
        item = self.forward_item(self.layers - 1, unit)
        v, s, targets = self.values, self.s, self.example.targets
        output = float(v.outputs[s, unit])
        if v.probabilities is not None:
            p = float(v.probabilities[s, unit])
            hit = int(targets[s]) == unit
            item["show"] = [f"z {fmt(output)}", f"p {fmt(p)}" + (" ← class" if hit else "")]
            item["values"] = {**item["values"], "p": p}
            item["edit"] = {"what": "target", "row": s, "column": 0, "value": int(targets[s])}
        else:
            y = float(targets[s, unit])
            item["show"] = [f"ŷ {fmt(output)}", f"y {fmt(y)}"]
            item["values"] = {**item["values"], "y": y}
            item["lines"].append(f"target y[{unit}] = {fmt(y)} (sample {s})")
            item["edit"] = {"what": "target", "row": s, "column": unit, "value": y}
        return item

    # -- backward ----------------------------------------------------------------------------------
    def backward_item(self, layer: int, unit: int) -> dict[str, Any]:
        v, s = self.values, self.s
        grad_a, delta = float(v.grad_activations[layer][s, unit]), float(v.deltas[layer][s, unit])
        return {
            "title": self.neuron_name(layer + 1, unit) + " — backward",
            "show": [f"∂L/∂a {fmt(grad_a)}", f"δ {fmt(delta)}"],
            "values": {"grad_a": grad_a, "delta": delta},
            "lines": self.delta_lines(layer, unit),
            "compare": [
                row("∂L/∂a", grad_a, self.twin_value("grad_activations", layer, (s, unit))),
                row("δ = ∂L/∂z", delta, self.twin_value("deltas", layer, (s, unit))),
            ],
        }

    def delta_lines(self, layer: int, unit: int) -> list[str]:
        """dL/da and delta of one neuron for the shown sample (BP1 at the output, BP2 below)."""
        v, s = self.values, self.s
        grad_a = float(v.grad_activations[layer][s, unit])
        if layer == self.layers - 1:
            loss = LOSSES[self.spec.loss]
            fields = Walkthrough(self.run).output_fields(v, s, unit)
            written = (
                "" if loss.gradient_text is None else loss.gradient_text.format(**fields) + " = "
            )
            first = f"∂L/∂a{layer}[{unit}] = {written}{fmt(grad_a)}   (the loss's derivative)"
        else:
            w_next = v.params_before[f"layers.{layer + 1}.weight"]
            terms = [
                f"{factor(float(v.deltas[layer + 1][s, k]))}·{factor(float(w_next[k, unit]))}"
                for k in range(w_next.shape[0])
            ]
            first = (
                f"∂L/∂a{layer}[{unit}] = Σ_k δ{layer + 1}[k]·W{layer + 1}[k,{unit}] = "
                f"{' + '.join(terms)} = {fmt(grad_a)}   (BP2)"
            )
        z, a = float(v.pre_activations[layer][s, unit]), float(v.activations[layer][s, unit])
        d = float(self.derivatives[layer][s, unit])
        text = ACTIVATIONS[self.spec.activations[layer]].derivative_text.format(
            **neuron_fields(z, a)
        )
        why = "" if text == fmt(d) else f"   [f'(z) = {text} = {fmt(d)}]"
        delta = float(v.deltas[layer][s, unit])
        rule = "   (BP1)" if layer == self.layers - 1 else ""
        return [
            first,
            f"δ{layer}[{unit}] = ∂L/∂a{layer}[{unit}] · f'(z{layer}[{unit}]) = {factor(grad_a)} · "
            f"{fmt(d)} = {fmt(delta)}{why}{rule}",
        ]

    def gradient_lines(
        self, layer: int, kind: str, index: tuple[int, ...], grad: float
    ) -> list[str]:
        """dL/dW (BP4) or dL/db (BP3) summed over the samples, then the δ it is made of."""
        delta, a_prev = self.values.deltas[layer], self.a_prev(layer)
        unit, samples = index[0], range(len(self.example.inputs))
        many = len(samples) > 1
        over = "Σ_samples " if many else ""
        if kind == "weight":
            i = index[1]
            terms = [
                f"{factor(float(delta[n, unit]))}·{factor(float(a_prev[n, i]))}" for n in samples
            ]
            first = (
                f"∂L/∂W{layer}[{unit},{i}] = {over}δ{layer}[{unit}]·{self.a_prev_name(layer, i)} = "
                f"{' + '.join(terms)} = {fmt(grad)}   (BP4)"
            )
        else:
            terms = [factor(float(delta[n, unit])) for n in samples]
            first = (
                f"∂L/∂b{layer}[{unit}] = {over}δ{layer}[{unit}] = {' + '.join(terms)} = "
                f"{fmt(grad)}   (BP3)"
            )
        lines = [first]
        if many:
            lines.append(f"for sample {self.s}:")
        for depth in range(layer, self.layers):  # the δ it needs, then the δ those need, ...
            units = [unit] if depth == layer else range(self.spec.sizes[depth + 1])
            for j in units:
                lines += self.delta_lines(depth, j)
        return lines

    def paths(self, layer: int, unit: int) -> Iterator[list[Factor]]:
        """The chain-rule paths from the loss down to δ of one neuron: their products add up to δ."""
        v, s = self.values, self.s
        derivative = (f"f'(z{layer}[{unit}])", float(self.derivatives[layer][s, unit]))
        if layer == self.layers - 1:
            yield [(f"∂L/∂ŷ[{unit}]", float(v.grad_activations[layer][s, unit])), derivative]
            return
        w_next = v.params_before[f"layers.{layer + 1}.weight"]
        for k in range(w_next.shape[0]):
            for path in self.paths(layer + 1, k):
                yield [*path, (f"W{layer + 1}[{k},{unit}]", float(w_next[k, unit])), derivative]

    def gradient_paths(self, layer: int, index: tuple[int, ...]) -> dict[str, Any]:
        """dL/dp for the shown sample as a sum of products along paths, each factor with its number."""
        unit = index[0]
        last: list[Factor] = []
        if len(index) > 1:
            last = [
                (self.a_prev_name(layer, index[1]), float(self.a_prev(layer)[self.s, index[1]]))
            ]
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

    def update_line(self, symbol: str, name: str, before: float, grad: float, after: float) -> str:
        optimizer = self.example.optimizer
        if name.endswith(".bias") and not optimizer.train_biases:
            return f"{symbol} = {fmt(before)}: held fixed (train.train_biases = false)"
        if optimizer.name == "sgd" and not optimizer.momentum:
            return f"{symbol} ← {symbol} − lr·∂L/∂{symbol} = {fmt(before)} − {fmt(optimizer.lr)}·{factor(grad)} = {fmt(after)}"
        return f"{symbol}: {fmt(before)} → {fmt(after)} ({optimizer.name} step, ∂L/∂{symbol} = {fmt(grad)})"

    # -- the phases --------------------------------------------------------------------------------
    def parameters(self) -> Iterator[tuple[str, str, tuple[int, ...]]]:
        for layer in range(self.layers):
            out, into = self.spec.sizes[layer + 1], self.spec.sizes[layer]
            for j in range(out):
                for i in range(into):
                    yield f"w{layer}_{j}_{i}", f"layers.{layer}.weight", (j, i)
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
            loss_phase[element] = forward[element]
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
