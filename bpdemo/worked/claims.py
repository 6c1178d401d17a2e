"""What a source claims about a worked example: the arithmetic it wrote, and the numbers it names.

A claim names a quantity of the trace (indices count from 0, samples too):

    loss                                    the loss at a step, before that step's update
    output.K  output_pre.K                  output neuron K: activation a, pre-activation z
    prob.K                                  softmax probability of class K (cross_entropy)
    error.K                                 target - output (the sources' "actual - predicted")
    dloss.K                                 dL/d(output K), where the backward pass starts
    hidden.J  hidden_pre.J                  hidden neuron J (a network with one hidden layer)
    hidden.H.J  hidden_pre.H.J              neuron J of hidden layer H (H = 0 is the first)
    delta.layers.I[J]                       delta = dL/dz of neuron J of layer I
    grad.layers.I.weight[J,K]               dL/dW of layer I (weights are (out, in), as nn.Linear)
    grad.layers.I.bias[J]                   dL/db
    param_before.layers.I.weight[J,K]       a parameter before the step's update (also .bias[J])
    param_after.layers.I.weight[J,K]        ... and after it
    final.loss  final.output.K  final.prob.K  final.error.K  final.hidden.J ...
                                            after the last update (the step is then ignored)

A name that `[labels]` gives may stand for the neuron or the parameter: `output.y5`, `hidden.y3`,
`delta.y5`, `grad.w13`, `param_after.w35` (the names above stay accepted). `[conventions]` says the
signs the source writes δ and the error in; a claim is judged in them.

A claim agrees when |claimed - true| <= half a unit in the last decimal place the claim was written
with (0.27 -> 0.005, -2.5 -> 0.05, 400000 -> 0.5). Write the value as a string ("0.270", "1.25e9") to
keep digits TOML would drop. A source that rounded its intermediate values states later ones a few
units off in their last digits: such a claim gives its own `tolerance` (absolute: |claimed - true| <=
tolerance) or `digits` (good to that many significant digits: half a unit in the last of them, 0.7514
to 3 digits -> 0.0005). Its `formula`, if given, is evaluated as arithmetic (`bpdemo.worked.formula`:
numbers, + - * / ^, parentheses, exp, ln, sqrt, sigmoid, tanh) and judged the same way.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from bpdemo.functional import LOSSES
from bpdemo.infra.errors import ConfigError
from bpdemo.spec import MLPSpec
from bpdemo.worked.formula import ALLOWED, FORMULA_SPELLINGS, FormulaError, evaluate_formula
from bpdemo.worked.names import Names
from bpdemo.worked.schema import ClaimSection

# -- the numbers a claim was written with, and how far from them it still agrees --------------------


def claimed_number(value: int | float | str) -> tuple[float, Decimal]:
    """A claim's value as a float, and as the decimal the source wrote (for its rounding)."""
    if isinstance(value, str):
        try:
            written = Decimal(value.translate(FORMULA_SPELLINGS).replace("_", "").strip())
        except InvalidOperation:
            raise FormulaError("is not a number") from None
    else:
        written = Decimal(repr(value))
    if not written.is_finite():
        raise FormulaError("is not a finite number")
    if not math.isfinite(float(written)):
        raise FormulaError("is beyond the largest float (about 1.8e308)")
    return float(written), written


def rounding_tolerance(written: Decimal) -> float:
    """Half a unit in the last decimal place written: 0.27 -> 0.005, -2.5 -> 0.05, 400000 -> 0.5."""
    return float(Decimal("0.5").scaleb(written.as_tuple().exponent))  # 0e500 -> inf, no overflow


def digits_tolerance(written: Decimal, digits: int) -> float:
    """Half a unit in the last of `digits` significant digits: 0.7514, 3 -> 0.0005; 1234, 2 -> 50."""
    return float(Decimal("0.5").scaleb(written.adjusted() - digits + 1))


def agrees(claimed: float, value: float, tolerance: float) -> bool:
    # The slack only forgives binary rounding exactly at a half unit (0.275 against 0.27 and 0.28).
    return abs(claimed - value) <= tolerance * (1 + 1e-9)


# -- quantities of the trace, by name ---------------------------------------------------------------
VALID_NAMES = (
    "loss, output.K, output_pre.K, prob.K, error.K, dloss.K, hidden.J, hidden.H.J, hidden_pre.J, "
    "delta.layers.I[J], grad.layers.I.weight[J,K], grad.layers.I.bias[J], param_before.…, "
    "param_after.…, final.loss, final.output.K, …"
)
_OUTPUT = re.compile(r"(output|output_pre|prob|error|dloss)\.(\d+)")
_HIDDEN = re.compile(r"(hidden|hidden_pre)\.(?:(\d+)\.)?(\d+)")
_DELTA = re.compile(r"delta\.layers\.(\d+)\[\s*(\d+)\s*\]")
_PARAMETER = re.compile(
    r"(grad|param_before|param_after)\.(layers\.(\d+)\.(weight|bias))\[([\d\s,]+)\]"
)
FINAL_KINDS = ("loss", "output", "output_pre", "prob", "error", "hidden", "hidden_pre")


@dataclass(frozen=True)
class Quantity:
    """One number of the trace: `kind` (loss, output, hidden, grad...), where it is, and its name.

    `layer` is the index into the network's layers (hidden layer H is layer H); `index` indexes the
    tensor the kind names (a parameter), or is (unit,) for a per-neuron value of one sample.
    """

    name: str
    kind: str
    layer: int | None = None
    index: tuple[int, ...] = ()
    parameter: str | None = None
    final: bool = False


_LABELLED = re.compile(r"(\w+)\.(.+)")
NEURON_KINDS = ("output", "output_pre", "prob", "error", "dloss", "hidden", "hidden_pre", "delta")
PARAMETER_KINDS = ("grad", "param_before", "param_after")


def canonical(body: str, names: Names | None, num_layers: int) -> str:
    """`kind.label` as the trace names it (`delta.y5` -> `delta.layers.1[0]`); else `body` as is."""
    match = _LABELLED.fullmatch(body)
    if names is None or match is None or (named := names.lookup(match[2])) is None:
        return body
    kind, label = match[1], match[2]
    if named[0] == "neuron" and kind in NEURON_KINDS:
        layer, unit = named[1], named[2]
        if layer < 0:
            raise ValueError(f"{label} names an input; a claim names a neuron with weights")
        if kind == "delta":
            return f"delta.layers.{layer}[{unit}]"
        if kind.startswith("hidden"):
            if layer == num_layers - 1:
                raise ValueError(f"{label} names an output neuron: write output.{label}")
            return f"{kind}.{layer}.{unit}"
        if layer != num_layers - 1:
            raise ValueError(f"{label} names a hidden neuron: write hidden.{label}")
        return f"{kind}.{unit}"
    if named[0] in ("weight", "bias") and kind in PARAMETER_KINDS:
        return f"{kind}.layers.{named[1]}.{named[0]}[{','.join(map(str, named[2:]))}]"
    what = "a neuron" if named[0] == "neuron" else f"a {named[0]}"
    allowed = NEURON_KINDS if named[0] == "neuron" else PARAMETER_KINDS
    raise ValueError(f"{label} names {what}: use it after one of {', '.join(allowed)}")


def parse_quantity(name: str, spec: MLPSpec, names: Names | None = None) -> Quantity:
    """Check a claim's quantity name against the network; raises ConfigError-ready `ValueError`s.

    `names`: the example's `[labels]`, whose names may stand for neurons and parameters.
    """
    text = name.strip()
    final = text.startswith("final.")
    body = canonical(text.removeprefix("final."), names, spec.num_layers)
    num_layers, sizes = spec.num_layers, spec.sizes
    classification = LOSSES[spec.loss].classification

    def unit_in(layer: int, unit: int) -> int:
        width = sizes[layer + 1]
        if unit >= width:
            raise ValueError(
                f"neuron {unit} does not exist: that layer has {width} (0 to {width - 1})"
            )
        return unit

    if body == "loss":
        return Quantity(name, "loss", final=final)
    if match := _OUTPUT.fullmatch(body):
        kind, unit = match[1], int(match[2])
        if kind == "prob" and not classification:
            raise ValueError("prob.K needs loss cross_entropy (softmax probabilities)")
        if kind == "error" and classification:
            raise ValueError("error.K needs a regression loss; use prob.K or dloss.K")
        if final and kind == "dloss":
            raise ValueError("final.* names a forward value (loss, output, prob, error, hidden)")
        return Quantity(name, kind, num_layers - 1, (unit_in(num_layers - 1, unit),), final=final)
    if match := _HIDDEN.fullmatch(body):
        kind, layer_text, unit = match[1], match[2], int(match[3])
        hidden_layers = num_layers - 1
        if hidden_layers == 0:
            raise ValueError("this network has no hidden layer")
        if layer_text is None:
            if hidden_layers > 1:
                raise ValueError(
                    f"the network has {hidden_layers} hidden layers: say which, e.g. {kind}.0.{unit}"
                )
            layer = 0
        else:
            layer = int(layer_text)
            if layer >= hidden_layers:
                raise ValueError(f"hidden layer {layer} does not exist (0 to {hidden_layers - 1})")
        return Quantity(name, kind, layer, (unit_in(layer, unit),), final=final)
    if final:
        raise ValueError(f"final.* names one of {', '.join(FINAL_KINDS)} (e.g. final.output.0)")
    if match := _DELTA.fullmatch(body):
        layer, unit = int(match[1]), int(match[2])
        if layer >= num_layers:
            raise ValueError(f"layers.{layer} does not exist (0 to {num_layers - 1})")
        return Quantity(name, "delta", layer, (unit_in(layer, unit),))
    if match := _PARAMETER.fullmatch(body):
        kind, parameter, layer = match[1], match[2], int(match[3])
        if layer >= num_layers:
            raise ValueError(f"{parameter} does not exist (layers 0 to {num_layers - 1})")
        if match[4] == "bias" and not spec.bias:
            raise ValueError(
                f"{parameter} does not exist: the network has no biases (bias = false)"
            )
        shape = (sizes[layer + 1], sizes[layer]) if match[4] == "weight" else (sizes[layer + 1],)
        index = tuple(int(part) for part in match[5].split(",") if part.strip())
        if len(index) != len(shape) or any(i >= n for i, n in zip(index, shape, strict=False)):
            raise ValueError(
                f"index [{','.join(map(str, index))}] is outside {parameter}, of shape "
                f"({', '.join(map(str, shape))})"
            )
        return Quantity(name, kind, layer, index, parameter=parameter)
    raise ValueError(f"unknown quantity; valid names: {VALID_NAMES}")


@dataclass
class Claim:
    """A claim with its name checked and its numbers read."""

    number: int  # 1-based position in the config, for messages
    quantity: Quantity
    step: int
    sample: int
    written: str  # the value as the source wrote it
    claimed: float
    tolerance: float
    formula: str | None
    formula_value: float | None
    significant_digits: int = 6  # of the value as written
    judged_by: str = (
        "written"  # the tolerance: "written" (its last decimal), "tolerance" or "digits"
    )
    digits: int | None = None  # the claim's own significant digits, if it gives them

    @classmethod
    def from_section(
        cls,
        number: int,
        claim: ClaimSection,
        spec: MLPSpec,
        samples: int,
        source: str,
        names: Names | None = None,
    ) -> Claim:
        """Check claim `number` of the config against the network and the data (ConfigError)."""
        where = f"{source}: [[claims]] #{number} ({claim.name})"
        try:
            quantity = parse_quantity(claim.name, spec, names)
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None
        if claim.sample >= samples:
            raise ConfigError(
                f"{where}: sample {claim.sample} does not exist: the data has {samples} sample(s), "
                "counted from 0"
            )
        try:
            claimed, written = claimed_number(claim.value)
        except FormulaError as error:
            raise ConfigError(f"{where}: value {claim.value!r} {error}") from None
        if claim.tolerance is not None and claim.digits is not None:
            raise ConfigError(
                f"{where}: give tolerance (absolute) or digits (significant digits), not both"
            )
        judged_by, tolerance = "written", rounding_tolerance(written)
        if claim.tolerance is not None:
            judged_by, tolerance = "tolerance", claim.tolerance
        elif claim.digits is not None:
            if claimed == 0:
                raise ConfigError(
                    f"{where}: a value of 0 has no significant digits; give tolerance instead"
                )
            judged_by, tolerance = "digits", digits_tolerance(written, claim.digits)
        formula_value = None
        if claim.formula is not None:
            try:
                formula_value = evaluate_formula(claim.formula)
            except FormulaError as error:
                shown = claim.formula if len(claim.formula) <= 60 else claim.formula[:59] + "…"
                raise ConfigError(
                    f"{where}: formula {shown!r} {error}; use {ALLOWED}, e.g. 1/2 * (4 - 0.9)^2"
                ) from None
        return cls(
            number=number,
            quantity=quantity,
            step=claim.step,
            sample=claim.sample,
            written=claim.value if isinstance(claim.value, str) else repr(claim.value),
            claimed=claimed,
            tolerance=tolerance,
            formula=claim.formula,
            formula_value=formula_value,
            significant_digits=len(written.as_tuple().digits),
            judged_by=judged_by,
            digits=claim.digits,
        )
