"""The equations of one step of a worked example, as text and values, in one notation.

The printed walk-through (`bpdemo.worked.walkthrough`) and the explorer's step view
(`bpdemo.explore.chain`) both write each number of a step as the equation that makes it, here and
nowhere else. The notation: layers.l's weight W{l}[j,i] and bias b{l}[j], its neurons' z{l}[j],
a{l}[j], ∂L/∂a{l}[j] and δ{l}[j] = ∂L/∂z{l}[j]; the network's input is x[i]; indices count from 0.

    forward     z0[j] = Σ_i W0[j,i]·x[i] + b0[j] = ... = z;  a = f(z) written out = a
    loss        L = the loss's terms = L
    ∂L/∂a       at the output the loss's derivative; below, Σ_k δ{l+1}[k]·W{l+1}[k,j]
    δ           δ{l}[j] = ∂L/∂a{l}[j]·f'(z{l}[j])                     (BP1 at the output, BP2 below)
    ∂L/∂W       Σ_samples δ{l}[j]·a{l-1}[i]                           (BP4)
    ∂L/∂b       Σ_samples δ{l}[j]                                     (BP3)
    update      p ← p − lr·∂L/∂p (plain gradient descent), or the optimizer's step

The formulas of activations and losses come from their registry entries (`bpdemo.functional`); a
rule without a text is named, never given a formula its numbers might not satisfy.

The colour rule of the network's edges, shared by the pictures and the explorer, is here too
(`edge_mark`): in the backward phase and the update, blue where the weight rises, red where it falls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from bpdemo.functional import ACTIVATIONS, LOSSES, loss_total, written_sum


@dataclass(frozen=True)
class Equation:
    """One equation of a step: its text, with every number in it, and the values it makes."""

    text: str
    values: dict[str, float] = field(default_factory=dict)


# -- numbers as text -----------------------------------------------------------------------------
def fmt(value: float, digits: int = 6) -> str:
    """A number for reading: 6 significant digits, no trailing zeros, -0 shown as 0."""
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def factor(value: float) -> str:
    """A number as a factor of a product: negative numbers in parentheses."""
    return f"({fmt(value)})" if value < 0 else fmt(value)


def neuron_fields(z: float, a: float) -> dict[str, str]:
    """The fields of an activation's `value_text` and `derivative_text`, for one neuron."""
    return {
        "z": fmt(z),
        "a": fmt(a),
        "z_factor": factor(z),
        "minus_z": factor(-z),
        "a_factor": factor(a),
    }


def a_name(layer: int, unit: int | str) -> str:
    """The activation a{layer}[unit]; layer -1 is the input x."""
    return f"x[{unit}]" if layer < 0 else f"a{layer}[{unit}]"


def parameter_symbol(name: str, index: tuple[int, ...]) -> str:
    """W{l}[j,i] for layers.l.weight[j, i], b{l}[j] for layers.l.bias[j]."""
    _, layer, kind = name.split(".")
    return ("W" if kind == "weight" else "b") + f"{layer}[{','.join(map(str, index))}]"


# -- the update rule ------------------------------------------------------------------------------
def is_plain_descent(optimizer: Any) -> bool:
    """Whether an `OptimizerSpec` is plain gradient descent: p ← p − lr·∂L/∂p and nothing more."""
    return (
        optimizer.name == "sgd"
        and not optimizer.momentum
        and not optimizer.weight_decay
        and optimizer.max_grad_norm is None
    )


def update_rule_name(optimizer: Any) -> str:
    """The name of an `OptimizerSpec`'s rule: "plain gradient descent", "sgd with momentum 0.9", ..."""
    if is_plain_descent(optimizer):
        return "plain gradient descent"
    name = optimizer.name
    if optimizer.name == "sgd" and optimizer.momentum:
        kind = "Nesterov momentum" if optimizer.nesterov else "momentum"
        name = f"sgd with {kind} {optimizer.momentum:g}"
    if optimizer.weight_decay:
        name += f", weight decay {optimizer.weight_decay:g}"
    if optimizer.max_grad_norm is not None:
        name += f", gradients clipped to norm {optimizer.max_grad_norm:g}"
    return name


def update_rule(optimizer: Any) -> str:
    """The rule with its learning rate, as the walk-through and the explorer head the update."""
    if is_plain_descent(optimizer):
        return f"plain gradient descent, p ← p − lr·∂L/∂p, lr {optimizer.lr:g}"
    return f"{update_rule_name(optimizer)}, lr {optimizer.lr:g}"


# -- the equations of one step ----------------------------------------------------------------------
class StepEquations:
    """Every equation of one step of a worked example, for one sample where it is per sample.

    values: the step (`bpdemo.worked.StepValues`: z, a, ∂L/∂a, δ per layer, (N, out) each; the
    gradients and the parameters before and after, by name). inputs (N, in) and targets: the
    example's data; spec its `MLPSpec`; optimizer its `OptimizerSpec`; labels its `[labels]`;
    shown: the samples written out in a sum over samples (the others are counted).
    """

    def __init__(self, values, inputs: Tensor, targets: Tensor, spec, optimizer, labels, shown):
        self.v, self.x, self.y = values, inputs, targets
        self.spec, self.optimizer, self.labels = spec, optimizer, labels
        self.shown = shown
        self.last = spec.num_layers - 1
        self.derivatives = [
            ACTIVATIONS[name].derivative(z, a)
            for name, z, a in zip(
                spec.activations, values.pre_activations, values.activations, strict=True
            )
        ]

    def a_prev(self, layer: int) -> Tensor:
        """The input of `layer`, (N, in): x for the first layer."""
        return self.x if layer == 0 else self.v.activations[layer - 1]

    def label(self, layer: int, unit: int) -> str:
        """(its name) of a neuron of `layer` that [labels] names, else nothing."""
        name = self.neuron_name(layer, unit)
        return f" ({name})" if name else ""

    def neuron_name(self, layer: int, unit: int) -> str | None:
        """[labels]' name of neuron `unit` of `layer` (-1: the inputs), or None."""
        if layer < 0:
            names = self.labels.inputs
        elif layer == self.last:
            names = self.labels.outputs
        else:
            names = self.labels.hidden[layer] if self.labels.hidden else None
        return names[unit] if names else None

    def parameter_label(self, name: str, index: tuple[int, ...]) -> str:
        """(its name) of a weight or bias that [labels] names, else nothing."""
        label = self.parameter_name(name, index)
        return "" if label is None else f" ({label})"

    def parameter_name(self, name: str, index: tuple[int, ...]) -> str | None:
        """[labels]' name of the weight or bias `name`[`index`], or None."""
        _, layer, kind = name.split(".")
        given = getattr(self.labels, "weights" if kind == "weight" else "biases", None)
        if not given:
            return None
        return (
            given[int(layer)][index[0]][index[1]]
            if kind == "weight"
            else given[int(layer)][index[0]]
        )

    # -- forward and loss -------------------------------------------------------------------------
    def forward(self, layer: int, unit: int, n: int) -> Equation:
        """z and a of one neuron for sample n: z{l}[j] = Σ_i W{l}[j,i]·a{l-1}[i] + b{l}[j]."""
        weight = self.v.params_before[f"layers.{layer}.weight"]
        a_prev = self.a_prev(layer)
        terms = [
            f"{factor(float(weight[unit, i]))}·{factor(float(a_prev[n, i]))}"
            for i in range(weight.shape[1])
        ]
        if self.spec.bias:
            terms.append(factor(float(self.v.params_before[f"layers.{layer}.bias"][unit])))
        z = float(self.v.pre_activations[layer][n, unit])
        a = float(self.v.activations[layer][n, unit])
        activation = ACTIVATIONS[self.spec.activations[layer]]
        written = _filled(activation.value_text, neuron_fields(z, a))
        f_of_z = written if written is not None else f"{activation.name}({fmt(z)})"
        rule = f"Σ_i W{layer}[{unit},i]·{a_name(layer - 1, 'i')}"
        names = [
            (
                self.parameter_name(f"layers.{layer}.weight", (unit, i)),
                self.neuron_name(layer - 1, i),
            )
            for i in range(weight.shape[1])
        ]
        if all(w and a for w, a in names):  # as the source writes it: w13·x1 + w23·x2
            rule = " + ".join(f"{w}·{a}" for w, a in names)
        if self.spec.bias:
            bias_name = self.parameter_name(f"layers.{layer}.bias", (unit,))
            rule += f" + {bias_name or f'b{layer}[{unit}]'}"
        return Equation(
            f"z{layer}[{unit}]{self.label(layer, unit)} = {rule} = "
            f"{written_sum(terms)} = {fmt(z)};  a = {f_of_z} = {fmt(a)}",
            {"z": z, "a": a},
        )

    def output_fields(self, n: int, k: int) -> dict[str, str | int]:
        """The fields of the loss's texts at output k of sample n (see `bpdemo.functional.Loss`)."""
        out = self.v.outputs
        fields: dict[str, str | int] = {"a": fmt(float(out[n, k])), "k": k}
        fields.update(rows=len(self.x), numel=out.numel())
        if self.v.probabilities is not None:  # class labels
            label = int(self.y[n])
            fields.update(y=label, hit=int(label == k), p=fmt(float(self.v.probabilities[n, k])))
        else:
            y = float(self.y[n, k])
            fields.update(y=fmt(y), one_minus_y=fmt(1 - y))
        return fields

    def loss(self) -> list[Equation]:
        """The loss over all samples: its name and formula, the probabilities, L written out."""
        loss, many = LOSSES[self.spec.loss], len(self.x) > 1
        formula = f": L = {loss.formula}" if loss.formula else ""
        equations = [Equation(f"loss ({loss.name}{formula})")]
        rows = range(self.shown)
        if self.v.probabilities is not None:
            for n in rows:
                p = self.v.probabilities[n]
                written = ", ".join(fmt(v) for v in p.tolist())
                equations.append(
                    Equation(f"p = softmax(z) = [{written}]" + (f" (sample {n})" if many else ""))
                )
        value = self.v.loss
        if loss.term_text is None:
            equations.append(Equation(f"L = {fmt(value)}", {"loss": value}))
            return equations
        if loss.classification:  # one term a sample: the probability of its class
            fields = [self.output_fields(n, int(self.y[n])) for n in rows]
        else:  # one term an output of a sample
            width = self.v.outputs.shape[1]
            fields = [self.output_fields(n, k) for n in rows for k in range(width)]
        terms = [loss.term_text.format(**f) for f in fields]
        terms += ["…"] if len(self.x) > self.shown else []  # samples not written out
        counts = {"rows": len(self.x), "numel": self.v.outputs.numel()}
        text = f"L = {loss_total(loss.total_text, terms, counts)} = {fmt(value)}"
        return [*equations, Equation(text, {"loss": value})]

    # -- backward ---------------------------------------------------------------------------------
    def grad_activation(self, layer: int, unit: int, n: int) -> Equation:
        """∂L/∂a of one neuron for sample n: the loss's derivative at the output, Σ_k δ·W below."""
        grad_a = float(self.v.grad_activations[layer][n, unit])
        name = f"∂L/∂a{layer}[{unit}]{self.label(layer, unit)}"
        if layer == self.last:
            written = _filled(LOSSES[self.spec.loss].gradient_text, self.output_fields(n, unit))
            made = "" if written is None else f"{written} = "
            return Equation(f"{name} = {made}{fmt(grad_a)}", {"grad_a": grad_a})
        w_next, d_next = (
            self.v.params_before[f"layers.{layer + 1}.weight"],
            self.v.deltas[layer + 1],
        )
        terms = [
            f"{factor(float(d_next[n, k]))}·{factor(float(w_next[k, unit]))}"
            for k in range(w_next.shape[0])
        ]
        rule = f"Σ_k δ{layer + 1}[k]·W{layer + 1}[k,{unit}]"
        names = [
            (
                self.neuron_name(layer + 1, k),
                self.parameter_name(f"layers.{layer + 1}.weight", (k, unit)),
            )
            for k in range(w_next.shape[0])
        ]
        if all(d and w for d, w in names):  # as the source writes it: δ(y5)·w35
            rule = " + ".join(f"δ({d})·{w}" for d, w in names)
        return Equation(
            f"{name} = {rule} = {written_sum(terms)} = {fmt(grad_a)}", {"grad_a": grad_a}
        )

    def delta(self, layer: int, unit: int, n: int) -> Equation:
        """δ = ∂L/∂a·f'(z) of one neuron for sample n (BP1 at the output, BP2 below)."""
        grad_a = float(self.v.grad_activations[layer][n, unit])
        delta = float(self.v.deltas[layer][n, unit])
        d = float(self.derivatives[layer][n, unit])
        z, a = (
            float(self.v.pre_activations[layer][n, unit]),
            float(self.v.activations[layer][n, unit]),
        )
        written = _filled(
            ACTIVATIONS[self.spec.activations[layer]].derivative_text, neuron_fields(z, a)
        )
        # A derivative that is a constant (identity's 1) says no more than its number.
        why = "" if written is None or written == fmt(d) else f"   [f'(z) = {written} = {fmt(d)}]"
        law = "BP1" if layer == self.last else "BP2"
        return Equation(
            f"δ{layer}[{unit}]{self.label(layer, unit)} = ∂L/∂a{layer}[{unit}]·f'(z{layer}[{unit}]) = "
            f"{factor(grad_a)}·{factor(d)} = {fmt(delta)}{why}   ({law})",
            {"delta": delta, "derivative": d},
        )

    def grad_weight(self, layer: int, unit: int, i: int) -> Equation:
        """∂L/∂W{l}[j,i] = Σ_samples δ{l}[j]·a{l-1}[i] (BP4)."""
        delta, a_prev = self.v.deltas[layer], self.a_prev(layer)
        grad = float(self.v.grads[f"layers.{layer}.weight"][unit, i])
        terms = [
            f"{factor(float(delta[n, unit]))}·{factor(float(a_prev[n, i]))}"
            for n in range(self.shown)
        ]
        rule = f"δ{layer}[{unit}]·{a_name(layer - 1, i)}"
        label = self.parameter_label(f"layers.{layer}.weight", (unit, i))
        name = f"∂L/∂W{layer}[{unit},{i}]{label}"
        return self._over_samples(name, rule, terms, grad, "BP4", True)

    def grad_bias(self, layer: int, unit: int) -> Equation:
        """∂L/∂b{l}[j] = Σ_samples δ{l}[j] (BP3)."""
        delta = self.v.deltas[layer]
        grad = float(self.v.grads[f"layers.{layer}.bias"][unit])
        terms = [factor(float(delta[n, unit])) for n in range(self.shown)]
        label = self.parameter_label(f"layers.{layer}.bias", (unit,))
        name, rule = f"∂L/∂b{layer}[{unit}]{label}", f"δ{layer}[{unit}]"
        return self._over_samples(name, rule, terms, grad, "BP3", False)

    def _over_samples(
        self, name: str, rule: str, terms: list[str], grad: float, law: str, products: bool
    ) -> Equation:
        """A gradient as a sum over the samples; of one sample, its one term (if a product)."""
        hidden = len(self.x) - self.shown
        if len(self.x) == 1:
            numbers = f" = {terms[0]}" if products else ""
            return Equation(f"{name} = {rule}{numbers} = {fmt(grad)}   ({law})", {"grad": grad})
        more = [f"… ({hidden} more samples)"] if hidden > 0 else []
        text = f"{name} = Σ_samples {rule} = {written_sum(terms + more)} = {fmt(grad)}   ({law})"
        return Equation(text, {"grad": grad})

    # -- update -----------------------------------------------------------------------------------
    def update(self, name: str, index: tuple[int, ...]) -> Equation:
        """One parameter's update: p ← p − lr·∂L/∂p, the optimizer's step, or held fixed."""
        before = float(self.v.params_before[name][index])
        after = float(self.v.params_after[name][index])
        grad = float(self.v.grads[name][index])
        symbol = parameter_symbol(name, index) + self.parameter_label(name, index)
        values = {"before": before, "after": after}
        if name.endswith(".bias") and not self.optimizer.train_biases:
            return Equation(
                f"{symbol} = {fmt(before)}, held fixed (train.train_biases = false)", values
            )
        if is_plain_descent(self.optimizer):
            lr = self.optimizer.lr
            return Equation(
                f"{symbol} ← {fmt(before)} − {fmt(lr)}·{factor(grad)} = {fmt(after)}", values
            )
        rule = update_rule_name(self.optimizer)
        return Equation(
            f"{symbol} ← {fmt(after)} ({rule}, from {fmt(before)} with ∂L/∂{symbol} = {fmt(grad)})",
            values,
        )


def _filled(template: str | None, fields: dict[str, Any]) -> str | None:
    """A registry text filled in with one neuron's numbers; None for a rule without a text."""
    return None if template is None else template.format(**fields)


# -- which way a weight moves: the one colour rule of the pictures and the explorer ---------------
RISES, FALLS, POSITIVE, NEGATIVE, ZERO = "rises", "falls", "positive", "negative", "zero"
EDGE_MARKS: dict[str, list[tuple[str, str]]] = {  # phase: each mark an edge can have, its meaning
    "forward": [(POSITIVE, "w > 0"), (NEGATIVE, "w < 0"), (ZERO, "w = 0")],
    "backward": [
        (RISES, "∂L/∂w < 0: gradient descent raises w"),
        (FALLS, "∂L/∂w > 0: gradient descent lowers w"),
        (ZERO, "∂L/∂w = 0"),
    ],
    "update": [
        (RISES, "the update raised w"),
        (FALLS, "the update lowered w"),
        (ZERO, "unchanged"),
    ],
}
EDGE_MARKS["loss"] = EDGE_MARKS["forward"]  # the explorer's loss phase shows the forward weights
EDGE_MARKS["step"] = EDGE_MARKS["backward"]  # the step picture draws the gradients


def edge_mark(phase: str, weight: float, grad: float, change: float) -> str | None:
    """How the edge of a weight is marked in `phase` (one of `EDGE_MARKS`); None for a number
    that is not finite (a diverged step), which has no sign.

    forward and loss: by the sign of w; backward and step: by the way gradient descent would move w
    (against ∂L/∂w); update: by the way the update moved it (`change` = after − before).
    """
    if phase in ("forward", "loss"):
        value, up, down = weight, POSITIVE, NEGATIVE
    else:
        value, up, down = (-grad if phase in ("backward", "step") else change), RISES, FALLS
    if not math.isfinite(value):
        return None
    return ZERO if value == 0 else up if value > 0 else down
