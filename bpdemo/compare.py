"""The comparison engine: both models trained on the same mini-batches, compared at every step.

At each step it records both losses and, for every parameter, the largest absolute and relative
difference between the hand-written and the autograd gradient, the norm of each, and the largest
difference between the parameters after the update. The models are never re-synchronised: any
disagreement accumulates and shows.

How the differences are measured, and the tolerances: `bpdemo.agreement`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from bpdemo.agreement import (
    TOLERANCES,
    Agreement,
    StepRecord,
    max_abs_diff,
    relative_to,
    summand_scales,
)
from bpdemo.autograd_mlp import AutogradNetwork, twin_of
from bpdemo.manual import ManualMLP, ManualNetwork
from bpdemo.optim import OptimizerSpec
from bpdemo.spec import MLPSpec, NetworkSpec


@dataclass
class Evaluation:
    """Both models on one data set, without training: outputs (N, out) and losses."""

    output_manual: Tensor
    output_autograd: Tensor
    loss_manual: float
    loss_autograd: float


@dataclass
class SideBySide:
    """A hand-written model and its autograd twin, with their optimizers, stepped together."""

    spec: MLPSpec | NetworkSpec
    optimizer: OptimizerSpec
    manual: ManualNetwork = field(init=False)
    autograd: AutogradNetwork = field(init=False)

    def __post_init__(self) -> None:
        self.manual = manual_model(self.spec)
        self.autograd = twin_of(self.manual)
        self.manual_optimizer = self.optimizer.manual(self.manual)
        self.torch_optimizer = self.optimizer.torch(self.autograd)
        self.agreement = Agreement(
            dtype=str(self.spec.dtype).removeprefix("torch."), tolerance=TOLERANCES[self.spec.dtype]
        )
        self.steps_done = 0
        self.seconds_manual = 0.0  # time in each model's passes and updates only
        self.seconds_autograd = 0.0

    def gradients(self, x: Tensor, target: Tensor) -> tuple[Tensor, dict, Tensor, dict]:
        """Loss and gradients of both models on one batch: (loss_m, grads_m, loss_a, grads_a)."""
        start = time.perf_counter()
        loss_m, grads_m = self.manual.loss_and_grads(x, target)
        middle = time.perf_counter()
        loss_a, grads_a = self.autograd.loss_and_grads(x, target)
        self.seconds_manual += middle - start
        self.seconds_autograd += time.perf_counter() - middle
        return loss_m, grads_m, loss_a, grads_a

    def step(self, x: Tensor, target: Tensor) -> StepRecord:
        """One forward, backward and update of both models on the same batch."""
        loss_m, grads_m, loss_a, grads_a = self.gradients(x, target)
        names = list(grads_m)
        grad_abs = {n: max_abs_diff(grads_m[n], grads_a[n]) for n in names}
        scales = self.gradient_scales()
        grad_rel = {n: relative_to(grad_abs[n], scales[n]) for n in names}
        norm_m = {n: float(torch.linalg.vector_norm(grads_m[n])) for n in names}
        norm_a = {n: float(torch.linalg.vector_norm(grads_a[n])) for n in names}

        start = time.perf_counter()
        self.manual_optimizer.step()  # each clips first if the optimizer spec says so
        middle = time.perf_counter()
        self.torch_optimizer.step()
        self.seconds_manual += middle - start
        self.seconds_autograd += time.perf_counter() - middle

        params_a = dict(self.autograd.named_parameters())
        param_abs = {
            n: max_abs_diff(p, params_a[n].detach()) for n, p in self.manual.named_parameters()
        }
        self.steps_done += 1
        record = StepRecord(
            step=self.steps_done,
            loss_manual=float(loss_m),
            loss_autograd=float(loss_a),
            grad_abs_diff=grad_abs,
            grad_rel_diff=grad_rel,
            param_abs_diff=param_abs,
            grad_norm_manual=norm_m,
            grad_norm_autograd=norm_a,
        )
        self.agreement.add(record)
        return record

    @torch.no_grad()
    def gradient_scales(self) -> dict[str, Tensor]:
        """S of every parameter for the last `gradients` call (see the module docstring)."""
        return summand_scales(self.manual)

    @torch.no_grad()
    def predict(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Both models' outputs for x, in evaluation mode (running statistics, no dropout)."""
        modes = self.manual.training, self.autograd.training
        self.manual.eval()
        self.autograd.eval()
        try:
            return self.manual.forward(x), self.autograd(x)
        finally:
            self.manual.train(modes[0])
            self.autograd.train(modes[1])

    @torch.no_grad()
    def evaluate(self, x: Tensor, target: Tensor) -> Evaluation:
        """Both models on (x, target) in evaluation mode: outputs and losses."""
        output_m, output_a = self.predict(x)
        return Evaluation(
            output_manual=output_m,
            output_autograd=output_a,
            loss_manual=float(self.manual.loss(output_m, target)),
            loss_autograd=float(self.autograd.loss(output_a, target)),
        )


def manual_model(spec: MLPSpec | NetworkSpec) -> ManualNetwork:
    """The hand-written model a description makes: a `ManualMLP`, or a `ManualSequential`."""
    if isinstance(spec, MLPSpec):
        return ManualMLP(spec)
    from bpdemo.layers import ManualSequential  # the layer kinds build on the core

    return ManualSequential(spec)
