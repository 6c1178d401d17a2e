"""Independent opinions on a gradient: central finite differences, autograd, and how far apart two are.

    dL/dp ≈ (L(p + h) - L(p - h)) / (2 h)       for every element p, in float64

Finite differences use only forward passes, so they check any backward pass without trusting it.
`check_gradients` puts a hand-written backward (or autograd itself) against them, for any function of
tensors, a hand-written layer or a whole model, in the spirit of CS231n's `eval_numerical_gradient`
and `torch.autograd.gradcheck`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from bpdemo.agreement import FINITE_DIFFERENCE_TOLERANCE, TOLERANCES, max_abs_diff, rel_diff


@torch.no_grad()
def finite_difference_grads(spec, params: dict[str, Tensor], x: Tensor, target: Tensor, step=1e-6):
    """Central-difference gradient of an `MLPSpec` network's loss at `params`, by parameter name.

    Builds its own float64 hand-written model from `spec` and `params`; `x` and `target` are
    cast to float64 (class labels are left as they are).
    """
    from bpdemo.manual import ManualMLP

    model = ManualMLP(spec.with_parameters(params, dtype=torch.float64))
    x = x.to(torch.float64)
    if target.is_floating_point():
        target = target.to(torch.float64)

    def loss() -> float:
        return float(model.loss(model.forward(x), target))

    return {name: numeric_gradient(loss, param, step) for name, param in model.named_parameters()}


@torch.no_grad()
def numeric_gradient(value: Callable[[], float], tensor: Tensor, step: float = 1e-6) -> Tensor:
    """d value / d tensor by central differences, nudging `tensor` in place (and restoring it)."""
    grad = torch.zeros_like(tensor, dtype=torch.float64)
    flat, flat_grad = tensor.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        original = float(flat[i])
        flat[i] = original + step
        plus = value()
        flat[i] = original - step
        minus = value()
        flat[i] = original
        flat_grad[i] = (plus - minus) / (2 * step)
    return grad


# -- check_gradients -----------------------------------------------------------------------------------
@dataclass
class GradientRow:
    """One gradient against one reference: where they differ most, and whether that is close enough."""

    name: str  # "input 0", "input x", "parameter layers.0.weight"
    reference: str  # "finite differences" or "autograd"
    shape: tuple[int, ...]
    max_abs_diff: float
    max_rel_diff: float
    tolerance: float
    worst_index: tuple[int, ...]
    value: float  # the gradient being checked, at the worst index
    expected: float  # the reference, at the worst index

    @property
    def passed(self) -> bool:
        return self.max_rel_diff <= self.tolerance


@dataclass
class GradientReport:
    """The result of `check_gradients`: one row per gradient and reference; `passed` if all pass."""

    checked: str  # what was checked: "a hand-written backward", "autograd", "a layer", "a model"
    dtype: torch.dtype
    rows: list[GradientRow] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    @property
    def failures(self) -> list[GradientRow]:
        return [row for row in self.rows if not row.passed]

    def __str__(self) -> str:
        header = ("gradient", "against", "shape", "max abs diff", "max rel diff", "tolerance", "")
        lines = [
            (
                row.name,
                row.reference,
                "x".join(map(str, row.shape)) or "scalar",
                f"{row.max_abs_diff:.2e}",
                f"{row.max_rel_diff:.2e}",
                f"{row.tolerance:.0e}",
                "pass"
                if row.passed
                else f"FAIL at [{','.join(map(str, row.worst_index))}]: "
                f"{row.value:.6g} against {row.expected:.6g}",
            )
            for row in self.rows
        ]
        widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)]
        verdict = "passed" if self.passed else f"FAILED ({len(self.failures)} of {len(self.rows)})"
        title = f"gradient check of {self.checked} ({str(self.dtype).removeprefix('torch.')}): "
        table = [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in (header, *lines)
        ]
        return "\n".join([title + verdict, *table])


def compare(name: str, reference: str, value: Tensor, expected: Tensor, tolerance: float):
    """A `GradientRow`: `value` against `expected`, relative to the reference's largest entry."""
    difference = (value.to(torch.float64) - expected.to(torch.float64)).abs()
    worst = divmod_index(int(difference.argmax()), tuple(value.shape)) if value.numel() else ()
    return GradientRow(
        name=name,
        reference=reference,
        shape=tuple(value.shape),
        max_abs_diff=max_abs_diff(value, expected),
        max_rel_diff=rel_diff(value, expected),
        tolerance=tolerance,
        worst_index=worst,
        value=float(value[worst]) if value.numel() else math.nan,
        expected=float(expected[worst]) if value.numel() else math.nan,
    )


def divmod_index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The index in a tensor of `shape` of its `flat`-th element (row-major)."""
    index = []
    for size in reversed(shape):
        flat, position = divmod(flat, size)
        index.append(position)
    return tuple(reversed(index))


def check_gradients(
    fn,
    inputs: Tensor | Sequence[Tensor],
    backward: Callable | None = None,
    *,
    upstream: Tensor | None = None,
    step: float = 1e-6,
    tolerance: float | None = None,
    seed: int = 0,
) -> GradientReport:
    """Check a gradient against finite differences (and autograd where it applies).

    fn is one of:
      - a function of tensors, `fn(*inputs) -> Tensor`. Without `backward`, its autograd
        gradient is checked; with `backward(upstream, *inputs) -> one gradient per input` (None
        for an input it does not differentiate, such as class labels), that hand-written backward
        is checked against finite differences and autograd;
      - a hand-written layer (`forward`, `backward`, `parameter_names`; see `bpdemo.layers`):
        dL/dx and every parameter's gradient, against finite differences and its `torch_module()`;
        the layer itself is left as it was (each pass runs on a copy, so a dropout mask repeats);
      - a hand-written model (`loss_and_grads`), with `inputs = (x, target)`: every parameter's
        gradient against finite differences (float64 models) and its autograd twin.
    An output that is not a single number is reduced to L = sum(output * upstream), with `upstream`
    random (seeded by `seed`) unless given, so every entry of the output counts.

    tolerance: the largest relative difference max|Δ| / max|reference| that passes; by default
    1e-6 against finite differences, and `bpdemo.agreement.TOLERANCES` (by dtype) against autograd.
    """
    if hasattr(fn, "loss_and_grads"):
        return _check_model(fn, *inputs, step=step, tolerance=tolerance)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if hasattr(fn, "parameter_names") and hasattr(fn, "backward"):
        return _check_layer(fn, inputs[0], upstream, step, tolerance, seed)
    return _check_function(fn, inputs, backward, upstream, step, tolerance, seed)


def _tolerances(dtype: torch.dtype, given: float | None) -> dict[str, float]:
    return {
        "finite differences": given or FINITE_DIFFERENCE_TOLERANCE,
        "autograd": given or TOLERANCES.get(dtype, TOLERANCES[torch.float32]),
    }


def _upstream_for(output: Tensor, upstream: Tensor | None, seed: int) -> Tensor:
    if upstream is not None:
        return upstream.to(output.dtype)
    if output.dim() == 0:
        return torch.ones((), dtype=output.dtype)
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(output.shape, generator=generator, dtype=torch.float64).to(output.dtype)


def _check_function(fn, inputs, backward, upstream, step, tolerance, seed) -> GradientReport:
    inputs = [t.detach().clone() for t in inputs]
    dtype = next((t.dtype for t in inputs if t.is_floating_point()), torch.float64)
    tolerances = _tolerances(dtype, tolerance)
    with torch.no_grad():
        upstream = _upstream_for(fn(*inputs), upstream, seed)

    def value() -> float:
        return float((fn(*inputs) * upstream).sum())

    report = GradientReport("autograd" if backward is None else "a hand-written backward", dtype)
    differentiable = [i for i, t in enumerate(inputs) if t.is_floating_point()]
    leaves = [t.clone().requires_grad_(i in differentiable) for i, t in enumerate(inputs)]
    output = fn(*leaves)
    autograd = [None] * len(inputs)
    if output.requires_grad:
        grads = torch.autograd.grad(
            (output * upstream).sum(), [leaves[i] for i in differentiable], allow_unused=True
        )
        for i, grad in zip(differentiable, grads, strict=True):
            autograd[i] = torch.zeros_like(inputs[i]) if grad is None else grad
    checked = autograd
    if backward is not None:
        with torch.no_grad():
            given = backward(upstream, *inputs)
        checked = [given] if isinstance(given, Tensor) else list(given)
    for i in differentiable:
        if checked[i] is None:
            continue
        name = f"input {i}"
        numeric = numeric_gradient(value, inputs[i], step)
        report.rows.append(
            compare(
                name, "finite differences", checked[i], numeric, tolerances["finite differences"]
            )
        )
        if backward is not None and autograd[i] is not None:
            report.rows.append(
                compare(name, "autograd", checked[i], autograd[i], tolerances["autograd"])
            )
    return report


def _check_layer(layer, x, upstream, step, tolerance, seed) -> GradientReport:
    x = x.detach().clone()
    tolerances = _tolerances(x.dtype, tolerance)
    report = GradientReport(f"the layer {type(layer).__name__}", x.dtype)
    hand = copy.deepcopy(layer)  # the layer keeps its state (running statistics, dropout draws)
    with torch.no_grad():
        output = hand.forward(x)
        upstream = _upstream_for(output, upstream, seed)
        grad_x = hand.backward(upstream)
    parameters = {name: getattr(layer, name) for name in layer.parameter_names}

    def value_with(replaced: dict[str, Tensor], x_in: Tensor) -> float:
        fresh = copy.deepcopy(layer)
        for name, tensor in replaced.items():
            getattr(fresh, name).copy_(tensor)
        with torch.no_grad():
            return float((fresh.forward(x_in) * upstream).sum())

    module = copy.deepcopy(layer).torch_module()
    x_leaf = x.clone().requires_grad_(True)
    (module(x_leaf) * upstream).sum().backward()
    torch_parameters = dict(module.named_parameters())

    numeric_x = numeric_gradient(lambda: value_with({}, x), x, step)
    checked = [("input x", grad_x, numeric_x, x_leaf.grad)]
    for name, tensor in parameters.items():
        nudged = tensor.detach().clone()
        numeric = numeric_gradient(lambda n=name, t=nudged: value_with({n: t}, x), nudged, step)
        checked.append(
            (
                f"parameter {name}",
                getattr(hand, f"grad_{name}"),
                numeric,
                torch_parameters[name].grad,
            )
        )
    for name, grad, numeric, autograd in checked:
        if grad is None:
            continue
        report.rows.append(
            compare(name, "finite differences", grad, numeric, tolerances["finite differences"])
        )
        report.rows.append(compare(name, "autograd", grad, autograd, tolerances["autograd"]))
    return report


def _check_model(model, x: Tensor, target: Tensor, *, step, tolerance) -> GradientReport:
    from bpdemo.autograd_mlp import twin_of

    dtype = model.flat_parameters.dtype
    tolerances = _tolerances(dtype, tolerance)
    report = GradientReport(f"the model {type(model).__name__}", dtype)
    # every pass runs on a copy, so that the model keeps its state and a dropout mask repeats
    autograd = twin_of(copy.deepcopy(model))
    _, grads = copy.deepcopy(model).loss_and_grads(x, target)
    _, grads_autograd = autograd.loss_and_grads(x, target)
    numeric = {}
    if dtype == torch.float64:  # finite differences in float32 are too coarse to check anything

        def loss() -> float:
            fresh = copy.deepcopy(model)
            return float(fresh.loss(fresh.forward(x), target))

        numeric = {n: numeric_gradient(loss, p, step) for n, p in model.named_parameters()}
    for name, grad in grads.items():
        where = f"parameter {name}"
        if name in numeric:
            report.rows.append(
                compare(
                    where,
                    "finite differences",
                    grad,
                    numeric[name],
                    tolerances["finite differences"],
                )
            )
        report.rows.append(
            compare(where, "autograd", grad, grads_autograd[name], tolerances["autograd"])
        )
    return report
