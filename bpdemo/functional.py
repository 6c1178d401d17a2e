"""Activations and losses, each written next to its derivative (hand-written, no autograd).

Shapes: `z` (pre-activation) and `a` (activation) are (batch, features); a loss takes the network's
`output` (batch, outputs) and a `target` of the same shape, or (batch,) integer class labels for
`cross_entropy`.

Every function here is defined exactly as its `torch.nn.functional` counterpart, including its
edge cases (relu'(0) = 0, softplus linear above 20, log clamped at -100 in bce), so the hand-written
model and the autograd model compute the same function and agree to rounding.

The backward functions follow Nielsen's notation: given dL/da they return delta = dL/dz = dL/da * f'(z)
(BP1 at the output layer, the right-hand factor of BP2 elsewhere). They may reuse `out` as a buffer.
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
    """An activation f and its backward rule delta = grad_a * f'(z)."""

    name: str
    forward: Callable[[Tensor], Tensor]
    backward: Callable[[Tensor, Tensor, Tensor], Tensor]  # (grad_a, z, a) -> delta
    formula: str
    derivative_formula: str


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


# tanh: f'(z) = 1 - tanh(z)^2 = 1 - a^2
def tanh(z: Tensor) -> Tensor:
    return torch.tanh(z)


def tanh_backward(grad_a: Tensor, z: Tensor, a: Tensor) -> Tensor:
    return grad_a * (1 - a * a)


# relu: f(z) = max(z, 0), f'(z) = 1 if z > 0 else 0 (0 at z = 0, as torch)
def relu(z: Tensor) -> Tensor:
    return torch.clamp_min(z, 0)


def relu_backward(grad_a: Tensor, z: Tensor, a: Tensor) -> Tensor:
    return grad_a * (z > 0)


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
        Activation("sigmoid", sigmoid, sigmoid_backward, "1/(1+e^-z)", "a(1-a)"),
        Activation("tanh", tanh, tanh_backward, "tanh(z)", "1-a^2"),
        Activation("relu", relu, relu_backward, "max(z,0)", "[z>0]"),
        Activation("leaky_relu", leaky_relu, leaky_relu_backward, "max(z,0.01z)", "1 or 0.01"),
        Activation("softplus", softplus, softplus_backward, "log(1+e^z)", "sigmoid(z)"),
    ]
}


@dataclass(frozen=True)
class Loss:
    """A loss L(output, target) and its gradient dL/d(output), the start of the backward pass."""

    name: str
    value: Callable[[Tensor, Tensor], Tensor]
    gradient: Callable[[Tensor, Tensor], Tensor]
    formula: str
    gradient_formula: str
    classification: bool = False  # targets are integer class labels


# mse: L = mean((y_hat - y)^2) over every element, dL/dy_hat = 2 (y_hat - y) / numel
def mse(output: Tensor, target: Tensor) -> Tensor:
    return (output - target).square().mean()


def mse_gradient(output: Tensor, target: Tensor) -> Tensor:
    return (output - target) * (2.0 / output.numel())


# half_sse: L = 1/2 sum((y_hat - y)^2), dL/dy_hat = y_hat - y (the textbook form)
def half_sse(output: Tensor, target: Tensor) -> Tensor:
    return 0.5 * (output - target).square().sum()


def half_sse_gradient(output: Tensor, target: Tensor) -> Tensor:
    return output - target


# sse: L = sum((y_hat - y)^2), dL/dy_hat = 2 (y_hat - y)
def sse(output: Tensor, target: Tensor) -> Tensor:
    return (output - target).square().sum()


def sse_gradient(output: Tensor, target: Tensor) -> Tensor:
    return 2.0 * (output - target)


# cross_entropy over logits z: p = softmax(z), L = mean_n(-log p[n, y_n]) = mean(logsumexp(z) - z[y]).
# Softmax and cross-entropy fused: dL/dz = (p - onehot(y)) / N, no softmax Jacobian needed.
def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    picked = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    return (torch.logsumexp(logits, dim=1) - picked).mean()


def cross_entropy_gradient(logits: Tensor, labels: Tensor) -> Tensor:
    grad = torch.softmax(logits, dim=1)
    grad[torch.arange(len(labels), device=labels.device), labels] -= 1
    return grad.div_(len(labels))


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
        Loss("mse", mse, mse_gradient, "mean((ŷ-y)²)", "2(ŷ-y)/numel"),
        Loss("half_sse", half_sse, half_sse_gradient, "½·sum((ŷ-y)²)", "ŷ-y"),
        Loss("sse", sse, sse_gradient, "sum((ŷ-y)²)", "2(ŷ-y)"),
        Loss(
            "cross_entropy",
            cross_entropy,
            cross_entropy_gradient,
            "mean(-log softmax(z)[y])",
            "(softmax(z)-onehot(y))/N",
            classification=True,
        ),
        Loss("bce", bce, bce_gradient, "-mean(y log p + (1-y) log(1-p))", "(p-y)/(p(1-p))/numel"),
    ]
}
