"""Activations and losses, each written next to its derivative (hand-written, no autograd).

Shapes: `z` (pre-activation) and `a` (activation) are (batch, features); a loss takes the network's
`output` (batch, outputs) and a `target` of the same shape, or (batch,) integer class labels for
`cross_entropy`.

Every function here is defined exactly as its `torch.nn.functional` counterpart, including its
edge cases (relu'(0) = 0, softplus linear above 20, log clamped at -100 in bce), so the hand-written
model and the autograd model compute the same function and agree to rounding.

The backward functions follow Nielsen's notation: given dL/da they return delta = dL/dz = dL/da * f'(z)
(BP1 at the output layer, the right-hand factor of BP2 elsewhere). They return a new tensor and leave
their arguments alone.

The fast path (used by `ManualMLP`, see the README's "Performance" section): for relu, sigmoid and tanh,
each rule also has a twin that works in buffers the model allocates once, `*_into(z, out)` for the
forward and `*_backward_(grad_a, z, a, scratch)`, which overwrites `grad_a` with delta (`scratch`: a
work buffer shaped like `z`). The twins do the same operations in the same order, so they give the
same bits as the plain rules (tests/test_bench.py checks it). identity needs no twin (it allocates
nothing); leaky_relu and softplus have none, and the model uses their plain rules. A loss may also
give `value_and_gradient`, both computed together: the squared errors share one difference,
cross_entropy one log-softmax.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

LEAKY_RELU_SLOPE = 0.01
SOFTPLUS_THRESHOLD = 20.0  # as torch.nn.functional.softplus: above it, softplus(z) = z


@dataclass(frozen=True)
class Activation:
    """An activation f and its backward rule delta = grad_a * f'(z).

    `forward_into` and `backward_in_place` are the optional buffer-reusing twins of `forward` and
    `backward` (same numbers, no new tensors); None means "use the plain rule".
    """

    name: str
    forward: Callable[[Tensor], Tensor]
    backward: Callable[[Tensor, Tensor, Tensor], Tensor]  # (grad_a, z, a) -> delta
    formula: str
    derivative_formula: str
    forward_into: Callable[[Tensor, Tensor], Tensor] | None = None  # (z, out) -> out = f(z)
    # (grad_a, z, a, scratch) -> grad_a, overwritten with delta
    backward_in_place: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor] | None = None


# identity: f(z) = z, f'(z) = 1
def identity(z: Tensor) -> Tensor:
    return z


def identity_backward(grad_a: Tensor, z: Tensor, a: Tensor) -> Tensor:
    return grad_a


# sigmoid: f(z) = 1 / (1 + e^-z), f'(z) = f(z) (1 - f(z)) = a (1 - a), at most 1/4
def sigmoid(z: Tensor) -> Tensor:
    return torch.sigmoid(z)


def sigmoid_backward(grad_a: Tensor, z: Tensor, a: Tensor) -> Tensor:
    return grad_a * (1 - a) * a


def sigmoid_into(z: Tensor, out: Tensor) -> Tensor:
    return torch.sigmoid(z, out=out)


def sigmoid_backward_(grad_a: Tensor, z: Tensor, a: Tensor, scratch: Tensor) -> Tensor:
    one_minus_a = torch.neg(a, out=scratch).add_(1)
    return grad_a.mul_(one_minus_a).mul_(a)


# tanh: f'(z) = 1 - tanh(z)^2 = 1 - a^2
def tanh(z: Tensor) -> Tensor:
    return torch.tanh(z)


def tanh_backward(grad_a: Tensor, z: Tensor, a: Tensor) -> Tensor:
    return grad_a * (1 - a * a)


def tanh_into(z: Tensor, out: Tensor) -> Tensor:
    return torch.tanh(z, out=out)


def tanh_backward_(grad_a: Tensor, z: Tensor, a: Tensor, scratch: Tensor) -> Tensor:
    one_minus_a_squared = torch.mul(a, a, out=scratch).neg_().add_(1)
    return grad_a.mul_(one_minus_a_squared)


# relu: f(z) = max(z, 0), f'(z) = 1 if z > 0 else 0 (0 at z = 0, as torch)
def relu(z: Tensor) -> Tensor:
    return torch.clamp_min(z, 0)


def relu_backward(grad_a: Tensor, z: Tensor, a: Tensor) -> Tensor:
    return grad_a * (z > 0)


def relu_into(z: Tensor, out: Tensor) -> Tensor:
    return torch.clamp_min(z, 0, out=out)


def relu_backward_(grad_a: Tensor, z: Tensor, a: Tensor, scratch: Tensor) -> Tensor:
    # [z > 0] as 1.0 / 0.0 in z's dtype: a bool mask would be converted to it in a new tensor
    derivative = torch.gt(z, 0, out=scratch)
    return grad_a.mul_(derivative)


# leaky_relu: f(z) = z if z > 0 else 0.01 z, f'(z) = 1 if z > 0 else 0.01
def leaky_relu(z: Tensor) -> Tensor:
    return torch.where(z > 0, z, z * LEAKY_RELU_SLOPE)


def leaky_relu_backward(grad_a: Tensor, z: Tensor, a: Tensor) -> Tensor:
    return torch.where(z > 0, grad_a, grad_a * LEAKY_RELU_SLOPE)


# softplus: f(z) = log(1 + e^z), f'(z) = e^z / (1 + e^z) = sigmoid(z); linear above the threshold
def softplus(z: Tensor) -> Tensor:
    return torch.where(z > SOFTPLUS_THRESHOLD, z, torch.log1p(torch.exp(z)))


def softplus_backward(grad_a: Tensor, z: Tensor, a: Tensor) -> Tensor:
    return torch.where(z > SOFTPLUS_THRESHOLD, grad_a, grad_a * torch.sigmoid(z))


ACTIVATIONS: dict[str, Activation] = {
    act.name: act
    for act in [
        Activation("identity", identity, identity_backward, "z", "1"),
        Activation(
            "sigmoid",
            sigmoid,
            sigmoid_backward,
            "1/(1+e^-z)",
            "a(1-a)",
            sigmoid_into,
            sigmoid_backward_,
        ),
        Activation("tanh", tanh, tanh_backward, "tanh(z)", "1-a^2", tanh_into, tanh_backward_),
        Activation("relu", relu, relu_backward, "max(z,0)", "[z>0]", relu_into, relu_backward_),
        Activation("leaky_relu", leaky_relu, leaky_relu_backward, "max(z,0.01z)", "1 or 0.01"),
        Activation("softplus", softplus, softplus_backward, "log(1+e^z)", "sigmoid(z)"),
    ]
}


@dataclass(frozen=True)
class Loss:
    """A loss L(output, target) and its gradient dL/d(output), the start of the backward pass.

    `gradient` returns a new tensor (the backward pass overwrites it with delta). The optional
    `value_and_gradient` computes both in one go, (L, dL/d(output)), for the training step.
    """

    name: str
    value: Callable[[Tensor, Tensor], Tensor]
    gradient: Callable[[Tensor, Tensor], Tensor]
    formula: str
    gradient_formula: str
    classification: bool = False  # targets are integer class labels
    value_and_gradient: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None


# mse: L = mean((y_hat - y)^2) over every element, dL/dy_hat = 2 (y_hat - y) / numel
def mse(output: Tensor, target: Tensor) -> Tensor:
    return (output - target).square().mean()


def mse_gradient(output: Tensor, target: Tensor) -> Tensor:
    return (output - target) * (2.0 / output.numel())


def mse_value_and_gradient(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    error = output - target  # computed once for both; the gradient then takes it over
    return error.square().mean(), error.mul_(2.0 / output.numel())


# half_sse: L = 1/2 sum((y_hat - y)^2), dL/dy_hat = y_hat - y (the textbook form)
def half_sse(output: Tensor, target: Tensor) -> Tensor:
    return 0.5 * (output - target).square().sum()


def half_sse_gradient(output: Tensor, target: Tensor) -> Tensor:
    return output - target


def half_sse_value_and_gradient(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    error = output - target
    return 0.5 * error.square().sum(), error


# sse: L = sum((y_hat - y)^2), dL/dy_hat = 2 (y_hat - y)
def sse(output: Tensor, target: Tensor) -> Tensor:
    return (output - target).square().sum()


def sse_gradient(output: Tensor, target: Tensor) -> Tensor:
    return 2.0 * (output - target)


def sse_value_and_gradient(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    error = output - target
    return error.square().sum(), error.mul_(2.0)


# cross_entropy over logits z: p = softmax(z), L = mean_n(-log p[n, y_n]) = mean(logsumexp(z) - z[y]).
# Softmax and cross-entropy fused: dL/dz = (p - onehot(y)) / N, no softmax Jacobian needed.
def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    picked = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    return (torch.logsumexp(logits, dim=1) - picked).mean()


def cross_entropy_gradient(logits: Tensor, labels: Tensor) -> Tensor:
    grad = torch.softmax(logits, dim=1)
    grad[torch.arange(len(labels), device=labels.device), labels] -= 1
    return grad.div_(len(labels))


def cross_entropy_value_and_gradient(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Both of the above from one log-softmax, log p = z - logsumexp(z); equal to them up to rounding.

    Seven tensor operations, about half as many as the two rules apart: on a small batch each costs
    more than its arithmetic, so their number is what matters.
    """
    column = labels.view(-1, 1)
    log_p = torch.log_softmax(logits, dim=1)  # log p = z - logsumexp(z), row by row
    loss = log_p.gather(1, column).mean().neg_()  # L = mean_n(-log p[n, y_n])
    grad = log_p.exp_()  # p = softmax(z), in the same tensor
    grad.scatter_(1, column, -1.0, reduce="add")  # p - onehot(y)
    return loss, grad.div_(len(labels))


# bce: L = -mean(y log p + (1 - y) log(1 - p)), each log clamped at -100 as torch does;
# dL/dp = (p - y) / (p (1 - p)) / numel, with p (1 - p) held above 1e-12 as torch does
BCE_LOG_FLOOR = -100.0
BCE_EPS = 1e-12


def bce(output: Tensor, target: Tensor) -> Tensor:
    log_p = torch.log(output).clamp_min(BCE_LOG_FLOOR)
    log_1mp = torch.log1p(-output).clamp_min(BCE_LOG_FLOOR)
    return -(target * log_p + (1 - target) * log_1mp).mean()


def bce_gradient(output: Tensor, target: Tensor) -> Tensor:
    denominator = ((1 - output) * output).clamp_min(BCE_EPS)
    return (output - target) / denominator / output.numel()


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in [
        Loss(
            "mse",
            mse,
            mse_gradient,
            "mean((ŷ-y)²)",
            "2(ŷ-y)/numel",
            value_and_gradient=mse_value_and_gradient,
        ),
        Loss(
            "half_sse",
            half_sse,
            half_sse_gradient,
            "½·sum((ŷ-y)²)",
            "ŷ-y",
            value_and_gradient=half_sse_value_and_gradient,
        ),
        Loss(
            "sse",
            sse,
            sse_gradient,
            "sum((ŷ-y)²)",
            "2(ŷ-y)",
            value_and_gradient=sse_value_and_gradient,
        ),
        Loss(
            "cross_entropy",
            cross_entropy,
            cross_entropy_gradient,
            "mean(-log softmax(z)[y])",
            "(softmax(z)-onehot(y))/N",
            classification=True,
            value_and_gradient=cross_entropy_value_and_gradient,
        ),
        Loss("bce", bce, bce_gradient, "-mean(y log p + (1-y) log(1-p))", "(p-y)/(p(1-p))/numel"),
    ]
}
