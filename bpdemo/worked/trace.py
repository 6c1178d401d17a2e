"""Running a worked example: both models, full batch, and every number of every step kept.

`run_example` trains the hand-written model and its autograd twin side by side (`SideBySide`)
through the one training loop (`bpdemo.train.run_epochs`, one batch of all the rows, in order, so
one step is one epoch). Its step, `TracedPair.step`, keeps for each step every pre-activation z and
activation a, the loss, dL/da and delta = dL/dz of every layer, every gradient and every parameter
before and after the update, copied out of the hand-written model's cache, and compares autograd's
numbers with them: gradients by the shared measure of `bpdemo.compare` (relative to the summand
scale S), everything else by `rel_diff` (relative to the largest autograd value).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from bpdemo.agreement import TOLERANCES, StepRecord, max_abs_diff, rel_diff
from bpdemo.autograd_mlp import AutogradMLP
from bpdemo.compare import SideBySide
from bpdemo.functional import LOSSES
from bpdemo.spec import MLPSpec
from bpdemo.train import run_epochs
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
class StepValues(ForwardValues):
    """One step: the forward pass before the update, the backward pass, and the update.

    grad_activations[l] is dL/da of layer l and deltas[l] = dL/dz, both (N, out); grads, params_before
    and params_after are by parameter name (weights (out, in), biases (out,)).
    """

    step: int = 0
    grad_activations: list[Tensor] = field(default_factory=list)
    deltas: list[Tensor] = field(default_factory=list)
    grads: dict[str, Tensor] = field(default_factory=dict)
    params_before: dict[str, Tensor] = field(default_factory=dict)
    params_after: dict[str, Tensor] = field(default_factory=dict)
    max_manual_autograd_diff: float = 0.0  # relative, gradients against S (see bpdemo.compare)
    max_manual_autograd_abs_diff: float = 0.0


@dataclass
class WorkedRun:
    """What a run of an example produced: the kept steps, the end state, claims' true values."""

    example: WorkedExample
    pair: SideBySide
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


class TracedPair:
    """A `SideBySide` pair that keeps every number of the steps in `keep` (and of the last one).

    `step(x, target)` is what `run_epochs` calls: before the pair's step it copies the parameters and
    runs the autograd model layer by layer (its z and a); after it, it copies the hand-written
    model's cache (overwritten by the next pass) and reads the claims made about this step.
    """

    def __init__(self, example: WorkedExample, keep: set[int]):
        self.example = example
        self.pair = SideBySide(example.spec, example.optimizer)
        self.keep = keep
        self.kept: list[StepValues] = []
        self.last: StepValues | None = None
        self.claim_values: dict[int, float] = {}

    def step(self, x: Tensor, target: Tensor) -> StepRecord:
        params_before = dict(self.pair.manual.state_dict())
        autograd_z, autograd_a = autograd_forward(self.pair.autograd, x)
        record = self.pair.step(x, target)
        values = self.capture(record, params_before, autograd_z, autograd_a)
        for claim in self.example.claims:
            if claim.step == values.step and not claim.quantity.final:
                self.claim_values[claim.number] = read_quantity(claim, values, target)
        if values.step in self.keep:
            self.kept.append(values)
        self.last = values
        return record

    def capture(
        self,
        record: StepRecord,
        params_before: dict[str, Tensor],
        autograd_z: list[Tensor],
        autograd_a: list[Tensor],
    ) -> StepValues:
        manual = self.pair.manual
        layers = manual.layers
        pre_activations = [_copy(layer.pre_activation) for layer in layers]
        activations = [_copy(layer.output) for layer in layers]
        grads = {name: _copy(g) for name, g in manual.named_grads()}
        params_after = {name: _copy(p) for name, p in manual.named_parameters()}
        autograd_params = dict(self.pair.autograd.named_parameters())
        compared = [_losses(record.loss_manual, record.loss_autograd)]
        compared += list(zip(pre_activations, autograd_z, strict=True))
        compared += list(zip(activations, autograd_a, strict=True))
        compared += [(params_after[n], autograd_params[n].detach()) for n in params_after]
        return StepValues(
            loss=record.loss_manual,
            pre_activations=pre_activations,
            activations=activations,
            probabilities=probabilities_of(self.example.spec, activations[-1]),
            step=record.step,
            grad_activations=[_copy(layer.grad_output) for layer in layers],
            deltas=[_copy(layer.delta) for layer in layers],
            grads=grads,
            params_before=params_before,
            params_after=params_after,
            max_manual_autograd_diff=max(
                record.max_rel_grad_diff, *(rel_diff(m, a) for m, a in compared)
            ),
            max_manual_autograd_abs_diff=max(
                record.max_abs_grad_diff, *(max_abs_diff(m, a) for m, a in compared)
            ),
        )


def _copy(tensor: Tensor) -> Tensor:
    return tensor.detach().clone()


def _losses(manual: float, autograd: float) -> tuple[Tensor, Tensor]:
    """Both losses as tensors, to be compared like every other number."""
    return torch.tensor(manual, dtype=torch.float64), torch.tensor(autograd, dtype=torch.float64)


def probabilities_of(spec: MLPSpec, outputs: Tensor) -> Tensor | None:
    return torch.softmax(outputs, dim=1) if LOSSES[spec.loss].classification else None


@torch.no_grad()
def autograd_forward(model: AutogradMLP, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Every layer's z and a in the autograd model (its own layers, run one by one)."""
    pre_activations, activations = [], []
    for layer, activation in zip(model.layers, model.activation_fns, strict=True):
        z = layer(x)
        x = activation(z)
        pre_activations.append(z)
        activations.append(x)
    return pre_activations, activations


def read_quantity(claim: Claim, values: ForwardValues, targets: Tensor) -> float:
    """The true value of a claim's quantity at its step (or after the last update)."""
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
    """Train both models on the full batch for `train.steps` steps; keep every number of the run.

    Stops at the first inf/NaN loss (`diverged_at_step`) and on Ctrl-C (`interrupted`), keeping what
    it has. Claims are read as the run passes their step, so thinning the kept steps loses none.
    """
    train, x, y = example.config.train, example.inputs, example.targets
    always = {example.config.picture.step} | {c.step for c in example.claims}
    traced = TracedPair(example, kept_step_numbers(train.steps, train.max_trace_steps, always))
    loop = run_epochs(traced.step, x, y, epochs=train.steps, batch_size=len(x), generator=None)
    steps = traced.kept
    if traced.last is not None and (not steps or steps[-1] is not traced.last):
        steps.append(traced.last)
    run = WorkedRun(
        example,
        traced.pair,
        steps=steps,
        final=None,
        final_diff=0.0,
        steps_run=len(loop.records),
        diverged_at_step=loop.diverged_at_step,
        interrupted=loop.interrupted,
        claim_values=traced.claim_values,
    )
    if run.diverged_at_step is None and run.steps_run:
        run.final, run.final_diff = _final_values(traced.pair, example)
        for claim in example.claims:
            if claim.quantity.final:
                run.claim_values[claim.number] = read_quantity(claim, run.final, y)
    return run


def _final_values(pair: SideBySide, example: WorkedExample) -> tuple[ForwardValues, float]:
    """The forward pass after the last update, and its largest relative difference from autograd."""
    manual, spec = pair.manual, example.spec
    outputs = manual.forward(example.inputs)
    values = ForwardValues(
        loss=float(manual.loss(outputs, example.targets)),
        pre_activations=[_copy(layer.pre_activation) for layer in manual.layers],
        activations=[_copy(layer.output) for layer in manual.layers],
        probabilities=probabilities_of(spec, outputs),
    )
    autograd_z, autograd_a = autograd_forward(pair.autograd, example.inputs)
    loss_autograd = float(pair.autograd.loss(autograd_a[-1], example.targets))
    compared = [_losses(values.loss, loss_autograd)]
    compared += list(zip(values.pre_activations, autograd_z, strict=True))
    compared += list(zip(values.activations, autograd_a, strict=True))
    return values, max(rel_diff(m, a) for m, a in compared)
