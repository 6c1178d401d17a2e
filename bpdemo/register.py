"""Bring your own derivative: register an activation or a loss, checked before it is accepted.

After `register_activation("silu", ...)` the name works wherever a built-in one does: in `MLPSpec`
and `NetworkSpec`, in both models, in config files and `--set`, and in a worked example's text. A
derivative is checked at registration against autograd and finite differences of the torch function
given with it, in float64 and float32 and out into the saturated tails; a wrong one is refused with a
`ValueError` that says where it disagrees. From the command line, `--import FILE_OR_MODULE` runs
the registering code before the config is read. `register_layer` does the same for a whole layer
with parameters of its own: its backward is checked with `check_gradients` before it is accepted.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import string
import sys
import typing
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from bpdemo.agreement import SAME_VALUES, TOLERANCES
from bpdemo.functional import ACTIVATIONS, LOSSES, Activation, Loss, TargetKind
from bpdemo.gradcheck import GradientReport, check_gradients, compare
from bpdemo.infra.errors import UsageError

# Where a registered derivative is checked: spread over where activations do their work and out into
# the saturated tails (|z| up to 100, where e^z overflows float32), off the points where common
# ones have a kink (0) or change formula (softplus at 20), where a finite difference would straddle
# it. A tuple of numbers: each check makes its own tensor, which the rule checked cannot change for
# the next one.
CHECK_POINTS = (
    *(-100.0, -60.0, -30.0, -12.0, -8.0),
    *(round(-4.0 + 0.25 * i + 0.0137, 4) for i in range(33)),  # -3.9863 to 4.0137
    *(8.0, 12.0, 30.0, 60.0, 100.0),
)
CHECK_DTYPES = (torch.float64, torch.float32)  # what a model may compute in
SLOPE_POINTS = torch.linspace(-20.0, 20.0, 4001, dtype=torch.float64)
VALUE_TOLERANCES = {torch.float64: SAME_VALUES, torch.float32: TOLERANCES[torch.float32]}
LOSS_FIELDS = ("a", "y", "one_minus_y", "p", "k", "hit", "terms", "rows", "numel")


def check_points(dtype: torch.dtype) -> Tensor:
    """A new tensor of `CHECK_POINTS` in `dtype`."""
    return torch.tensor(CHECK_POINTS, dtype=dtype)


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
        forward(z) -> a, elementwise, hand-written (no autograd needed); it must not change z.
        derivative(z, a) -> f'(z), elementwise: the backward pass multiplies dL/da by it.
        torch_fn(z): the same function in differentiable torch, for the autograd twin.
        formula, derivative_formula: f(z) and f'(z) as text in z (and a), e.g. "z·σ(z)"; the
            worked examples write them out with each neuron's numbers. Without them the rule is
            named, not written out.
        sklearn: its name in scikit-learn's MLPs, if it has one.
        replace: allow replacing an activation of the same name.

    The checks, at every z of `CHECK_POINTS` (−100 to 100), in float64 and in float32: each rule
    returns a tensor shaped like z and leaves its arguments as they were; forward agrees with
    torch_fn wherever torch_fn is finite; the derivative is finite wherever the forward is, and
    agrees with autograd of torch_fn and with finite differences of it (taken in float64).
    Raises ValueError, in one line, at the first check that fails (the message says at which z).
    """
    _check_name(name, ACTIVATIONS, "activation", replace)

    def forward_rule(z: Tensor, out: Tensor | None = None) -> Tensor:
        a = forward(z)
        return a if out is None else out.copy_(a)

    def backward_rule(grad_a: Tensor, z: Tensor, a: Tensor, out: Tensor | None = None) -> Tensor:
        return torch.mul(grad_a, derivative(z, a), out=out)  # delta = dL/da * f'(z)

    what = f"activation {name!r}"
    for dtype in CHECK_DTYPES:
        where = "" if dtype == torch.float64 else " (float32)"
        z = check_points(dtype)
        expected = _returned(f"{what}: torch_fn(z)", torch_fn, z)
        a = _returned(f"{what}: forward(z)", forward, z)
        finite = expected.isfinite()  # where the function has a value to compare in this dtype
        _same(f"{what}: forward{where}", a[finite], expected[finite], z[finite], "torch_fn", dtype)
        slopes = _returned(f"{what}: derivative(z, a)", derivative, z, a)
        broken = a.isfinite() & ~slopes.isfinite()
        if broken.any():
            first = int(broken.nonzero()[0, 0])
            raise ValueError(
                f"{what}: derivative is {float(slopes[first])} at z = {float(z[first]):.4g}"
                f"{where}, where the forward is finite ({float(a[first]):.4g})"
            )
        z = z[finite]
        # against autograd of torch_fn, and finite differences; an upstream of ones makes the
        # gradient f'(z) itself, as the message says
        report = check_gradients(
            torch_fn,
            z,
            backward=lambda upstream, z: backward_rule(upstream, z, forward(z)),
            upstream=torch.ones_like(z),
        )
        _refuse_failures(f"{what}: derivative{where}", report, z)
    with torch.no_grad():
        points = SLOPE_POINTS.clone()
        slope = float(derivative(points, forward(points.clone())).abs().max())
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
    description: str = "",
    term_text: str | None = None,
    total_text: str = "{terms}",
    gradient_text: str | None = None,
    sample_gradient_text: str | None = None,
    replace: bool = False,
) -> Loss:
    """Add a loss to `bpdemo.functional.LOSSES`, after checking its gradient.

    Args:
        value(output, target) -> L, a 0-dim tensor; gradient(output, target) -> dL/d(output),
            shaped like the output; torch_fn(output, target): the same loss in differentiable torch.
        targets: "numbers" (shaped like the output), "classes" (integer labels) or
            "probabilities" (in [0, 1], shaped like the output).
        reduction: "mean" or "sum" over the batch (data-parallel training needs to know).
        formula, gradient_formula: L and dL/dŷ as text, for headers.
        description: what the loss does, in a few words ("focal loss on softmax"), for headers
            and figures; without it they name the loss.
        term_text, total_text, gradient_text, sample_gradient_text: the loss written out with its
            numbers (see `bpdemo.functional.Loss`, e.g. term_text="ln({p})", total_text=
            "−({terms})/{rows}" for cross-entropy). Without them the walk-throughs show the
            numbers and name the loss, but write out no formula.

    The checks, on a sample batch in float64 and in float32 (with outputs far out, up to ±50 for
    numbers and classes): each rule returns a tensor of the right shape (L a single number) and
    leaves its arguments as they were; value agrees with torch_fn; the gradient is finite where
    the value is, and agrees with autograd of torch_fn and with finite differences (in float64).
    Raises ValueError, in one line, at the first check that fails.
    """
    _check_name(name, LOSSES, "loss", replace)
    what = f"loss {name!r}"
    kinds = typing.get_args(TargetKind)
    if targets not in kinds:
        raise ValueError(
            f"{what}: targets must be one of {', '.join(map(repr, kinds))}, got {targets!r}"
        )
    if reduction not in ("mean", "sum"):
        raise ValueError(f"{what}: reduction must be 'mean' or 'sum', got {reduction!r}")
    texts = {"term_text": term_text, "total_text": total_text, "gradient_text": gradient_text}
    texts["sample_gradient_text"] = sample_gradient_text
    for key, text in texts.items():
        _check_template(f"{what}: {key}", text, LOSS_FIELDS)
    for dtype in CHECK_DTYPES:
        where = "" if dtype == torch.float64 else " (float32)"
        output, target = _sample_pair(targets, dtype)
        pair = (output, target)
        expected = _returned(f"{what}: torch_fn(output, target)", torch_fn, *pair, shape=())
        given = _returned(f"{what}: value(output, target)", value, *pair, shape=())
        _same(f"{what}: value{where}", given, expected, None, "torch_fn", dtype)
        grad = _returned(f"{what}: gradient(output, target)", gradient, *pair)
        broken = ~grad.isfinite()
        if given.isfinite() and broken.any():
            index = tuple(broken.nonzero()[0].tolist())
            raise ValueError(
                f"{what}: gradient is {float(grad[index])} at output [{','.join(map(str, index))}]"
                f"{where}, where the value is finite ({float(given):.4g})"
            )
        report = check_gradients(
            torch_fn,
            (output, target),
            backward=lambda upstream, output, target: upstream * gradient(output, target),
            wrt=[0],  # the output; the target is data
        )
        _refuse_failures(f"{what}: gradient{where}", report, None)
    loss = Loss(
        name,
        lambda output, target: (value(output, target), gradient(output, target)),
        torch_fn,
        formula=formula or f"{name}(ŷ, y)",
        gradient_formula=gradient_formula or f"d{name}/dŷ",
        targets=targets,
        reduction=reduction,
        description=description,
        **texts,
    )
    LOSSES[name] = loss
    return loss


LAYER_ARGUMENTS = ("shape", "dtype", "device")  # what the network gives a layer's constructor
CHECK_SHAPE = (5,)  # the input of one row the registration checks a layer on, 4 rows of it


def register_layer(name: str, cls: type, *, replace: bool = False) -> type:
    """Add a kind of layer to those a `NetworkSpec` and `[model] layers` may list, after checking
    its backward pass.

    `cls` is a layer of the kind `bpdemo.layers` describes (`parameter_names`, `forward`,
    `backward`, `training`, `torch_module()`), built as `cls(shape, dtype=..., device=..., **keys)`:
    shape is its input's, (features,) or (channels, height, width) of one row; its other keyword
    arguments are the keys a config gives it (`{type = "swish", beta = 1.0}`), each with its default.
    Its output has the input's shape unless it has `output_shape(shape, **keys)`.

    The check: a float64 layer with the default keys, on 4 rows of 5 random features, through
    `check_gradients` (dL/dx and every parameter's gradient against finite differences and against
    its `torch_module()`); a wrong one is refused with a `ValueError` of one line saying which.
    """
    from bpdemo.layers import LAYER_TYPES
    from bpdemo.spec import LAYER_CLASSES, LAYER_KEYS

    _check_name(name, LAYER_KEYS, "layer type", replace)
    arguments = inspect.signature(cls).parameters
    missing = [arg for arg in LAYER_ARGUMENTS if arg not in arguments]
    if missing:
        raise ValueError(
            f"layer {name!r}: {cls.__name__} must take {', '.join(LAYER_ARGUMENTS)} "
            f"(it has no {missing[0]!r})"
        )
    keys = {}
    for key, argument in arguments.items():
        if key in LAYER_ARGUMENTS or argument.kind in (
            argument.VAR_POSITIONAL,
            argument.VAR_KEYWORD,
        ):
            continue
        if argument.default is inspect.Parameter.empty:
            raise ValueError(
                f"layer {name!r}: give {key!r} a default, which the check builds it with"
            )
        keys[key] = argument.default
    try:
        layer = cls(CHECK_SHAPE, dtype=torch.float64, device=torch.device("cpu"), **keys)
        x = torch.randn(
            4, *CHECK_SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64
        )
        report = check_gradients(layer, x)
    except Exception as error:  # the user's code: say what it raised, in one line
        raise ValueError(
            f"layer {name!r}: checking it raised {type(error).__name__}: {one_line(error)}"
        ) from error
    _refuse_failures(f"layer {name!r}", report, None, named_rows=True)

    def build(entry, width, spec, context):
        shape = (width,) if isinstance(width, int) else tuple(width)
        own = {key: entry[key] for key in keys}
        return cls(shape, dtype=spec.dtype, device=spec.device, **own), None

    LAYER_KEYS[name] = keys  # a default of None: a config must give the key
    LAYER_TYPES[name] = build
    LAYER_CLASSES[name] = cls
    return cls


def import_extensions(names: list[str]) -> None:
    """Import each Python module (a dotted name, or a path to a .py file), for its registrations.

    Whatever goes wrong in one, an exception or a `sys.exit()`, is a `UsageError` of one line that
    names it.
    """
    for name in names:
        try:
            if name.endswith(".py"):
                path = Path(name)
                if not path.is_file():
                    raise UsageError(f"--import {name}: no such file")
                spec = importlib.util.spec_from_file_location(path.stem, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[path.stem] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[path.stem]  # a module that failed is not imported
                    raise
            else:
                importlib.import_module(name)
        except UsageError:
            raise
        except ModuleNotFoundError as error:
            raise UsageError(f"--import {name}: no module named {error.name!r}") from None
        except SystemExit as error:  # a module to import registers; it does not end the command
            raise UsageError(
                f"--import {name}: the module called sys.exit({error.code!r}) as it was imported"
            ) from None
        except Exception as error:  # the user's code: say what it raised, in one line
            raise UsageError(
                f"--import {name}: {type(error).__name__}: {one_line(error)}"
            ) from None


def _check_name(name: str, registry: dict, kind: str, replace: bool) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"{kind} name {name!r}: use letters, digits and _ (e.g. 'silu')")
    if name in registry and not replace:
        raise ValueError(f"{kind} {name!r} exists already; pass replace=True to replace it")


def _returned(what: str, rule: Callable, *args: Tensor, shape: tuple[int, ...] | None = None):
    """rule(*args) on copies of the arguments, which must come back unchanged, as a floating-point
    tensor of `shape` (by default the first argument's)."""
    shape = tuple(args[0].shape) if shape is None else shape
    copies = [arg.clone() for arg in args]
    try:
        with torch.no_grad():
            result = rule(*copies)
    except Exception as error:  # the user's code: say what it raised, in one line
        raise ValueError(f"{what} raised {type(error).__name__}: {one_line(error)}") from error
    if not all(torch.equal(copy, arg) for copy, arg in zip(copies, args, strict=True)):
        raise ValueError(
            f"{what} changed its arguments in place; return a new tensor instead (the network "
            "keeps them for the backward pass)"
        )
    if not isinstance(result, Tensor):
        raise ValueError(f"{what} returned a {type(result).__name__}, not a tensor")
    if tuple(result.shape) != shape:
        expected = "a single number (a 0-dim tensor)" if shape == () else f"shape {shape}"
        raise ValueError(f"{what} returned shape {tuple(result.shape)}, expected {expected}")
    if not result.is_floating_point():
        raise ValueError(f"{what} returned {result.dtype} values, expected floating-point ones")
    return result.detach()


def _same(
    what: str,
    given: Tensor,
    expected: Tensor,
    points: Tensor | None,
    against: str,
    dtype: torch.dtype = torch.float64,
) -> None:
    """Refuse a rule whose values (not gradients) differ from its torch function's."""
    row = compare(what, against, given.detach(), expected.detach(), VALUE_TOLERANCES[dtype])
    _refuse_failures(what, GradientReport(what, dtype, [row]), points)


def _refuse_failures(
    what: str, report: GradientReport, points: Tensor | None, named_rows: bool = False
) -> None:
    """Raise a ValueError naming what the check could not compare, or the first row that failed:
    where, both values, how far apart. `named_rows`: the check has several rows (a layer's input
    and parameters), and the message names the row ("parameter beta") and the index in it."""
    for problem in report.problems:
        raise ValueError(f"{what}: {problem}")
    for row in report.failures:
        subject = f"{what}: {row.name}" if named_rows else what
        if row.problem is not None:
            raise ValueError(f"{subject}: {row.problem}")
        index = ",".join(map(str, row.worst_index))
        if points is not None:
            where = f" at z = {float(points[row.worst_index]):.4g}"
        else:
            where = f" at {'' if named_rows else 'output '}[{index}]" if index else ""
        raise ValueError(
            f"{subject} disagrees with {row.reference}{where}: given {row.value:.6g}, "
            f"{row.reference} {row.expected:.6g} (largest relative difference "
            f"{row.max_rel_diff:.1e}, tolerance {row.tolerance:.0e})"
        )


def _sample_pair(targets: str, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """An output (6, 3) and a target of that kind in `dtype`, from a fixed seed; its last row far
    out (outputs of ±50; probabilities of 0.001 and 0.999), where rules saturate."""
    generator = torch.Generator().manual_seed(0)
    output = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    output[-1] = torch.tensor([50.0, -50.0, 20.0])
    if targets == "classes":
        labels = torch.randint(0, 3, (6,), generator=generator)
        return output.to(dtype), labels
    if targets == "probabilities":
        output = torch.rand(6, 3, generator=generator, dtype=torch.float64) * 0.8 + 0.1
        output[-1] = torch.tensor([0.001, 0.999, 0.5])
        target = torch.rand(6, 3, generator=generator, dtype=torch.float64)
        return output.to(dtype), target.to(dtype)
    target = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    return output.to(dtype), target.to(dtype)


def _check_template(what: str, text: str | None, fields: tuple[str, ...]) -> None:
    """Refuse a text whose {fields} are not among `fields` (it would fail when printed)."""
    if text is None:
        return
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as error:
        raise ValueError(f"{what}: {error} (write {{{{ and }}}} for a brace)") from None
    unknown = sorted(names - set(fields))
    if unknown:
        raise ValueError(
            f"{what}: unknown field {{{unknown[0]}}}; the fields are "
            + ", ".join(f"{{{field}}}" for field in fields)
        )


def one_line(error: BaseException) -> str:
    """An exception's message on one line (its lines joined), for a one-line report."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


def _template(formula: str) -> str:
    """A formula in z and a as a template a worked example fills with one neuron's numbers."""
    escaped = formula.replace("{", "{{").replace("}", "}}")
    escaped = re.sub(r"\bz\b", "{z_factor}", escaped)
    return re.sub(r"\ba\b", "{a_factor}", escaped)
