"""The printed walk-through of a worked example: every number of a step, written out as on paper.

Each line puts the numbers into the formula they come from (z = W·a_prev + b, the loss, the chain
rule, the update), so a reader can check any of them by hand. The formulas of activations and losses
come from their registries (`bpdemo.functional`); a registry entry without a text shows the numbers
alone.
"""

from __future__ import annotations

import itertools
import math

import torch

from bpdemo.functional import ACTIVATIONS, LOSSES, loss_total, written_sum
from bpdemo.worked.trace import StepValues, WorkedRun

DETAILED_STEPS = 5  # a run of up to this many steps is printed in full; longer: first and last
SUMMARY_ROWS = 20  # rows of the per-step loss table of a long run


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


def _neuron(labels: list[str] | None, unit: int) -> str:
    return f" ({labels[unit]})" if labels else ""


def neuron_fields(z: float, a: float) -> dict[str, str]:
    """The fields of an activation's `value_text` and `derivative_text`, for one neuron."""
    return {
        "z": fmt(z),
        "a": fmt(a),
        "z_factor": factor(z),
        "minus_z": factor(-z),
        "a_factor": factor(a),
    }


class Walkthrough:
    """Builds the printed walk-through of a run, step by step."""

    def __init__(self, run: WorkedRun):
        self.run = run
        self.example = run.example
        self.spec = run.example.spec
        self.labels = run.example.config.labels
        self.x = run.example.inputs
        self.y = run.example.targets
        # Samples written out term by term ([report] max_samples); the others enter the sums.
        self.samples = min(len(self.x), run.example.config.report.max_samples)

    def layer_labels(self, layer: int) -> list[str] | None:
        if layer == self.spec.num_layers - 1:
            return self.labels.outputs
        return self.labels.hidden[layer] if self.labels.hidden else None

    def role(self, layer: int) -> str:
        return "output layer" if layer == self.spec.num_layers - 1 else f"hidden layer {layer}"

    def header(self) -> list[str]:
        config, spec, optimizer = self.example.config, self.spec, self.example.optimizer
        sizes = "-".join(map(str, spec.sizes))
        loss = LOSSES[spec.loss]
        rule = (
            "plain gradient descent"
            if optimizer.name == "sgd" and not optimizer.momentum
            else (
                f"{optimizer.name} (momentum {optimizer.momentum})"
                if optimizer.name == "sgd"
                else optimizer.name
            )
        )
        lines = [
            f"{config.title}" + (f" — {self.example.variant}" if config.data.standardise else "")
        ]
        if config.source:
            lines.append(f"source: {config.source}")
        lines += [
            f"network {sizes}, activations {', '.join(spec.activations)}; "
            f"loss {spec.loss}: L = {loss.formula}",
            f"{rule}, lr {optimizer.lr:g}, biases {'trained' if optimizer.train_biases else 'held fixed'}"
            f", {self.run.steps_run} full-batch step(s) on {len(self.x)} sample(s), "
            f"{str(spec.dtype).removeprefix('torch.')}; indices count from 0",
        ]
        if len(self.x) > self.samples:
            lines.append(
                f"samples 0 to {self.samples - 1} of {len(self.x)} are written out "
                f"(report.max_samples = {self.samples}); the others enter every sum and the loss"
            )
        return lines

    # -- one step ---------------------------------------------------------------------------------
    def step(self, values: StepValues) -> list[str]:
        lines = [f"── step {values.step} " + "─" * 60]
        lines += self.forward(values)
        lines += self.loss(values)
        lines += self.backward(values)
        lines += self.update(values)
        verdict = "within" if values.max_manual_autograd_diff <= self.run.tolerance else "OUTSIDE"
        lines.append(
            f"hand-written vs autograd at step {values.step}: max relative difference "
            f"{values.max_manual_autograd_diff:.1e} over every z, a, the loss, every gradient and "
            f"updated parameter ({verdict} {self.run.tolerance:g})"
        )
        return lines

    def forward(self, values: StepValues) -> list[str]:
        lines = ["forward pass: z = W·a_prev + b, a = f(z)"]
        input_labels = self.labels.inputs
        for n in range(self.samples):
            x_row = self.x[n].tolist()
            shown = ", ".join(
                f"{input_labels[i]} = {fmt(v)}" if input_labels else fmt(v)
                for i, v in enumerate(x_row)
            )
            prefix = f"sample {n}: " if len(self.x) > 1 else ""
            lines.append(f"  {prefix}input x = [{shown}], target {self.target_text(n)}")
            for layer, name in enumerate(self.spec.activations):
                weight = values.params_before[f"layers.{layer}.weight"]
                bias = values.params_before[f"layers.{layer}.bias"]
                a_prev = self.x if layer == 0 else values.activations[layer - 1]
                lines.append(f"  layers.{layer} ({self.role(layer)}, {name})")
                labels = self.layer_labels(layer)
                value_text = ACTIVATIONS[name].value_text
                for j in range(weight.shape[0]):
                    terms = [
                        f"{factor(float(weight[j, i]))}·{factor(float(a_prev[n, i]))}"
                        for i in range(weight.shape[1])
                    ]
                    z = float(values.pre_activations[layer][n, j])
                    a = float(values.activations[layer][n, j])
                    lines.append(
                        f"    z[{j}]{_neuron(labels, j)} = {written_sum([*terms, factor(float(bias[j]))])}"
                        f" = {fmt(z)};  a = {value_text.format(**neuron_fields(z, a))} = {fmt(a)}"
                    )
        if len(self.x) > self.samples:
            lines.append(f"  (samples {self.samples} to {len(self.x) - 1} likewise)")
        return lines

    def target_text(self, n: int) -> str:
        if LOSSES[self.spec.loss].classification:
            label = int(self.y[n])
            names = self.labels.outputs
            return f"class {label}" + (f" ({names[label]})" if names else "")
        return f"y = [{', '.join(fmt(v) for v in self.y[n].tolist())}]"

    def output_fields(self, values: StepValues, n: int, k: int) -> dict[str, str | int]:
        """The fields of the loss's texts at output k of sample n (see `bpdemo.functional.Loss`)."""
        out = values.outputs
        fields: dict[str, str | int] = {"a": fmt(float(out[n, k])), "k": k}
        fields.update(rows=len(self.x), numel=out.numel())
        if values.probabilities is not None:  # class labels
            label = int(self.y[n])
            fields.update(y=label, hit=int(label == k), p=fmt(float(values.probabilities[n, k])))
        else:
            y = float(self.y[n, k])
            fields.update(y=fmt(y), one_minus_y=fmt(1 - y))
        return fields

    def loss(self, values: StepValues) -> list[str]:
        loss, many = LOSSES[self.spec.loss], len(self.x) > 1
        lines = [f"loss ({loss.name}: L = {loss.formula})"]
        rows = range(self.samples)
        if values.probabilities is not None:
            for n in rows:
                p = ", ".join(fmt(v) for v in values.probabilities[n].tolist())
                lines.append(f"  p = softmax(z) = [{p}]" + (f" (sample {n})" if many else ""))
        if loss.term_text is None:
            lines.append(f"  L = {fmt(values.loss)}")
            return lines
        if loss.classification:  # one term a sample: the probability of its class
            fields = [self.output_fields(values, n, int(self.y[n])) for n in rows]
        else:  # one term an output of a sample
            width = values.outputs.shape[1]
            fields = [self.output_fields(values, n, k) for n in rows for k in range(width)]
        terms = [loss.term_text.format(**f) for f in fields]
        terms += ["…"] if len(self.x) > self.samples else []  # samples not written out
        counts = {"rows": len(self.x), "numel": values.outputs.numel()}
        lines.append(f"  L = {loss_total(loss.total_text, terms, counts)} = {fmt(values.loss)}")
        return lines

    def output_gradient_text(self, values: StepValues, n: int, k: int) -> str:
        """dL/da at output k of sample n: the loss's derivative, written out."""
        text = LOSSES[self.spec.loss].gradient_text
        g = fmt(float(values.grad_activations[-1][n, k]))
        return g if text is None else f"{text.format(**self.output_fields(values, n, k))} = {g}"

    def backward(self, values: StepValues) -> list[str]:
        lines = [
            "backward pass (chain rule): δ = ∂L/∂z = ∂L/∂a · f'(z) (BP1 at the output, BP2 below),",
            "  ∂L/∂W[j,i] = Σ_samples δ[j]·a_prev[i] (BP4), ∂L/∂b[j] = Σ_samples δ[j] (BP3)",
        ]
        for layer in range(self.spec.num_layers - 1, -1, -1):
            name = self.spec.activations[layer]
            lines.append(f"  layers.{layer} ({self.role(layer)}, {name})")
            for n in range(self.samples):
                lines += self.delta_lines(values, layer, n)
            lines += self.gradient_lines(values, layer)
        return lines

    def delta_lines(self, values: StepValues, layer: int, n: int) -> list[str]:
        """dL/da and delta of each neuron of `layer` for sample n (BP1 at the output, BP2 below)."""
        activation = ACTIVATIONS[self.spec.activations[layer]]
        z_all, a_all = values.pre_activations[layer], values.activations[layer]
        derivative = activation.derivative(z_all, a_all)
        labels = self.layer_labels(layer)
        prefix = f"sample {n}: " if len(self.x) > 1 else ""
        lines = []
        for j in range(z_all.shape[1]):
            grad_a = float(values.grad_activations[layer][n, j])
            if layer == self.spec.num_layers - 1:
                grad_text = self.output_gradient_text(values, n, j)
            else:
                w_next = values.params_before[f"layers.{layer + 1}.weight"]
                d_next = values.deltas[layer + 1]
                terms = [
                    f"{factor(float(d_next[n, k]))}·{factor(float(w_next[k, j]))}"
                    for k in range(w_next.shape[0])
                ]
                grad_text = f"Σ_k δ_next[k]·W_next[k,{j}] = {written_sum(terms)} = {fmt(grad_a)}"
            d = float(derivative[n, j])
            # A derivative that is a constant (identity's 1) says no more than its number.
            text = activation.derivative_text.format(
                **neuron_fields(float(z_all[n, j]), float(a_all[n, j]))
            )
            why = "" if text == fmt(d) else f"   [f'(z) = {text} = {fmt(d)}]"
            lines.append(f"    {prefix}∂L/∂a[{j}]{_neuron(labels, j)} = {grad_text}")
            lines.append(
                f"    {prefix}δ[{j}] = {factor(grad_a)} · f'(z[{j}]) = {factor(grad_a)} · "
                f"{fmt(d)} = {fmt(float(values.deltas[layer][n, j]))}{why}"
            )
        return lines

    def gradient_lines(self, values: StepValues, layer: int) -> list[str]:
        """dL/dW (BP4) and dL/db (BP3) of `layer`, each a sum over the samples."""
        a_prev = self.x if layer == 0 else values.activations[layer - 1]
        grad_w = values.grads[f"layers.{layer}.weight"]
        grad_b = values.grads[f"layers.{layer}.bias"]
        delta = values.deltas[layer]
        many = len(self.x) > 1
        over = "Σ_samples " if many else ""
        hidden = len(self.x) - self.samples
        more = [f"… ({hidden} more samples)"] if hidden > 0 else []
        lines = []
        for j in range(grad_w.shape[0]):
            for i in range(grad_w.shape[1]):
                terms = [
                    f"{factor(float(delta[n, j]))}·{factor(float(a_prev[n, i]))}"
                    for n in range(self.samples)
                ]
                lines.append(
                    f"    ∂L/∂W[{j},{i}] = {over}δ[{j}]·a_prev[{i}] = {written_sum(terms + more)} = "
                    f"{fmt(float(grad_w[j, i]))}"
                )
            terms = [factor(float(delta[n, j])) for n in range(self.samples)]
            lines.append(
                f"    ∂L/∂b[{j}] = {over}δ[{j}] = {written_sum(terms + more)}"
                + (f" = {fmt(float(grad_b[j]))}" if many else "")
            )
        return lines

    def update(self, values: StepValues) -> list[str]:
        optimizer = self.example.optimizer
        plain = optimizer.name == "sgd" and not optimizer.momentum
        lr = optimizer.lr
        if plain:
            lines = [f"update (gradient descent, lr = {lr:g}): p ← p − lr·∂L/∂p"]
        else:
            lines = [f"update ({optimizer.name}, lr = {lr:g}; the step is the optimizer's)"]
        for name, before in values.params_before.items():
            if name.endswith(".bias") and not optimizer.train_biases:
                lines.append(f"  {name}: held fixed (train.train_biases = false)")
                continue
            after, grad = values.params_after[name], values.grads[name]
            for index in _indices(before.shape):
                b, g, a = float(before[index]), float(grad[index]), float(after[index])
                where = f"{name}[{','.join(map(str, index))}]"
                if plain:
                    lines.append(f"  {where} = {fmt(b)} − {fmt(lr)}·{factor(g)} = {fmt(a)}")
                else:
                    lines.append(f"  {where} = {fmt(b)} → {fmt(a)} (∂L/∂p = {fmt(g)})")
        return lines

    def final(self) -> list[str]:
        """The loss and every written-out sample's output (and probabilities) after the last update."""
        run = self.run
        if run.final is None:
            return []
        outputs, probabilities = run.final.outputs, run.final.probabilities
        names = self.labels.outputs or [str(k) for k in range(outputs.shape[1])]
        shown = [
            "[" + ", ".join(fmt(v) for v in outputs[n].tolist()) + "]" for n in range(self.samples)
        ]
        first = f"after the last update (step {run.steps_run}): loss {fmt(run.final.loss)}, output "
        lines = [first + "; ".join(shown)]
        if len(lines[0]) > 100:  # one line per sample
            lines = [first.removesuffix(", output ").rstrip() + ", outputs:"]
            lines += [f"  sample {n}: {text}" for n, text in enumerate(shown)]
        if probabilities is not None:
            for n in range(self.samples):
                p = ", ".join(
                    f"{k} {fmt(v)}" for k, v in zip(names, probabilities[n].tolist(), strict=True)
                )
                lines.append(
                    "  probabilities" + (f" (sample {n})" if self.samples > 1 else "") + f": {p}"
                )
        if len(self.x) > self.samples:
            lines.append(f"  (samples {self.samples} to {len(self.x) - 1}: see trace.json)")
        return lines

    def summary(self) -> list[str]:
        """One row per kept step (thinned to about SUMMARY_ROWS) for a run of several steps."""
        steps = self.run.steps
        if len(steps) <= 1:
            return []
        stride = max(1, math.ceil(len(steps) / SUMMARY_ROWS))
        shown = [s for i, s in enumerate(steps) if i % stride == 0 or s is steps[-1]]
        lines = ["  step  loss before the step  output (sample 0)  max relative difference"]
        for s in shown:
            output = ", ".join(fmt(v) for v in s.outputs[0].tolist())
            lines.append(
                f"  {s.step:>4}  {fmt(s.loss):>20}  {output:>17}  {s.max_manual_autograd_diff:.1e}"
            )
        return lines

    def text(self) -> str:
        run = self.run
        detailed = run.steps if run.steps_run <= DETAILED_STEPS else [run.steps[0], run.steps[-1]]
        lines = self.header()
        for values in detailed:
            lines += self.step(values)
        if run.steps_run > DETAILED_STEPS:
            lines.append(f"(steps 2 to {run.steps_run - 1} are not written out; losses by step:)")
        if run.steps_run > 1:
            lines += self.summary()
        lines += self.final()
        return "\n".join(lines)


def _indices(shape: torch.Size) -> list[tuple[int, ...]]:
    """Every index of a tensor of `shape`, row by row: (0, 0), (0, 1), ... or (0,), (1,), ..."""
    return list(itertools.product(*(range(n) for n in shape)))


# -- raw against standardised inputs ---------------------------------------------------------------
def scale_comparison(raw: WorkedRun, standardised: WorkedRun) -> str:
    """The first step on raw and on standardised inputs, side by side."""
    table = [("", "raw inputs", "standardised inputs")]
    table += [
        (label, left, right)
        for (label, left), (_, right) in zip(
            first_step_rows(raw), first_step_rows(standardised), strict=True
        )
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    lines = [
        "the same first step on raw and on standardised inputs (same function, same first output):"
    ]
    for label, left, right in table:
        lines.append(
            f"  {label.ljust(widths[0])}  {left.rjust(widths[1])}  {right.rjust(widths[2])}"
        )
    return "\n".join(lines)


def first_step_rows(run: WorkedRun) -> list[tuple[str, str]]:
    """(what, value) of the first step of a run: its input, output, loss, gradients and change."""
    first = run.steps[0]
    # after the first update: step 2's forward pass, or the final one after a single step
    after = run.final if run.steps_run == 1 else run.step(2)
    rows = [
        (
            "inputs (sample 0)",
            "[" + ", ".join(fmt(v, 4) for v in run.example.inputs[0].tolist()) + "]",
        ),
        ("output before the step", fmt(float(first.outputs[0, 0]))),
        ("loss before the step", fmt(first.loss)),
    ]
    for name, grad in first.grads.items():
        if name.endswith(".weight"):
            change = (first.params_after[name] - first.params_before[name]).abs().max()
            rows.append((f"largest |∂L/∂W| {name}", fmt(float(grad.abs().max()), 4)))
            rows.append((f"largest change of {name}", fmt(float(change), 4)))
    rows.append(("output after the step", fmt(float(after.outputs[0, 0])) if after else "–"))
    rows.append(("loss after the step", fmt(after.loss) if after else "–"))
    return rows
