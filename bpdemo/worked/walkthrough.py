"""The printed walk-through of a worked example: every number of a step, written out as on paper.

Each line is an equation of `bpdemo.equations` (z = W·a_prev + b, the loss, the chain rule, the
update) with its numbers put in, the same text the explorer shows, so a reader can check any of them
by hand. The formulas of activations and losses come from their registries (`bpdemo.functional`).
"""

from __future__ import annotations

import itertools
import math

import torch

from bpdemo.equations import StepEquations, fmt, update_rule, update_rule_name
from bpdemo.functional import LOSSES
from bpdemo.worked.trace import StepValues, WorkedRun

DETAILED_STEPS = 5  # a run of up to this many steps is printed in full; longer: first and last
SUMMARY_ROWS = 20  # rows of the per-step loss table of a long run


def step_equations(run: WorkedRun, values: StepValues) -> StepEquations:
    """The equations of one step of `run`, its samples written out as `[report] max_samples` says."""
    example = run.example
    shown = min(len(example.inputs), example.config.report.max_samples)
    return StepEquations(
        values,
        example.inputs,
        example.targets,
        example.spec,
        example.optimizer,
        example.config.labels,
        shown,
    )


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

    def role(self, layer: int) -> str:
        return "output layer" if layer == self.spec.num_layers - 1 else f"hidden layer {layer}"

    def header(self) -> list[str]:
        config, spec, optimizer = self.example.config, self.spec, self.example.optimizer
        sizes = "-".join(map(str, spec.sizes))
        loss = LOSSES[spec.loss]
        formula = f": L = {loss.formula}" if loss.formula else ""
        lines = [
            f"{config.title}" + (f" — {self.example.variant}" if config.data.standardise else "")
        ]
        if config.source:
            lines.append(f"source: {config.source}")
        biases = f", biases {'trained' if optimizer.train_biases else 'held fixed'}"
        notation = (
            "W0, b0 are layers.0's weight and bias" if spec.bias else "W0 is layers.0's weight"
        )
        lines += [
            f"network {sizes}{'' if spec.bias else ' without biases'}, activations "
            f"{', '.join(spec.activations)}; loss {spec.loss}{formula}",
            f"{update_rule_name(optimizer)}, lr {optimizer.lr:g}{biases if spec.bias else ''}"
            f", {self.run.steps_run} full-batch step(s) on {len(self.x)} sample(s), "
            f"{str(spec.dtype).removeprefix('torch.')}; indices count from 0",
            f"notation: {notation}, z0, a0, δ0 = ∂L/∂z0 its neurons' (and so on); x the input",
        ]
        if spec.bias and config.init.biases is None:
            lines.append(
                "biases: [init] gives none, so every bias starts at 0 and is "
                + (
                    "trained"
                    if optimizer.train_biases
                    else "held fixed (train.train_biases = false)"
                )
                + "; for a network without biases, set network.bias = false"
            )
        lines += self.conventions()
        if len(self.x) > self.samples:
            lines.append(
                f"samples 0 to {self.samples - 1} of {len(self.x)} are written out "
                f"(report.max_samples = {self.samples}); the others enter every sum and the loss"
            )
        return lines

    def conventions(self) -> list[str]:
        """The line that says the source's signs, when they differ from the walk-through's."""
        conventions = self.example.config.conventions
        said = []
        if conventions.delta == "-dE/dz":
            said.append("δ = −∂L/∂z (this text writes δ = ∂L/∂z)")
        if conventions.error == "y - t":
            said.append("error = output − target (y − t)")
        if not said or not self.example.claims:
            return []
        return [f"the source's conventions, in which its claims are judged: {'; '.join(said)}"]

    # -- one step ---------------------------------------------------------------------------------
    def step(self, values: StepValues) -> list[str]:
        lines = [f"── step {values.step} " + "─" * 60]
        lines += self.forward(values)
        lines += self.loss(values)
        lines += self.backward(values)
        lines += self.update(values)
        lines.append(self.check(values))
        return lines

    def check(self, values: StepValues) -> str:
        """The line that closes a step: how far the hand-written step is from autograd's."""
        verdict = "within" if values.max_manual_autograd_diff <= self.run.tolerance else "OUTSIDE"
        return (
            f"hand-written vs autograd at step {values.step}: max relative difference "
            f"{values.max_manual_autograd_diff:.1e} over every z, a, the loss, every gradient and "
            f"updated parameter ({verdict} {self.run.tolerance:g})"
        )

    def forward(self, values: StepValues) -> list[str]:
        equations = step_equations(self.run, values)
        bias = " + b" if self.spec.bias else ""
        lines = [f"forward pass: z = W·a_prev{bias}, a = f(z)"]
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
                lines.append(f"  layers.{layer} ({self.role(layer)}, {name})")
                for j in range(self.spec.sizes[layer + 1]):
                    lines.append(f"    {equations.forward(layer, j, n).text}")
        if len(self.x) > self.samples:
            lines.append(f"  (samples {self.samples} to {len(self.x) - 1} likewise)")
        return lines

    def target_text(self, n: int) -> str:
        if LOSSES[self.spec.loss].classification:
            label = int(self.y[n])
            names = self.labels.outputs
            return f"class {label}" + (f" ({names[label]})" if names else "")
        return f"y = [{', '.join(fmt(v) for v in self.y[n].tolist())}]"

    def loss(self, values: StepValues) -> list[str]:
        header, *lines = (e.text for e in step_equations(self.run, values).loss())
        return [header] + [f"  {line}" for line in lines]

    def backward(self, values: StepValues) -> list[str]:
        """The backward pass: its rule, then one item a line."""
        equations = step_equations(self.run, values)
        bias = ", ∂L/∂b = Σ_samples δ (BP3)" if self.spec.bias else ""
        # One item printed on two lines, so that the handout can write the rule as one sentence.
        rule = (
            "backward pass (chain rule): δ = ∂L/∂z = ∂L/∂a·f'(z) (BP1 at the output, BP2 below),\n"
            f"  ∂L/∂W = Σ_samples δ·a_prev (BP4){bias}"
        )
        lines = [rule]
        for layer in range(self.spec.num_layers - 1, -1, -1):
            name = self.spec.activations[layer]
            lines.append(f"  layers.{layer} ({self.role(layer)}, {name})")
            for n in range(self.samples):
                prefix = f"sample {n}: " if len(self.x) > 1 else ""
                for j in range(self.spec.sizes[layer + 1]):
                    lines.append(f"    {prefix}{equations.grad_activation(layer, j, n).text}")
                    lines.append(f"    {prefix}{equations.delta(layer, j, n).text}")
            for j in range(self.spec.sizes[layer + 1]):
                for i in range(self.spec.sizes[layer]):
                    lines.append(f"    {equations.grad_weight(layer, j, i).text}")
                if self.spec.bias:
                    lines.append(f"    {equations.grad_bias(layer, j).text}")
        return lines

    def update(self, values: StepValues) -> list[str]:
        equations = step_equations(self.run, values)
        lines = [f"update ({update_rule(self.example.optimizer)})"]
        for name, before in values.params_before.items():
            for index in _indices(before.shape):
                lines.append(f"  {equations.update(name, index).text}")
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

    def detailed_steps(self) -> list[StepValues]:
        """The steps written out in full: all of a run of up to DETAILED_STEPS, else the first and
        the last (the printed text and the handout show the same ones)."""
        steps = self.run.steps
        return steps if self.run.steps_run <= DETAILED_STEPS else [steps[0], steps[-1]]

    def text(self) -> str:
        run = self.run
        lines = self.header()
        for values in self.detailed_steps():
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
