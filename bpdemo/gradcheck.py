"""A third, independent opinion: gradients by central finite differences, and how far apart two are.

    dL/dp ≈ (L(p + h) - L(p - h)) / (2 h)       for every parameter element p, in float64

Uses only forward passes, so it checks the backward pass of either model without trusting it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bpdemo.manual import ManualMLP
from bpdemo.spec import MLPSpec


@torch.no_grad()
def finite_difference_grads(
    spec: MLPSpec,
    params: dict[str, Tensor],
    x: Tensor,
    target: Tensor,
    step: float = 1e-6,
) -> dict[str, Tensor]:
    """Central-difference gradient of the loss at `params`, by parameter name, in float64.

    Builds its own float64 hand-written model from `spec` and `params`; `x` and `target` are
    cast to float64 (class labels are left as they are).
    """
    spec64 = spec.with_parameters(params, dtype=torch.float64)
    model = ManualMLP(spec64)
    x = x.to(torch.float64)
    if target.is_floating_point():
        target = target.to(torch.float64)

    def loss() -> float:
        return float(model.loss(model.forward(x), target))

    grads = {}
    for name, param in model.named_parameters():
        grad = torch.zeros_like(param)
        flat_param, flat_grad = param.view(-1), grad.view(-1)
        for i in range(flat_param.numel()):
            original = float(flat_param[i])
            flat_param[i] = original + step
            loss_plus = loss()
            flat_param[i] = original - step
            loss_minus = loss()
            flat_param[i] = original
            flat_grad[i] = (loss_plus - loss_minus) / (2 * step)
        grads[name] = grad
    return grads


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
