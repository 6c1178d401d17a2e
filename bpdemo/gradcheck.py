"""Independent opinions on a gradient: central finite differences, autograd, and how far apart two are.

    dL/dp ≈ (L(p + h) - L(p - h)) / (2 h)       for every element p, in float64

Finite differences use only forward passes, so they check any backward pass without trusting it.
`check_gradients` puts a hand-written backward (or autograd itself) against them, for any function of
tensors, a hand-written layer or a whole model, in the spirit of CS231n's `eval_numerical_gradient`
and `torch.autograd.gradcheck`. A check passes only on what it compared: a gradient that is missing,
of the wrong shape or not a tensor is a failing row, and a check that compared nothing has not passed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from bpdemo.agreement import FINITE_DIFFERENCE_TOLERANCE, TOLERANCES

# Why finite differences are never taken in float32: a nudge of h = 1e-6 to a number of order one is
# about 8 of float32's steps (6e-8), so L(p + h) - L(p - h) keeps one or two significant digits.
FLOAT32_WHY = "in float32 a nudge of 1e-6 is a few of its rounding steps, leaving a digit or two"


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


# -- one gradient against one reference ----------------------------------------------------------------
@dataclass
class GradientRow:
    """One gradient against one reference: where they differ most, and whether that is close enough.

    A row with a `problem` compared nothing (no gradient given, the wrong shape, not a tensor) and
    fails. Otherwise `failing` of its `entries` differ by more than `tolerance` times `scale`, the
    size the differences are measured against (see `compare`).
    """

    name: str  # "input 0", "input x", "parameter layers.0.weight"
    reference: str  # "finite differences" or "autograd"
    shape: tuple[int, ...]  # the reference's
    max_abs_diff: float = math.nan
    max_rel_diff: float = math.nan
    tolerance: float = 0.0
    worst_index: tuple[int, ...] = ()
    value: float = math.nan  # the gradient being checked, at the worst index
    expected: float = math.nan  # the reference, at the worst index
    failing: int = 0
    entries: int = 0
    scale: float = math.nan
    problem: str | None = None

    @property
    def passed(self) -> bool:
        return self.problem is None and self.max_rel_diff <= self.tolerance

    @property
    def ratio(self) -> float | None:
        """given / expected at the worst entry (2, -1 or the batch size show at a glance); None
        where the reference is 0 there."""
        return self.value / self.expected if self.expected else None

    def verdict(self) -> str:
        """`pass`, or what failed: the problem, or how many entries and the worst of them."""
        if self.problem is not None:
            return f"FAIL: {self.problem}"
        if self.passed:
            return "pass"
        where = ",".join(map(str, self.worst_index))
        ratio = "" if self.ratio is None else f" (given/expected {self.ratio:.3g})"
        return (
            f"FAIL: {self.failing} of {self.entries} entries; worst [{where}]: given "
            f"{self.value:.6g}, expected {self.expected:.6g}{ratio}"
        )


def unusable(value, expected: Tensor) -> str | None:
    """Why `value` cannot be compared with `expected` (None, not a tensor, another shape), or None."""
    if value is _NOTHING:
        return "nothing returned for it"
    if value is None:
        return "no gradient given (None)"
    if not isinstance(value, Tensor):
        return f"given a {type(value).__name__}, not a tensor"
    if tuple(value.shape) != tuple(expected.shape):
        return f"shape {tuple(value.shape)} given, {tuple(expected.shape)} expected"
    return None


_NOTHING = object()  # what a backward that returned fewer gradients than inputs gave for the rest


def compare(
    name: str,
    reference: str,
    value,
    expected: Tensor,
    tolerance: float,
    floor: float = 0.0,
) -> GradientRow:
    """A `GradientRow`: `value` against `expected`, relative to the larger of the reference's
    largest entry and `floor`.

        relative difference = max|value - expected| / max(max|expected|, floor)

    The floor is where a difference stops being relative: two gradients that are both zero to
    rounding (0 against 6e-14) are not "100 % apart". `check_gradients` sets it to the size a
    gradient of its function has when the function is of order one (see there); 0 leaves the
    reference alone as the scale (the smallest normal number if it is all zeros).
    """
    shape = tuple(expected.shape)
    problem = unusable(value, expected)
    if problem is not None:
        return GradientRow(name, reference, shape, problem=problem)
    given, wanted = value.detach().to(torch.float64), expected.detach().to(torch.float64)
    difference = (given - wanted).abs()
    largest = float(wanted.abs().max()) if wanted.numel() else 0.0
    scale = max(largest, floor, torch.finfo(torch.float64).tiny)
    entries = difference.numel()
    if not entries:
        return GradientRow(name, reference, shape, 0.0, 0.0, tolerance, scale=scale)
    # NaN is the worst a difference can be: it counts as failing and is the one shown
    ranked = torch.where(difference.isnan(), torch.inf, difference)
    worst = divmod_index(int(ranked.argmax()), shape)
    max_abs = float(difference.max())
    return GradientRow(
        name=name,
        reference=reference,
        shape=shape,
        max_abs_diff=max_abs,
        max_rel_diff=max_abs / scale,
        tolerance=tolerance,
        worst_index=worst,
        value=float(given[worst]),
        expected=float(wanted[worst]),
        failing=int((~(difference <= tolerance * scale)).sum()),
        entries=entries,
        scale=scale,
    )


def divmod_index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The index in a tensor of `shape` of its `flat`-th element (row-major)."""
    index = []
    for size in reversed(shape):
        flat, position = divmod(flat, size)
        index.append(position)
    return tuple(reversed(index))


# -- the report ------------------------------------------------------------------------------------------
@dataclass
class GradientReport:
    """The result of `check_gradients`: one row per gradient and reference.

    `problems` say why the check as a whole compared nothing, or less than it must (no floating
    input, an output autograd cannot differentiate); `notes` what a reader should know about how
    it compared (finite differences taken in float64 for float32 inputs). `passed` only when
    something was compared, every row passed and there is no problem.
    """

    checked: str  # what was checked: "a hand-written backward", "autograd", "a layer", "a model"
    dtype: torch.dtype
    rows: list[GradientRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.rows) and not self.problems and all(row.passed for row in self.rows)

    @property
    def failures(self) -> list[GradientRow]:
        return [row for row in self.rows if not row.passed]

    def verdict(self) -> str:
        if self.passed:
            return "passed"
        if not self.rows:
            return "NOT PASSED: nothing was compared"
        problems = f"; {len(self.problems)} problem(s) below" if self.problems else ""
        return f"FAILED ({len(self.failures)} of {len(self.rows)} rows{problems})"

    def __str__(self) -> str:
        title = f"gradient check of {self.checked} ({_dtype_name(self.dtype)}): "
        lines = [title + self.verdict()]
        if self.rows:
            header = (
                "gradient",
                "against",
                "shape",
                "max abs diff",
                "max rel diff",
                "tolerance",
                "",
            )
            cells = [
                (
                    row.name,
                    row.reference,
                    "x".join(map(str, row.shape)) or "scalar",
                    *(
                        ("–", "–", "–")
                        if row.problem
                        else (
                            f"{row.max_abs_diff:.2e}",
                            f"{row.max_rel_diff:.2e}",
                            f"{row.tolerance:.0e}",
                        )
                    ),
                    row.verdict(),
                )
                for row in self.rows
            ]
            widths = [max(len(c) for c in column) for column in zip(header, *cells, strict=True)]
            lines += [
                "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                for row in (header, *cells)
            ]
        lines += [f"problem: {problem}" for problem in self.problems]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


# -- check_gradients ---------------------------------------------------------------------------------------
def check_gradients(
    fn,
    inputs: Tensor | Sequence[Tensor],
    backward: Callable | None = None,
    *,
    wrt: Sequence[int] | None = None,
    upstream: Tensor | None = None,
    step: float = 1e-6,
    tolerance: float | None = None,
    seed: int = 0,
) -> GradientReport:
    """Check a gradient against finite differences (and autograd where it applies).

    fn is one of:
      - a function of tensors, `fn(*inputs) -> Tensor`. Without `backward`, its autograd
        gradient is checked; with `backward(upstream, *inputs) -> one gradient per input`, that
        hand-written backward is checked against finite differences and autograd. Every
        floating-point input is checked, or those at the positions `wrt` (leave out, say, a loss's
        target): a gradient that is None, missing, not a tensor or of the wrong shape for one of
        them is a failing row; for the others a backward may return None;
      - a hand-written layer (`forward`, `backward`, `parameter_names`; see `bpdemo.layers`):
        dL/dx and every parameter's gradient, against finite differences and its `torch_module()`;
        the layer itself is left as it was (each pass runs on a copy, so a dropout mask repeats);
      - a hand-written model (`loss_and_grads`), with `inputs = (x, target)`: every parameter's
        gradient against finite differences (float64 models) and its autograd twin.
    An output that is not a single number is reduced to L = sum(output * upstream), with `upstream`
    random (seeded by `seed`) unless given, so every entry of the output counts. Every call of `fn`
    and `backward` gets its own copy of the inputs: one that changes them in place cannot change
    what the next call sees.

    Finite differences are taken in float64, whatever the inputs' dtype (float32 inputs are
    copied to float64; where `fn` cannot run in float64 the report says so and compares with
    autograd only). A check that compared nothing (no floating input, an integer output, an output
    autograd cannot reach) has not passed.

    tolerance: the largest relative difference that passes; 0 asks for identical values. By
    default 1e-6 against finite differences (the float32 tolerance, 1e-4, for float32 gradients),
    and `bpdemo.agreement.TOLERANCES` (by dtype) against autograd. A difference is measured
    relative to max(max|reference|, floor), the floor being

        max|upstream| * max(1, max|output|) / max(1, max|input|)

    the size a gradient has where the function changes by about its own size when its inputs
    change by theirs. A gradient far below it is zero to rounding for this function (γ's gradient
    of a LayerNorm over one feature: x̂ is 0, and autograd's 6e-14 is rounding), and is checked
    against the floor rather than against itself. So a function whose every gradient is tiny
    (scaled by 1e-8) is checked in absolute terms: scale it up to check it relatively.
    step: the finite-difference step h, a positive number.
    """
    step, tolerance = _checked_settings(step, tolerance)
    if hasattr(fn, "loss_and_grads"):
        return _check_model(fn, *inputs, step=step, tolerance=tolerance)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    for position, tensor in enumerate(inputs):
        if not isinstance(tensor, Tensor):
            raise ValueError(f"input {position} is a {type(tensor).__name__}, not a tensor")
    if hasattr(fn, "parameter_names") and hasattr(fn, "backward"):
        return _check_layer(fn, inputs[0], upstream, step, tolerance, seed)
    return _check_function(fn, inputs, backward, wrt, upstream, step, tolerance, seed)


def _checked_settings(step, tolerance) -> tuple[float, float | None]:
    """Refuse a step that is not a positive number and a tolerance that is negative or NaN."""
    if isinstance(step, bool) or not isinstance(step, int | float) or not 0 < step < math.inf:
        raise ValueError(f"step must be a positive number (the finite-difference h), got {step!r}")
    if tolerance is not None and (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not 0 <= tolerance <= math.inf
    ):
        raise ValueError(
            f"tolerance must be a number >= 0 (0: identical values) or None, got {tolerance!r}"
        )
    return float(step), tolerance


def _tolerances(dtype: torch.dtype, given: float | None) -> dict[str, float]:
    """Against finite differences and against autograd; `given` for both when it is set."""
    against_autograd = TOLERANCES.get(dtype, TOLERANCES[torch.float32])
    if given is not None:
        return {"finite differences": given, "autograd": given}
    # float32 gradients carry float32's rounding, however exact the float64 reference
    return {
        "finite differences": max(FINITE_DIFFERENCE_TOLERANCE, against_autograd),
        "autograd": against_autograd,
    }


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _largest(tensors) -> float:
    values = [float(t.detach().abs().max()) for t in tensors if t.numel()]
    return max(values, default=0.0)


def _floor(upstream: Tensor, outputs, inputs) -> float:
    """max|upstream| * max(1, max|output|) / max(1, max|input|): see `check_gradients`."""
    return _largest([upstream]) * max(1.0, _largest(outputs)) / max(1.0, _largest(inputs))


def _upstream_for(output: Tensor, upstream: Tensor | None, seed: int) -> Tensor:
    if upstream is not None:
        return upstream.detach().to(output.dtype)
    if output.dim() == 0:
        return torch.ones((), dtype=output.dtype)
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(output.shape, generator=generator, dtype=torch.float64).to(output.dtype)


def _copies(tensors: Sequence[Tensor]) -> list[Tensor]:
    return [t.clone() for t in tensors]


def _positions(wrt, inputs: list[Tensor]) -> list[int]:
    """The inputs to check: `wrt`, or every floating-point one."""
    if wrt is None:
        return [i for i, t in enumerate(inputs) if t.is_floating_point()]
    positions = [wrt] if isinstance(wrt, int) else list(wrt)
    for i in positions:
        if not isinstance(i, int) or not 0 <= i < len(inputs):
            raise ValueError(f"wrt: {i!r} is not the position of an input (0 to {len(inputs) - 1})")
        if not inputs[i].is_floating_point():
            kind = _dtype_name(inputs[i].dtype)
            raise ValueError(f"wrt: input {i} is {kind}, which has no gradient")
    return positions


def _in_float64(fn, inputs: list[Tensor]) -> tuple[list[Tensor] | None, str | None]:
    """Float64 copies of `inputs` for finite differences, or None and why they cannot be used."""
    wide = [t.to(torch.float64) if t.is_floating_point() else t.clone() for t in inputs]
    try:
        with torch.no_grad():
            output = fn(*_copies(wide))
    except Exception as error:  # the user's function: it may only take float32
        reason = f"fn raised {type(error).__name__} on float64 copies of the inputs"
    else:
        if isinstance(output, Tensor) and output.dtype == torch.float64:
            return wide, None
        reason = "fn does not return float64 for float64 inputs"
    return None, (
        f"finite differences not taken: {reason}, and {FLOAT32_WHY}; compared with autograd only "
        "(to compare with finite differences too, let fn compute in float64)"
    )


def _check_function(fn, inputs, backward, wrt, upstream, step, tolerance, seed) -> GradientReport:
    inputs = [t.detach().clone() for t in inputs]
    positions = _positions(wrt, inputs)
    floating = [t.dtype for t in inputs if t.is_floating_point()]
    dtype = inputs[positions[0]].dtype if positions else (floating or [torch.float64])[0]
    report = GradientReport("autograd" if backward is None else "a hand-written backward", dtype)
    complex_inputs = [i for i, t in enumerate(inputs) if t.is_complex()]
    if complex_inputs:
        report.problems.append(
            f"input {complex_inputs[0]} is complex: this check differentiates real inputs only "
            "(pass the real and imaginary parts as two inputs)"
        )
    if not positions:
        kinds = ", ".join(sorted({_dtype_name(t.dtype) for t in inputs}))
        report.problems.append(f"no floating-point input to differentiate (the inputs are {kinds})")
        return report
    with torch.no_grad():
        output = fn(*_copies(inputs))
    if not isinstance(output, Tensor) or not output.is_floating_point():
        kind = _dtype_name(output.dtype) if isinstance(output, Tensor) else type(output).__name__
        report.problems.append(f"the output is {kind}, which has no gradient to check")
        return report
    upstream = _upstream_for(output, upstream, seed)
    tolerances = _tolerances(dtype, tolerance)
    floor = _floor(upstream, [output], [inputs[i] for i in positions])

    leaves = [t.clone().requires_grad_(i in positions) for i, t in enumerate(inputs)]
    connected = fn(*[leaf.clone() for leaf in leaves])  # a clone: fn may change it in place
    autograd: dict[int, Tensor] | None = None
    if connected.requires_grad:
        grads = torch.autograd.grad(
            (connected * upstream).sum(), [leaves[i] for i in positions], allow_unused=True
        )
        # an input the graph does not use has a gradient of 0
        autograd = {
            i: torch.zeros_like(inputs[i]) if g is None else g
            for i, g in zip(positions, grads, strict=True)
        }
    else:
        report.problems.append(
            "autograd has no gradient: the output is not connected to the inputs (a detach(), "
            "or a step such as argmax or rounding, on the way)"
        )
    if backward is None:
        if autograd is None:
            return report
        checked = autograd
    else:
        with torch.no_grad():
            given = backward(upstream.clone(), *_copies(inputs))
        given = list(given) if isinstance(given, tuple | list) else [given]
        checked = {i: given[i] if i < len(given) else _NOTHING for i in positions}

    wide, why_not = _in_float64(fn, inputs)
    if why_not:
        report.notes.append(why_not)
    elif dtype != torch.float64:
        report.notes.append(f"finite differences taken in float64 ({FLOAT32_WHY})")
    wide_upstream = upstream.to(torch.float64)

    def value() -> float:  # L in float64, at the inputs as `numeric_gradient` nudges them
        return float((fn(*_copies(wide)) * wide_upstream).sum())

    for i in positions:
        references = {}
        if wide is not None:
            references["finite differences"] = lambda i=i: numeric_gradient(value, wide[i], step)
        if backward is not None and autograd is not None:
            references["autograd"] = lambda i=i: autograd[i]
        if not references:
            report.problems.append(f"input {i}: neither finite differences nor autograd to compare")
        report.rows += _rows(f"input {i}", checked[i], inputs[i], references, tolerances, floor)
    return report


def _rows(name, grad, like: Tensor, references: dict, tolerances: dict, floor: float):
    """`grad` against each reference (by name: a function that computes it), or one failing row
    if `grad` cannot be compared (missing, not a tensor, another shape than `like`)."""
    problem = unusable(grad, like)
    if problem is not None:
        return [GradientRow(name, "–", tuple(like.shape), problem=problem)]
    return [
        compare(name, against, grad, reference(), tolerances[against], floor)
        for against, reference in references.items()
    ]


def _check_layer(layer, x, upstream, step, tolerance, seed) -> GradientReport:
    x = x.detach().clone()
    kinds = {_dtype_name(getattr(layer, name).dtype) for name in layer.parameter_names}
    if kinds - {_dtype_name(x.dtype)}:
        raise ValueError(
            f"x is {_dtype_name(x.dtype)} but the layer's parameters are {', '.join(sorted(kinds))}: "
            "give both one dtype (float64 to compare with finite differences too)"
        )
    tolerances = _tolerances(x.dtype, tolerance)
    report = GradientReport(f"the layer {type(layer).__name__}", x.dtype)
    hand = copy.deepcopy(layer)  # the layer keeps its state (running statistics, dropout draws)
    with torch.no_grad():
        output = hand.forward(x.clone())
        upstream = _upstream_for(output, upstream, seed)
        grad_x = hand.backward(upstream.clone())
    parameters = {name: getattr(layer, name) for name in layer.parameter_names}
    floor = _floor(upstream, [output], [x, *parameters.values()])

    def value_with(replaced: dict[str, Tensor], x_in: Tensor) -> float:
        fresh = copy.deepcopy(layer)
        for name, tensor in replaced.items():
            getattr(fresh, name).copy_(tensor)
        with torch.no_grad():
            return float((fresh.forward(x_in.clone()) * upstream).sum())

    module = copy.deepcopy(layer).torch_module()
    x_leaf = x.clone().requires_grad_(True)
    (module(x_leaf) * upstream).sum().backward()
    torch_parameters = dict(module.named_parameters())

    with_differences = all(t.dtype == torch.float64 for t in [x, *parameters.values()])
    if not with_differences:
        report.notes.append(
            f"finite differences not taken for a {_dtype_name(x.dtype)} layer ({FLOAT32_WHY}); compared with "
            "autograd only (build the layer and x in float64 to compare with them too)"
        )
    checked = [("input x", grad_x, x, lambda: value_with({}, x), x_leaf.grad)]
    for name, tensor in parameters.items():
        nudged = tensor.detach().clone()
        checked.append(
            (
                f"parameter {name}",
                getattr(hand, f"grad_{name}", None),
                nudged,
                lambda n=name, t=nudged: value_with({n: t}, x),
                torch_parameters[name].grad,
            )
        )
    for name, grad, nudged, value, autograd in checked:
        references = {"autograd": lambda autograd=autograd: autograd}
        if with_differences:
            numeric = {"finite differences": lambda v=value, t=nudged: numeric_gradient(v, t, step)}
            references = numeric | references
        report.rows += _rows(name, grad, nudged, references, tolerances, floor)
    return report


def _check_model(model, x: Tensor, target: Tensor, *, step, tolerance) -> GradientReport:
    from bpdemo.autograd_mlp import twin_of

    dtype = model.flat_parameters.dtype
    tolerances = _tolerances(dtype, tolerance)
    report = GradientReport(f"the model {type(model).__name__}", dtype)
    # every pass runs on a copy, so that the model keeps its state and a dropout mask repeats
    autograd = twin_of(copy.deepcopy(model))
    loss, grads = copy.deepcopy(model).loss_and_grads(x.clone(), target.clone())
    _, grads_autograd = autograd.loss_and_grads(x.clone(), target.clone())
    parameters = dict(model.named_parameters())
    floor = _floor(torch.ones(()), [loss], [x, *parameters.values()])
    numeric = {}
    if dtype == torch.float64:

        def value() -> float:
            fresh = copy.deepcopy(model)
            return float(fresh.loss(fresh.forward(x.clone()), target.clone()))

        numeric = {n: numeric_gradient(value, p, step) for n, p in parameters.items()}
    else:
        report.notes.append(
            f"finite differences not taken for a {_dtype_name(dtype)} model ({FLOAT32_WHY}); compared with "
            "autograd only (build the model in float64 to compare with them too)"
        )
    for name, reference in grads_autograd.items():
        references = {"autograd": lambda reference=reference: reference}
        if name in numeric:
            references = {"finite differences": lambda n=name: numeric[n]} | references
        grad = grads.get(name)
        report.rows += _rows(f"parameter {name}", grad, reference, references, tolerances, floor)
    return report
