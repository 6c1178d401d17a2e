"""Activations and losses: each written once, its derivative beside it, in one registry.

Shapes: `z` (pre-activation), `a` (activation) and `grad_a` (dL/da) are (batch, features); a loss
takes the network's `output` (batch, outputs) and a `target` of the same shape, or (batch,) integer
class labels for `cross_entropy`.

An activation is a pair of rules, as in the backpropagation equations of `bpdemo.manual`:

    forward(z, out=None)              a = f(z)
    backward(grad_a, z, a, out=None)  delta = dL/dz = dL/da * f'(z)   (BP1 at the output, BP2 below)

Both follow torch's `out=` convention: `out=None` returns a new tensor, a tensor given as `out` is
written into and returned (the hand-written model passes buffers it reuses from step to step). The
arguments are never changed. A loss is one rule that returns its value and its gradient together,

    value_and_gradient(output, target) -> (L as a 0-dim tensor, dL/d(output) as a new tensor)

because both share most of their work (the squared errors one difference, cross-entropy one
log-softmax).

Every rule is defined as its `torch.nn.functional` counterpart, edge cases included (relu'(0) = 0,
softplus linear above 20, bce's logarithms clamped at -100), and multiplies in the order torch's own
backward does, so the hand-written and the autograd model agree to rounding (sigmoid's and tanh's
backward bit for bit, tanh's rounding 1 - a^2 once as torch's kernel does). Each entry also
carries the facts other modules need about it (its formulas as text, its largest slope, its name in
scikit-learn, its `torch_fn` for the autograd twin), so that each is written here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

LEAKY_RELU_SLOPE = 0.01
SOFTPLUS_THRESHOLD = 20.0  # as torch.nn.functional.softplus: above it, softplus(z) = z


@dataclass(frozen=True)
class Activation:
    """An activation f, its backward rule, and what is known about it.

    `value_text` and `derivative_text` are a and f'(z) written out for one neuron, with the fields
    {z}, {a} (numbers), {z_factor}, {minus_z}, {a_factor} (numbers as factors of a product: negative
    ones in parentheses); the walk-through of a worked example fills them in.
    """

    name: str
    forward: Callable[..., Tensor]  # (z, out=None) -> a
    backward: Callable[..., Tensor]  # (grad_a, z, a, out=None) -> delta
    torch_fn: Callable[[Tensor], Tensor]  # the same function in differentiable torch
    formula: str  # f(z)
    derivative_formula: str  # f'(z)
    value_text: str
    derivative_text: str
    max_slope: float  # the largest f'(z) can be: how much the layer can pass back, at most
    sklearn: str | None = None  # its name in scikit-learn's MLPs (None: it has none)

    def derivative(self, z: Tensor, a: Tensor) -> Tensor:
        """f'(z) elementwise, (N, out): the backward rule applied to dL/da = 1."""
        return self.backward(torch.ones_like(z), z, a)


# identity: f(z) = z, f'(z) = 1. delta is dL/da itself (nothing to multiply, nothing to copy).
def identity(z: Tensor, out: Tensor | None = None) -> Tensor:
    return z


def identity_backward(grad_a: Tensor, z: Tensor, a: Tensor, out: Tensor | None = None) -> Tensor:
    return grad_a


# sigmoid: f(z) = 1 / (1 + e^-z), f'(z) = f(z) (1 - f(z)) = a (1 - a), at most 1/4
def sigmoid(z: Tensor, out: Tensor | None = None) -> Tensor:
    return torch.sigmoid(z, out=out)


def sigmoid_backward(grad_a: Tensor, z: Tensor, a: Tensor, out: Tensor | None = None) -> Tensor:
    one_minus_a = torch.neg(a, out=out).add_(1)
    return one_minus_a.mul_(grad_a).mul_(a)  # dL/da (1 - a) a, torch's order


# tanh: f'(z) = 1 - tanh(z)^2 = 1 - a^2
def tanh(z: Tensor, out: Tensor | None = None) -> Tensor:
    return torch.tanh(z, out=out)


def tanh_backward(grad_a: Tensor, z: Tensor, a: Tensor, out: Tensor | None = None) -> Tensor:
    # 1 - a·a rounded once, as torch's own kernel does: where a saturates, a² is close to 1, and
    # rounding a² first would lose the digits of the small difference 1 - a²
    ones = torch.ones_like(a) if out is None else out.fill_(1)
    return ones.addcmul_(a, a, value=-1).mul_(grad_a)


# relu: f(z) = max(z, 0), f'(z) = 1 if z > 0 else 0 (0 at z = 0, as torch)
def relu(z: Tensor, out: Tensor | None = None) -> Tensor:
    return torch.clamp_min(z, 0, out=out)


def relu_backward(grad_a: Tensor, z: Tensor, a: Tensor, out: Tensor | None = None) -> Tensor:
    # [z > 0] as 1.0 / 0.0 in z's dtype, written where delta goes: a bool mask would be a new tensor
    derivative = torch.gt(z, 0, out=out) if out is not None else (z > 0).to(z.dtype)
    return derivative.mul_(grad_a)


# leaky_relu: f(z) = z if z > 0 else 0.01 z, f'(z) = 1 if z > 0 else 0.01
def leaky_relu(z: Tensor, out: Tensor | None = None) -> Tensor:
    return torch.where(z > 0, z, z * LEAKY_RELU_SLOPE, out=out)


def leaky_relu_backward(grad_a: Tensor, z: Tensor, a: Tensor, out: Tensor | None = None) -> Tensor:
    return torch.where(z > 0, grad_a, grad_a * LEAKY_RELU_SLOPE, out=out)


# softplus: f(z) = log(1 + e^z), f'(z) = e^z / (1 + e^z) = sigmoid(z); linear above the threshold
def softplus(z: Tensor, out: Tensor | None = None) -> Tensor:
    # the value from torch's own kernel, as tanh's and sigmoid's: log1p(exp(z)) written out rounds
    # differently in the last place, and a float32 sigmoid output within a unit of 1 would turn
    # that into a jump of a whole sample's gradient
    value = F.softplus(z, beta=1.0, threshold=SOFTPLUS_THRESHOLD)
    return value if out is None else out.copy_(value)


def softplus_backward(grad_a: Tensor, z: Tensor, a: Tensor, out: Tensor | None = None) -> Tensor:
    return torch.where(z > SOFTPLUS_THRESHOLD, grad_a, grad_a * torch.sigmoid(z), out=out)


# One activation a block, its facts grouped by line.
# fmt: off
ACTIVATIONS: dict[str, Activation] = {
    act.name: act
    for act in [
        Activation(
            "identity", identity, identity_backward, lambda z: z,
            formula="z", derivative_formula="1",
            value_text="z", derivative_text="1", max_slope=1.0, sklearn="identity",
        ),
        Activation(
            "sigmoid", sigmoid, sigmoid_backward, torch.sigmoid,
            formula="1/(1+e^-z)", derivative_formula="a(1-a)",
            value_text="1/(1 + e^{minus_z})", derivative_text="a(1 − a) = {a}·(1 − {a})",
            max_slope=0.25, sklearn="logistic",
        ),
        Activation(
            "tanh", tanh, tanh_backward, torch.tanh,
            formula="tanh(z)", derivative_formula="1-a^2",
            value_text="tanh({z})", derivative_text="1 − a² = 1 − {a_factor}²",
            max_slope=1.0, sklearn="tanh",
        ),
        Activation(
            "relu", relu, relu_backward, F.relu,
            formula="max(z,0)", derivative_formula="[z>0]",
            value_text="max({z}, 0)", derivative_text="[z > 0]", max_slope=1.0, sklearn="relu",
        ),
        Activation(
            "leaky_relu", leaky_relu, leaky_relu_backward,
            lambda z: F.leaky_relu(z, LEAKY_RELU_SLOPE),
            formula="max(z,0.01z)", derivative_formula="1 or 0.01",
            value_text="max({z}, 0.01·{z_factor})", derivative_text="1 if z > 0, else 0.01",
            max_slope=1.0,
        ),
        Activation(
            "softplus", softplus, softplus_backward,
            lambda z: F.softplus(z, beta=1.0, threshold=SOFTPLUS_THRESHOLD),
            formula="log(1+e^z)", derivative_formula="sigmoid(z)",
            value_text="ln(1 + e^{z_factor})", derivative_text="σ(z)", max_slope=1.0,
        ),
    ]
}
# fmt: on


TargetKind = Literal["numbers", "classes", "probabilities"]


@dataclass(frozen=True)
class Loss:
    """A loss L(output, target) and its gradient dL/d(output), where the backward pass starts.

    `targets`: what a target is: `numbers` (real values shaped like the output), `classes` (integer
    labels, one per row) or `probabilities` (values in [0, 1] shaped like the output).
    `reduction`: `mean` or `sum` over the batch (data-parallel training weighs shards by it).

    `description` says in a few words what the loss does ("softmax and cross-entropy"), for
    headers and figures; "" leaves the name alone.

    The texts write the loss out with its numbers: `term_text` is one term (one output of one
    sample, or one sample for `classes`), `total_text` how the terms make L, `gradient_text`
    dL/d(output k) of one sample, `sample_gradient_text` dL/d(output) of a batch of one sample, as
    a vector. Their fields: {a} the output, {y} the target (the true class for `classes`),
    {one_minus_y}, {p} the probability (of class k, or of the true class in `term_text`), {k},
    {hit} (1 if k is the true class, else 0), {terms}, {rows} (samples), {numel} (outputs in all).
    None: the numbers are shown without a formula.
    """

    name: str
    value_and_gradient: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
    torch_fn: Callable[[Tensor, Tensor], Tensor]  # the same loss in differentiable torch
    formula: str
    gradient_formula: str
    targets: TargetKind = "numbers"
    reduction: Literal["mean", "sum"] = "mean"
    description: str = ""
    term_text: str | None = None
    total_text: str = "{terms}"
    gradient_text: str | None = None
    sample_gradient_text: str | None = None

    @property
    def classification(self) -> bool:
        """True when targets are integer class labels."""
        return self.targets == "classes"

    @property
    def label(self) -> str:
        """Its name, and what it does if it says: "cross_entropy (softmax and cross-entropy)"."""
        return f"{self.name} ({self.description})" if self.description else self.name

    def one_sample_text(self, **fields) -> str | None:
        """L of one sample written out: `term_text` and `total_text` filled with `fields` (numbers,
        or symbols such as p("cat")); None if the loss has no `term_text`. For `classes` the one
        term is the true class's; otherwise pass a single output (numel 1)."""
        if self.term_text is None:
            return None
        fields = {"rows": 1, "numel": 1, **fields}
        counts = {"rows": fields.pop("rows"), "numel": fields.pop("numel")}
        return loss_total(self.total_text, [self.term_text.format(**fields, **counts)], counts)

    def value(self, output: Tensor, target: Tensor) -> Tensor:
        return self.value_and_gradient(output, target)[0]

    def gradient(self, output: Tensor, target: Tensor) -> Tensor:
        return self.value_and_gradient(output, target)[1]


# mse: L = mean((y_hat - y)^2) over every element, dL/dy_hat = 2 (y_hat - y) / numel
def mse(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    error = output - target  # shared by both; the gradient then takes it over
    return error.square().mean(), error.mul_(2.0 / output.numel())


# half_sse: L = 1/2 sum((y_hat - y)^2), dL/dy_hat = y_hat - y (the textbook form)
def half_sse(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    error = output - target
    return 0.5 * error.square().sum(), error


# sse: L = sum((y_hat - y)^2), dL/dy_hat = 2 (y_hat - y)
def sse(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    error = output - target
    return error.square().sum(), error.mul_(2.0)


# cross_entropy over logits z: p = softmax(z), L = mean_n(-log p[n, y_n]).
# Softmax and cross-entropy fused: dL/dz = (p - onehot(y)) / N, no softmax Jacobian needed.
def cross_entropy(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    column = labels.view(-1, 1)
    log_p = torch.log_softmax(logits, dim=1)  # log p = z - logsumexp(z), row by row
    loss = log_p.gather(1, column).mean().neg_()  # L = mean_n(-log p[n, y_n])
    grad = log_p.exp_()  # p = softmax(z), in the same tensor
    grad.scatter_(1, column, -1.0, reduce="add")  # p - onehot(y)
    return loss, grad.div_(len(labels))


# bce: L = -mean(y log p + (1 - y) log(1 - p)), each log clamped at -100 as torch does;
# dL/dp = (p - y) / (p (1 - p)) / numel, with p (1 - p) held above 1e-12 as torch does: its kernel's
# 1e-12 is a float32 constant, 9.99999996e-13, in float64 as well
BCE_LOG_FLOOR = -100.0
BCE_EPS = float(torch.tensor(1e-12, dtype=torch.float32))


def bce(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    log_p = torch.log(output).clamp_min(BCE_LOG_FLOOR)
    log_1mp = torch.log1p(-output).clamp_min(BCE_LOG_FLOOR)
    value = -(target * log_p + (1 - target) * log_1mp).mean()
    denominator = ((1 - output) * output).clamp_min(BCE_EPS)
    return value, (output - target) / denominator / output.numel()


# fmt: off
LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in [
        Loss(
            "mse", mse, F.mse_loss, "mean((ŷ-y)²)", "2(ŷ-y)/numel",
            description="mean squared error",
            term_text="({a} − {y})²", total_text="({terms})/{numel}",
            gradient_text="2(ŷ − y)/numel = 2·({a} − {y})/{numel}",
            sample_gradient_text="2(ŷ − y)/numel",
        ),
        Loss(
            "half_sse", half_sse, lambda out, y: 0.5 * F.mse_loss(out, y, reduction="sum"),
            "½·sum((ŷ-y)²)", "ŷ-y", reduction="sum",
            description="half the sum of squared errors",
            term_text="({a} − {y})²", total_text="½·({terms})", gradient_text="ŷ − y = {a} − {y}",
            sample_gradient_text="ŷ − y",
        ),
        Loss(
            "sse", sse, lambda out, y: F.mse_loss(out, y, reduction="sum"),
            "sum((ŷ-y)²)", "2(ŷ-y)", reduction="sum", description="sum of squared errors",
            term_text="({a} − {y})²", gradient_text="2(ŷ − y) = 2·({a} − {y})",
            sample_gradient_text="2(ŷ − y)",
        ),
        Loss(
            "cross_entropy", cross_entropy, F.cross_entropy,
            "mean(-log softmax(z)[y])", "(softmax(z)-onehot(y))/N", targets="classes",
            description="softmax and cross-entropy",
            term_text="ln({p})", total_text="−({terms})/{rows}",
            gradient_text="(p[{k}] − [y = {k}])/N = ({p} − {hit})/{rows}",
            sample_gradient_text="p − onehot({y})",
        ),
        Loss(
            "bce", bce, F.binary_cross_entropy,
            "-mean(y log p + (1-y) log(1-p))", "(p-y)/(p(1-p))/numel", targets="probabilities",
            description="binary cross-entropy",
            term_text="−({y}·ln({a}) + {one_minus_y}·ln(1 − {a}))", total_text="({terms})/{numel}",
            gradient_text="(ŷ − y)/(ŷ(1 − ŷ))/numel = ({a} − {y})/({a}·(1 − {a}))/{numel}",
            sample_gradient_text="(ŷ − y)/(ŷ(1 − ŷ))/numel",
        ),
    ]
}
# fmt: on


def loss_total(template: str, terms: list[str], counts: dict[str, int]) -> str:
    """A loss's `total_text` filled in with its terms and counts ({rows}, {numel}).

    A division by a count of 1 is left out, and with it the parentheses around a single term:
    one sample's cross-entropy is −ln(p), not −(ln(p))/1. Long sums show their first terms.
    """
    for name, count in counts.items():
        divided = f"({{terms}})/{{{name}}}"
        if count == 1 and divided in template:
            template = template.replace(divided, "{terms}" if len(terms) == 1 else "({terms})")
    return template.format(terms=written_sum(terms), **counts)


SHOWN_TERMS = 8  # terms written out in one sum before "..."


def written_sum(terms: list[str]) -> str:
    """`a + b + c`, or the first terms of a long sum and how many more there are."""
    if len(terms) > SHOWN_TERMS:
        terms = [*terms[: SHOWN_TERMS - 1], f"… ({len(terms) - SHOWN_TERMS + 1} more terms)"]
    return " + ".join(terms)


# -- dropout's mask, drawn alike by the hand-written layer and its twin ------------------------------
def draw_mask(x: Tensor, p: float, generator: torch.Generator) -> Tensor:
    """1 / (1 - p) where a unit is kept (probability 1 - p), 0 where it is dropped; shaped like x."""
    kept = torch.empty(x.shape, dtype=x.dtype).bernoulli_(1 - p, generator=generator)
    return kept.div_(1 - p).to(x.device)
