"""Bring your own derivative: register an activation or a loss, checked before it is accepted.

After `register_activation("silu", ...)` the name works wherever a built-in one does: in `MLPSpec`
and `NetworkSpec`, in both models, in config files and `--set`, and in a worked example's text. A
derivative is checked at registration against autograd (of the torch function given with it) and
against finite differences (of the forward given with it); a wrong one is refused with a
`ValueError` that says where it disagrees. From the command line, `--import FILE_OR_MODULE` runs
the registering code before the config is read.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from bpdemo.agreement import SAME_VALUES
from bpdemo.functional import ACTIVATIONS, LOSSES, Activation, Loss, TargetKind
from bpdemo.gradcheck import GradientRow, check_gradients, compare
from bpdemo.infra.errors import UsageError

# Where a registered derivative is checked: spread over where activations do their work, and off
# the points where common ones have a kink (0), where a finite difference would straddle it.
CHECK_POINTS = torch.linspace(-4.0, 4.0, 33, dtype=torch.float64) + 0.0137
SLOPE_POINTS = torch.linspace(-20.0, 20.0, 4001, dtype=torch.float64)


def register_activation(
    name: str,
    forward: Callable[[Tensor], Tensor],
    derivative: Callable[[Tensor, Tensor], Tensor],
    torch_fn: Callable[[Tensor], Tensor],
    formula: str | None = None,
    *,
    derivative_formula: str | None = None,
    sklearn: str | None = None,
    replace: bool = False,
) -> Activation:
    """Add an activation to `bpdemo.functional.ACTIVATIONS`, after checking its derivative.

    Args:
        forward(z) -> a, elementwise, hand-written (no autograd needed).
        derivative(z, a) -> f'(z), elementwise: the backward pass multiplies dL/da by it.
        torch_fn(z): the same function in differentiable torch, for the autograd twin.
        formula, derivative_formula: f(z) and f'(z) as text in z (and a), e.g. "z·σ(z)"; the
            worked examples write them out with each neuron's numbers.
        sklearn: its name in scikit-learn's MLPs, if it has one.
        replace: allow replacing an activation of the same name.
    Raises ValueError if the name is taken, or the derivative disagrees with autograd or finite
    differences, or forward disagrees with torch_fn (the message says at which z).
    """
    _check_name(name, ACTIVATIONS, "activation", replace)

    def forward_rule(z: Tensor, out: Tensor | None = None) -> Tensor:
        a = forward(z)
        return a if out is None else out.copy_(a)

    def backward_rule(grad_a: Tensor, z: Tensor, a: Tensor, out: Tensor | None = None) -> Tensor:
        return torch.mul(grad_a, derivative(z, a), out=out)  # delta = dL/da * f'(z)

    z = CHECK_POINTS
    _same(f"activation {name!r}: forward", forward(z), torch_fn(z), z, "torch_fn")
    report = check_gradients(  # against autograd of torch_fn, and finite differences
        torch_fn,
        z,
        backward=lambda upstream, z: backward_rule(upstream, z, forward(z)),
        upstream=torch.ones_like(z),  # so that the gradient is f'(z) itself, as the message says
    )
    _refuse_failures(f"activation {name!r}: derivative", report.rows, z)
    with torch.no_grad():
        slope = float(derivative(SLOPE_POINTS, forward(SLOPE_POINTS)).abs().max())
    activation = Activation(
        name,
        forward_rule,
        backward_rule,
        torch_fn,
        formula=formula or f"{name}(z)",
        derivative_formula=derivative_formula or f"{name}'(z)",
        value_text=_template(formula) if formula else f"{name}({{z}})",
        derivative_text=_template(derivative_formula) if derivative_formula else f"{name}'(z)",
        max_slope=slope,
        sklearn=sklearn,
    )
    ACTIVATIONS[name] = activation
    return activation


def register_loss(
    name: str,
    value: Callable[[Tensor, Tensor], Tensor],
    gradient: Callable[[Tensor, Tensor], Tensor],
    torch_fn: Callable[[Tensor, Tensor], Tensor],
    *,
    targets: TargetKind = "numbers",
    reduction: str = "mean",
    formula: str | None = None,
    gradient_formula: str | None = None,
    replace: bool = False,
) -> Loss:
    """Add a loss to `bpdemo.functional.LOSSES`, after checking its gradient.

    Args:
        value(output, target) -> L, a 0-dim tensor; gradient(output, target) -> dL/d(output),
            shaped like the output; torch_fn(output, target): the same loss in differentiable torch.
        targets: "numbers" (shaped like the output), "classes" (integer labels) or
            "probabilities" (in [0, 1], shaped like the output).
        reduction: "mean" or "sum" over the batch (data-parallel training needs to know).
    Raises ValueError if the name is taken, or the gradient disagrees with autograd or finite
    differences, or value disagrees with torch_fn.
    """
    _check_name(name, LOSSES, "loss", replace)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"loss {name!r}: reduction must be 'mean' or 'sum', got {reduction!r}")
    output, target = _sample_pair(targets)
    _same(
        f"loss {name!r}: value", value(output, target), torch_fn(output, target), None, "torch_fn"
    )
    report = check_gradients(
        torch_fn,
        (output, target),
        backward=lambda upstream, output, target: (upstream * gradient(output, target), None),
    )
    _refuse_failures(f"loss {name!r}: gradient", report.rows, None)
    loss = Loss(
        name,
        lambda output, target: (value(output, target), gradient(output, target)),
        torch_fn,
        formula=formula or f"{name}(ŷ, y)",
        gradient_formula=gradient_formula or f"d{name}/dŷ",
        targets=targets,
        reduction=reduction,
    )
    LOSSES[name] = loss
    return loss


def import_extensions(names: list[str]) -> None:
    """Import each Python module (a dotted name, or a path to a .py file), for its registrations."""
    for name in names:
        try:
            if name.endswith(".py"):
                path = Path(name)
                if not path.is_file():
                    raise UsageError(f"--import {name}: no such file")
                spec = importlib.util.spec_from_file_location(path.stem, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[path.stem] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(name)
        except UsageError:
            raise
        except ModuleNotFoundError as error:
            raise UsageError(f"--import {name}: no module named {error.name!r}") from None
        except Exception as error:  # the user's code: say what it raised, in one line
            raise UsageError(f"--import {name}: {type(error).__name__}: {error}") from None


def _check_name(name: str, registry: dict, kind: str, replace: bool) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"{kind} name {name!r}: use letters, digits and _ (e.g. 'silu')")
    if name in registry and not replace:
        raise ValueError(f"{kind} {name!r} exists already; pass replace=True to replace it")


def _same(what: str, given: Tensor, expected: Tensor, points: Tensor | None, against: str) -> None:
    """Refuse a rule whose values (not gradients) differ from its torch function's."""
    given, expected = given.detach(), expected.detach()
    if given.shape != expected.shape:
        raise ValueError(
            f"{what} has shape {tuple(given.shape)}, {against} {tuple(expected.shape)}"
        )
    _refuse_failures(what, [compare(what, against, given, expected, SAME_VALUES)], points)


def _refuse_failures(what: str, rows: list[GradientRow], points: Tensor | None) -> None:
    """Raise a ValueError naming the first row that failed: where, both values, how far apart."""
    for row in (row for row in rows if not row.passed):
        index = ",".join(map(str, row.worst_index))
        where = f" at z = {float(points[row.worst_index]):.4g}" if points is not None else ""
        where = where or (f" at output [{index}]" if index else "")
        raise ValueError(
            f"{what} disagrees with {row.reference}{where}: given {row.value:.6g}, "
            f"{row.reference} {row.expected:.6g} (largest relative difference "
            f"{row.max_rel_diff:.1e}, tolerance {row.tolerance:.0e})"
        )


def _sample_pair(targets: str) -> tuple[Tensor, Tensor]:
    """An output (6, 3) and a target of that kind, float64, from a fixed seed."""
    generator = torch.Generator().manual_seed(0)
    output = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    if targets == "classes":
        return output, torch.randint(0, 3, (6,), generator=generator)
    if targets == "probabilities":
        output = torch.rand(6, 3, generator=generator, dtype=torch.float64) * 0.8 + 0.1
        return output, torch.rand(6, 3, generator=generator, dtype=torch.float64)
    return output, torch.randn(6, 3, generator=generator, dtype=torch.float64)


def _template(formula: str) -> str:
    """A formula in z and a as a template a worked example fills with one neuron's numbers."""
    escaped = formula.replace("{", "{{").replace("}", "}}")
    escaped = re.sub(r"\bz\b", "{z_factor}", escaped)
    return re.sub(r"\ba\b", "{a_factor}", escaped)
