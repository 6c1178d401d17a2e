"""The comparison engine: both models trained on the same mini-batches, compared at every step.

At each step it records both losses and, for every parameter, the largest absolute and relative
difference between the hand-written and the autograd gradient, the norm of each, and the largest
difference between the parameters after the update. The models are never re-synchronised: any
disagreement accumulates and shows.

The relative gradient difference of a parameter is measured against the size of the numbers that were
added up to make its gradient, not against the gradient itself:

    relative difference = max |g_manual - g_autograd| / max S,
    S = |delta|^T |a_prev|  for a weight,   S = sum over the batch of |delta|  for a bias

A gradient is a sum over the batch, and rounding errs by about eps * S, however much the terms cancel.
Near a minimum they cancel almost entirely (a bias gradient is a mean residual, close to 0), so dividing
by |g| would report large "differences" that are rounding and nothing else. S >= |g| entry by entry,
so this measure is never stricter than max|g_manual - g_autograd| / max|g|, which `rel_diff` gives.

Tolerances (relative gradient difference at every step): float64 at or below 1e-10, float32 at or
below 1e-4. Both models do the same arithmetic in a different order, so they differ by rounding only:
about 1e-16 (float64) or 1e-7 (float32) per operation, amplified mildly over a training run.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from bpdemo.autograd_mlp import AutogradNetwork, twin_of
from bpdemo.gradcheck import max_abs_diff
from bpdemo.manual import ManualMLP, ManualNetwork
from bpdemo.optim import OptimizerSpec
from bpdemo.spec import MLPSpec, NetworkSpec

TOLERANCES: dict[torch.dtype, float] = {torch.float64: 1e-10, torch.float32: 1e-4}


@dataclass
class StepRecord:
    """What one training step of both models looked like. Norms and differences are floats."""

    step: int
    loss_manual: float
    loss_autograd: float
    grad_abs_diff: dict[str, float]
    grad_rel_diff: dict[str, float]
    param_abs_diff: dict[str, float]
    grad_norm_manual: dict[str, float]
    grad_norm_autograd: dict[str, float]

    @property
    def finite(self) -> bool:
        """Both losses are finite numbers (not inf, not NaN)."""
        return math.isfinite(self.loss_manual) and math.isfinite(self.loss_autograd)

    @property
    def max_abs_grad_diff(self) -> float:
        return max(self.grad_abs_diff.values())

    @property
    def max_rel_grad_diff(self) -> float:
        return max(self.grad_rel_diff.values())

    @property
    def max_abs_param_diff(self) -> float:
        return max(self.param_abs_diff.values())

    def row(self) -> dict[str, float]:
        """A flat row for `steps.csv`: the losses and the maxima over parameters."""
        return {
            "step": self.step,
            "loss_manual": self.loss_manual,
            "loss_autograd": self.loss_autograd,
            "max_abs_grad_diff": self.max_abs_grad_diff,
            "max_rel_grad_diff": self.max_rel_grad_diff,
            "max_abs_param_diff": self.max_abs_param_diff,
        }


@dataclass
class Agreement:
    """The maxima over every step compared so far, and whether they are within tolerance."""

    dtype: str
    tolerance: float
    steps_compared: int = 0
    max_abs_grad_diff: float = 0.0
    max_rel_grad_diff: float = 0.0
    max_abs_loss_diff: float = 0.0
    max_abs_param_diff: float = 0.0

    @property
    def within_tolerance(self) -> bool:
        return self.max_rel_grad_diff <= self.tolerance

    def add(self, record: StepRecord) -> None:
        self.steps_compared += 1
        self.max_abs_grad_diff = max(self.max_abs_grad_diff, record.max_abs_grad_diff)
        self.max_rel_grad_diff = max(self.max_rel_grad_diff, record.max_rel_grad_diff)
        self.max_abs_param_diff = max(self.max_abs_param_diff, record.max_abs_param_diff)
        loss_diff = abs(record.loss_manual - record.loss_autograd)
        self.max_abs_loss_diff = max(self.max_abs_loss_diff, loss_diff)

    def as_dict(self) -> dict:
        return {**asdict(self), "within_tolerance": self.within_tolerance}


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


def summand_scales(manual: ManualNetwork) -> dict[str, Tensor]:
    """Per parameter, the sum of the absolute values of the terms its last gradient added up.

    Read from the hand-written model's cache of its last pass: a weight's gradient is
    dL/dW = delta^T a_prev (BP4), so S = |delta|^T |a_prev|, shaped like W; a bias's is
    dL/db = sum_n delta (BP3), so S = sum_n |delta|, shaped like b. Each layer says its own
    (`summand_scales()`); a layer that does not is measured against its gradient itself.
    """
    scales: dict[str, Tensor] = {}
    for i, layer in enumerate(manual.layers):
        own = layer.summand_scales() if hasattr(layer, "summand_scales") else {}
        for local in layer.parameter_names:
            grad = getattr(layer, f"grad_{local}")
            scales[f"layers.{i}.{local}"] = own.get(local, grad.abs())
    return scales


def relative_to(abs_diff: float, scale: Tensor) -> float:
    """`abs_diff / max(scale)`; 0 when both are 0 (nothing was added, nothing differs)."""
    largest = float(scale.max()) if scale.numel() else 0.0
    if largest == 0.0:
        return 0.0 if abs_diff == 0.0 else float("inf")
    return abs_diff / largest
