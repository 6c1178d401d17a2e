"""Running a worked example: the hand-written model step by step, every number kept and checked.

`run_example` trains the hand-written model on the full batch through the one training loop
(`bpdemo.train.run_epochs`, one batch of all the rows, in order, so one step is one epoch). Its
step, `TracedRun.step`, keeps for each step every pre-activation z and activation a, the loss,
dL/da and delta = dL/dz of every layer, every gradient and every parameter before and after the
update, copied out of the hand-written model's cache.

Each step is checked against autograd at the same parameters: before the step the autograd twin is
loaded with the hand-written model's parameters and takes the same step (its torch.optim optimizer
has the same settings). So the check answers one question, "does the hand-written backward compute
autograd's gradient?", and rounding cannot build up from step to step, however long the run.
Gradients are compared by the shared measure of `bpdemo.agreement` (relative to the summand scale
S), every other number by `rel_diff` (relative to the largest autograd value of its tensor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from bpdemo.agreement import TOLERANCES, max_abs_diff, rel_diff, relative_to, summand_scales
from bpdemo.autograd_mlp import AutogradMLP
from bpdemo.functional import LOSSES
from bpdemo.manual import ManualMLP
from bpdemo.spec import MLPSpec
from bpdemo.train import Step, run_epochs
from bpdemo.worked.claims import Claim, Quantity
from bpdemo.worked.example import WorkedExample


@dataclass
class ForwardValues:
    """A forward pass: per layer z and a, each (N, out); the loss; softmax probabilities (CE)."""

    loss: float
    pre_activations: list[Tensor]
    activations: list[Tensor]
    probabilities: Tensor | None

    @property
    def outputs(self) -> Tensor:
        return self.activations[-1]


@dataclass
class AutogradValues:
    """Autograd's step from the hand-written model's parameters before it: per layer z, a,
    dL/da (a.grad) and delta (z.grad), each (N, out); its gradients and updated parameters by name."""

    loss: float
    pre_activations: list[Tensor]
    activations: list[Tensor]
    grad_activations: list[Tensor]
    deltas: list[Tensor]
    grads: dict[str, Tensor]
    params_after: dict[str, Tensor]


@dataclass
class StepValues(ForwardValues):
    """One step: the forward pass before the update, the backward pass, and the update.

    grad_activations[l] is dL/da of layer l and deltas[l] = dL/dz, both (N, out); grads, params_before
    and params_after are by parameter name (weights (out, in), biases (out,)). `autograd` is the same
    step by autograd from the same parameters, and the two differences measure how far apart they are.
    """

    step: int = 0
    grad_activations: list[Tensor] = field(default_factory=list)
    deltas: list[Tensor] = field(default_factory=list)
    grads: dict[str, Tensor] = field(default_factory=dict)
    params_before: dict[str, Tensor] = field(default_factory=dict)
    params_after: dict[str, Tensor] = field(default_factory=dict)
    max_manual_autograd_diff: float = 0.0  # relative, gradients against S (see bpdemo.agreement)
    max_manual_autograd_abs_diff: float = 0.0
    autograd: AutogradValues | None = None


@dataclass
class WorkedRun:
    """What a run of an example produced: the kept steps, the end state, claims' true values."""

    example: WorkedExample
    steps: list[StepValues]  # the kept steps; the first and the last run are always among them
    final: ForwardValues | None
    final_diff: float
    steps_run: int
    diverged_at_step: int | None = None
    interrupted: bool = False
    claim_values: dict[int, float] = field(default_factory=dict)  # claim number -> true value

    @property
    def tolerance(self) -> float:
        return TOLERANCES[self.example.spec.dtype]

    @property
    def max_manual_autograd_diff(self) -> float:
        return max([s.max_manual_autograd_diff for s in self.steps] + [self.final_diff])

    def step(self, number: int) -> StepValues | None:
        return next((s for s in self.steps if s.step == number), None)


class TracedRun:
    """The hand-written model and its optimizer, stepped by `run_epochs`, each step kept and checked.

    `step(x, target)` is what `run_epochs` calls: it lets autograd take the step from the hand-written
    parameters, takes it by hand, copies out the hand-written model's cache (overwritten by the next
    pass), compares the two, and reads the claims made about this step. Steps in `keep` (and the
    last) are kept.
    """

    def __init__(self, example: WorkedExample, keep: set[int]):
        self.example = example
        self.manual = ManualMLP(example.spec)
        self.manual_optimizer = example.optimizer.manual(self.manual)
        self.twin = AutogradMLP.from_manual(self.manual)
        self.twin_optimizer = example.optimizer.torch(self.twin)
        self.keep = keep
        self.kept: list[StepValues] = []
        self.last: StepValues | None = None
        self.claim_values: dict[int, float] = {}
        self.steps_done = 0

    def step(self, x: Tensor, target: Tensor) -> Step:
        params_before = self.manual.state_dict()
        autograd = self.autograd_step(params_before, x, target)
        loss, _ = self.manual.loss_and_grads(x, target)
        scales = summand_scales(self.manual)
        self.manual_optimizer.step()
        self.steps_done += 1
        values = self.capture(float(loss), params_before, autograd)
        values.max_manual_autograd_diff, values.max_manual_autograd_abs_diff = differences(
            values, autograd, scales
        )
        for claim in self.example.claims:
            if claim.step == values.step and not claim.quantity.final:
                self.claim_values[claim.number] = read_quantity(
                    claim, values, target, self.example.config.conventions
                )
        if values.step in self.keep:
            self.kept.append(values)
        self.last = values
        return Step(values.step, values.loss)

    def autograd_step(self, params: dict[str, Tensor], x: Tensor, target: Tensor) -> AutogradValues:
        """The step by autograd from `params`: the twin loaded with them, its forward pass layer by
        layer, `loss.backward()`, and its torch.optim update."""
        twin = self.twin
        twin.load_state_dict(params)
        self.twin_optimizer.zero_grad(set_to_none=True)
        pre_activations, activations = twin.forward_by_layer(x, keep_grads=True)
        loss = twin.loss(activations[-1], target)
        loss.backward()
        self.twin_optimizer.step()
        return AutogradValues(
            loss=float(loss.detach()),
            pre_activations=[_copy(z) for z in pre_activations],
            activations=[_copy(a) for a in activations],
            grad_activations=[_copy(a.grad) for a in activations],
            deltas=[_copy(z.grad) for z in pre_activations],
            grads={name: _copy(p.grad) for name, p in twin.named_parameters()},
            params_after={name: _copy(p) for name, p in twin.named_parameters()},
        )

    def capture(
        self, loss: float, params_before: dict[str, Tensor], autograd: AutogradValues
    ) -> StepValues:
        manual = self.manual
        layers = manual.layers
        activations = [_copy(layer.output) for layer in layers]
        return StepValues(
            loss=loss,
            pre_activations=[_copy(layer.pre_activation) for layer in layers],
            activations=activations,
            probabilities=probabilities_of(self.example.spec, activations[-1]),
            step=self.steps_done,
            grad_activations=[_copy(layer.grad_output) for layer in layers],
            deltas=[_copy(layer.delta) for layer in layers],
            grads={name: _copy(g) for name, g in manual.named_grads()},
            params_before=params_before,
            params_after={name: _copy(p) for name, p in manual.named_parameters()},
            autograd=autograd,
        )


def differences(
    values: StepValues, autograd: AutogradValues, scales: dict[str, Tensor]
) -> tuple[float, float]:
    """The largest relative and absolute difference between a hand-written step and autograd's.

    Gradients relative to their summand scales `scales` (S, by parameter name); z, a, the loss,
    dL/da, delta and the updated parameters relative to the largest autograd value of each tensor.
    """
    pairs = _forward_pairs(values, autograd.loss, autograd.pre_activations, autograd.activations)
    pairs += list(zip(values.grad_activations, autograd.grad_activations, strict=True))
    pairs += list(zip(values.deltas, autograd.deltas, strict=True))
    pairs += [(values.params_after[n], autograd.params_after[n]) for n in values.params_after]
    grad_abs = {n: max_abs_diff(g, autograd.grads[n]) for n, g in values.grads.items()}
    relative = [relative_to(grad_abs[n], scales[n]) for n in grad_abs]
    relative += [rel_diff(m, a) for m, a in pairs]
    absolute = [*grad_abs.values(), *(max_abs_diff(m, a) for m, a in pairs)]
    return max(relative), max(absolute)


def _forward_pairs(
    values: ForwardValues, loss: float, pre_activations: list[Tensor], activations: list[Tensor]
) -> list[tuple[Tensor, Tensor]]:
    """(hand-written, autograd) of the loss (as tensors), every z and every a."""
    pairs = [
        (torch.tensor(values.loss, dtype=torch.float64), torch.tensor(loss, dtype=torch.float64))
    ]
    pairs += list(zip(values.pre_activations, pre_activations, strict=True))
    pairs += list(zip(values.activations, activations, strict=True))
    return pairs


def _copy(tensor: Tensor) -> Tensor:
    return tensor.detach().clone()


def probabilities_of(spec: MLPSpec, outputs: Tensor) -> Tensor | None:
    return torch.softmax(outputs, dim=1) if LOSSES[spec.loss].classification else None


def read_quantity(
    claim: Claim, values: ForwardValues, targets: Tensor, conventions: Any = None
) -> float:
    """The true value of a claim's quantity at its step (or after the last update), in the
    source's `conventions` (`[conventions]`: δ = ∂E/∂z or −∂E/∂z, error t − y or y − t)."""
    value = _canonical_value(claim, values, targets)
    kind = claim.quantity.kind
    if conventions is not None:
        if kind == "delta" and conventions.delta == "-dE/dz":
            return -value
        if kind == "error" and conventions.error == "y - t":
            return -value
    return value


def _canonical_value(claim: Claim, values: ForwardValues, targets: Tensor) -> float:
    """The value as the trace holds it: δ = ∂L/∂z, error = target − output."""
    quantity: Quantity = claim.quantity
    kind, layer, index, sample = quantity.kind, quantity.layer, quantity.index, claim.sample
    if kind == "loss":
        return values.loss
    if kind in ("output", "hidden"):
        return float(values.activations[layer][sample, index[0]])
    if kind in ("output_pre", "hidden_pre"):
        return float(values.pre_activations[layer][sample, index[0]])
    if kind == "prob":
        return float(values.probabilities[sample, index[0]])
    if kind == "error":  # target - output, as the sources write "actual - predicted"
        return float(targets[sample, index[0]] - values.outputs[sample, index[0]])
    assert isinstance(values, StepValues)
    if kind == "dloss":
        return float(values.grad_activations[-1][sample, index[0]])
    if kind == "delta":
        return float(values.deltas[layer][sample, index[0]])
    tensors = {
        "grad": values.grads,
        "param_before": values.params_before,
        "param_after": values.params_after,
    }[kind]
    return float(tensors[quantity.parameter][index])


def kept_step_numbers(steps: int, max_kept: int, always: set[int]) -> set[int]:
    """Which steps a run of `steps` keeps: about `max_kept` evenly, the first, and `always`."""
    stride = max(1, math.ceil(steps / max_kept))
    return {s for s in range(1, steps + 1) if s == 1 or s % stride == 0} | always


def run_example(example: WorkedExample) -> WorkedRun:
    """Train the hand-written model on the full batch for `train.steps` steps, checking each step
    against autograd from the same parameters; keep every number of the run.

    Stops at the first inf/NaN loss (`diverged_at_step`) and on Ctrl-C (`interrupted`), keeping what
    it has. Claims are read as the run passes their step, so thinning the kept steps loses none.
    """
    train, x, y = example.config.train, example.inputs, example.targets
    always = {example.config.picture.step} | {c.step for c in example.claims}
    traced = TracedRun(example, kept_step_numbers(train.steps, train.max_trace_steps, always))
    loop = run_epochs(traced.step, x, y, epochs=train.steps, batch_size=len(x), generator=None)
    steps = traced.kept
    if traced.last is not None and (not steps or steps[-1] is not traced.last):
        steps.append(traced.last)
    run = WorkedRun(
        example,
        steps=steps,
        final=None,
        final_diff=0.0,
        steps_run=len(loop.records),
        diverged_at_step=loop.diverged_at_step,
        interrupted=loop.interrupted,
        claim_values=traced.claim_values,
    )
    if run.diverged_at_step is None and run.steps_run:
        run.final, run.final_diff = _final_values(traced, example)
        for claim in example.claims:
            if claim.quantity.final:
                run.claim_values[claim.number] = read_quantity(
                    claim, run.final, y, example.config.conventions
                )
    return run


def _final_values(traced: TracedRun, example: WorkedExample) -> tuple[ForwardValues, float]:
    """The forward pass after the last update, and its largest relative difference from autograd's
    forward pass at the same parameters."""
    manual, spec, x = traced.manual, example.spec, example.inputs
    outputs = manual.forward(x)
    values = ForwardValues(
        loss=float(manual.loss(outputs, example.targets)),
        pre_activations=[_copy(layer.pre_activation) for layer in manual.layers],
        activations=[_copy(layer.output) for layer in manual.layers],
        probabilities=probabilities_of(spec, outputs),
    )
    traced.twin.load_state_dict(manual.state_dict())
    with torch.no_grad():
        pre_activations, activations = traced.twin.forward_by_layer(x)
        loss = float(traced.twin.loss(activations[-1], example.targets))
    pairs = _forward_pairs(values, loss, pre_activations, activations)
    return values, max(rel_diff(m, a) for m, a in pairs)
