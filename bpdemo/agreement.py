"""How far apart two numbers, two gradients or two models are, and how far apart they may be.

Every measure of agreement bpdemo uses, and its one table of tolerances.

The relative gradient difference of a parameter is measured against the size of the numbers that were
added up to make its gradient, not against the gradient itself:

    relative difference = max |g_manual - g_autograd| / max S,
    S = |delta|^T |a_prev|  for a weight,   S = sum over the batch of |delta|  for a bias

A gradient is a sum over the batch, and rounding errs by about eps * S, however much the terms cancel.
Near a minimum they cancel almost entirely (a bias gradient is a mean residual, close to 0), so dividing
by |g| would report large "differences" that are rounding and nothing else. S >= |g| entry by entry,
so this measure is never stricter than max|g_manual - g_autograd| / max|g|, which `rel_diff` gives.

Tolerances (`TOLERANCES`, relative gradient difference at every step): float64 at or below 1e-10,
float32 at or below 1e-4. Both models do the same arithmetic in a different order, so they differ by rounding only:
about 1e-16 (float64) or 1e-7 (float32) per operation, amplified mildly over a training run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

TOLERANCES: dict[torch.dtype, float] = {torch.float64: 1e-10, torch.float32: 1e-4}
# A hand-written gradient against finite differences (float64, h = 1e-6): their error is about
# h² for the truncation and 1e-16 / h for the rounding, 1e-9 to 1e-10 relative in practice.
FINITE_DIFFERENCE_TOLERANCE = 1e-6
SAME_VALUES = 1e-10  # a forward against its torch function: the same function, rounding apart


def max_abs_diff(a: Tensor, b: Tensor) -> float:
    return float((a.to(torch.float64) - b.to(torch.float64)).abs().max()) if a.numel() else 0.0


def rel_diff(a: Tensor, b: Tensor) -> float:
    """Largest absolute difference relative to the size of the reference `b`.

    max|a - b| / max|b|: 0 when equal, about 1e-16 for float64 rounding, about 1e-7 for float32.
    Elementwise |a - b| / |b| would blow up where a gradient is near zero, so the scale is the
    largest entry of `b` (and the smallest normal number when `b` is all zeros).
    """
    scale = float(b.to(torch.float64).abs().max()) if b.numel() else 0.0
    return max_abs_diff(a, b) / max(scale, torch.finfo(torch.float64).tiny)


def summand_scales(manual) -> dict[str, Tensor]:
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
