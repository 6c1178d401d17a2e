"""Worked examples: a small network from explicit weights, every number of every step, and an audit.

A worked example is a TOML file (`configs/worked_*.toml`) that states a network, its weights, its data
and, optionally, what a source claims about it. `run_example` trains the hand-written model and its
autograd twin side by side (`SideBySide`, full batch, float64 by default) and keeps, for each step, every
pre-activation z and activation a, the loss, dL/da and delta = dL/dz of every layer, every gradient and
every parameter before and after the update, copied out of the hand-written model's cache. The
autograd model is compared at every step on all of these (relative difference max|Δ| / max|autograd|).

Claims name a quantity of the trace (indices count from 0, samples too):

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

A claim agrees when |claimed - true| <= half a unit in the last decimal place the claim was written
with (0.27 -> 0.005, -2.5 -> 0.05, 400000 -> 0.5). Write the value as a string ("0.270", "1.25e9") to
keep digits TOML would drop. Its `formula`, if given, is evaluated as plain arithmetic (numbers,
+ - * / ^ **, parentheses; the unicode minus and the en dash count as minus) and judged the same way.
"""

from __future__ import annotations

import ast
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import Field
from torch import Tensor

from bpdemo.autograd_mlp import AutogradMLP
from bpdemo.cli import common_overrides
from bpdemo.compare import SideBySide
from bpdemo.config import (
    ActivationName,
    DtypeName,
    Fraction,
    LossName,
    OptimizerName,
    PositiveFloat,
    PositiveInt,
    Section,
    dump_config,
    load_config,
)
from bpdemo.errors import ConfigError, DivergenceError, RunError
from bpdemo.functional import ACTIVATIONS, LOSSES
from bpdemo.gradcheck import max_abs_diff, rel_diff
from bpdemo.optim import OptimizerSpec
from bpdemo.outputs import RunDir
from bpdemo.spec import MLPSpec

# Hand-written and autograd must agree to this relative difference at every step (float64 is the
# default; float32 is allowed with --dtype and judged at its own rounding).
AGREEMENT_TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5}
DETAILED_STEPS = 5  # a run of up to this many steps is printed in full; longer: first and last
SHOWN_SAMPLES = 3  # samples written out term by term; the others enter the sums silently
SHOWN_TERMS = 8  # terms written out in one sum before "..."
SUMMARY_ROWS = 20  # rows of the per-step loss table of a long run


# ---------------------------------------------------------------------------------------------------
# The config schema
# ---------------------------------------------------------------------------------------------------
class NetworkSection(Section):
    """[network]: layer widths (input first), one activation per layer after the input, the loss."""

    sizes: Annotated[list[PositiveInt], Field(min_length=2)]
    activations: list[ActivationName]
    loss: LossName = "half_sse"
    dtype: DtypeName = "float64"
    device: str = "cpu"


class InitSection(Section):
    """[init]: the starting weights, one (out, in) matrix per layer, and one bias list per layer."""

    weights: list[list[list[float]]]
    biases: list[list[float]] | None = None  # zeros when omitted


class WorkedTrainSection(Section):
    """[train]: full-batch steps (every step uses all the inputs, so one step is one epoch)."""

    lr: PositiveFloat = 0.1
    steps: PositiveInt = 1
    train_biases: bool = True
    optimizer: OptimizerName = "sgd"  # sgd with momentum 0 is plain gradient descent
    momentum: Fraction = 0.0
    max_trace_steps: PositiveInt = 200  # a longer run keeps about this many steps in trace.json
    threads: PositiveInt | None = None  # torch's CPU threads (--threads); None: torch's default


class StandardiseSection(Section):
    """[data.standardise]: also run the same step on standardised inputs (x - mean) / std.

    The first layer is re-expressed so that the network computes the same function (W' = W·diag(std),
    b' = b + W·mean): same first prediction, same loss, but different gradients and a different step.
    """

    mean: list[float]
    std: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]]


class WorkedDataSection(Section):
    """[data]: input rows, and target rows (regression) or class indices (cross_entropy)."""

    inputs: Annotated[list[list[float]], Field(min_length=1)]
    targets: list[list[float]] | list[int]
    standardise: StandardiseSection | None = None


class LabelsSection(Section):
    """[labels]: optional names for the input, hidden and output neurons (text and picture)."""

    inputs: list[str] | None = None
    hidden: list[list[str]] | None = None  # one list per hidden layer
    outputs: list[str] | None = None


class PictureSection(Section):
    """[picture]: which step and which sample the network picture shows."""

    step: PositiveInt = 1
    sample: Annotated[int, Field(ge=0)] = 0


class ClaimSection(Section):
    """[[claims]]: a number a source states about the example, to be audited."""

    name: str
    step: PositiveInt = 1
    sample: Annotated[int, Field(ge=0)] = 0
    value: int | float | str
    formula: str | None = None


class WorkedConfig(Section):
    """A worked example: network, weights, data, training and what a source claims about it."""

    title: str = "worked example"
    source: str = ""
    seed: int = 0  # unused (the weights are explicit); accepted so that --seed is not an error
    network: NetworkSection
    init: InitSection
    train: WorkedTrainSection = WorkedTrainSection()
    data: WorkedDataSection
    labels: LabelsSection = LabelsSection()
    picture: PictureSection = PictureSection()
    claims: list[ClaimSection] = Field(default_factory=list)


def load_worked_config(path: Path, overrides: Sequence[str] = ()) -> WorkedConfig:
    """Read and validate a worked-example TOML file (one ConfigError line on any mistake)."""
    return load_config(WorkedConfig, path, list(overrides))


def command_line_overrides(args) -> list[str]:
    """The demo's flags as `--set` overrides (applied after `--set`, so the flags win).

    `--epochs` is another name for `--steps`: every step uses all the inputs, so a step is an epoch.
    """
    steps, epochs = getattr(args, "steps", None), args.epochs
    if steps is not None and epochs is not None and steps != epochs:
        raise ConfigError(
            f"--steps {steps} and --epochs {epochs} disagree; here one step uses all the inputs, "
            "so they are the same thing: give one of them"
        )
    overrides = common_overrides(args, epochs_key="train.steps", model_section="network")
    if steps is not None and epochs is None:
        overrides.append(f"train.steps={steps}")
    if getattr(args, "picture_step", None) is not None:
        overrides.append(f"picture.step={args.picture_step}")
    return overrides


# ---------------------------------------------------------------------------------------------------
# Arithmetic of the claims: a safe evaluator, and the rounding a claim was written with
# ---------------------------------------------------------------------------------------------------
# The sources write −, – and — for minus, × and · for times, ÷ for divided by and ^ for a power.
FORMULA_SPELLINGS = str.maketrans(
    {"−": "-", "–": "-", "—": "-", "×": "*", "·": "*", "÷": "/", "^": "**"}
)
FORMULA_OPERATORS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}


class FormulaError(ValueError):
    """A formula is not plain arithmetic, or has no finite real value."""


def evaluate_formula(text: str) -> float:
    """The value of an arithmetic expression: numbers, + - * / ^ (or **), parentheses, unary signs.

    Only these are accepted (the text is parsed with `ast`, never executed); everything is computed in
    float, so no expression can run long (10^10^10 overflows at once instead of growing an integer).
    """
    try:
        tree = ast.parse(text.translate(FORMULA_SPELLINGS).strip(), mode="eval")
    except SyntaxError:
        raise FormulaError("does not parse as arithmetic") from None
    try:
        value = _evaluate(tree.body)
    except ZeroDivisionError:
        raise FormulaError("divides by zero") from None
    except OverflowError:
        raise FormulaError("overflows") from None
    if isinstance(value, complex) or not math.isfinite(value):
        raise FormulaError("has no finite real value")
    return value


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _evaluate(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and type(node.op) in FORMULA_OPERATORS:
        return FORMULA_OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    text = ast.unparse(node)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Constant):
        raise FormulaError(f"multiplies without a sign in {text!r}: write * between the factors")
    if isinstance(node, ast.Call | ast.Name | ast.Attribute):
        raise FormulaError(f"uses a name or a function ({text!r}): only numbers are allowed")
    if isinstance(node, ast.Tuple):
        raise FormulaError(f"has a comma ({text!r}): write 450000, not 450,000")
    raise FormulaError(f"has {text!r}, which is not plain arithmetic")


def claimed_number(value: int | float | str) -> tuple[float, Decimal]:
    """A claim's value as a float, and as the decimal the source wrote (for its rounding)."""
    if isinstance(value, str):
        try:
            written = Decimal(value.translate(FORMULA_SPELLINGS).replace("_", "").strip())
        except InvalidOperation:
            raise FormulaError("is not a number") from None
        if not written.is_finite():
            raise FormulaError("is not a finite number")
    else:
        written = Decimal(repr(value))
    return float(written), written


def rounding_tolerance(written: Decimal) -> float:
    """Half a unit in the last decimal place written: 0.27 -> 0.005, -2.5 -> 0.05, 400000 -> 0.5."""
    return 0.5 * 10.0 ** written.as_tuple().exponent


def agrees(claimed: float, value: float, tolerance: float) -> bool:
    # The slack only forgives binary rounding exactly at a half unit (0.275 against 0.27 and 0.28).
    return abs(claimed - value) <= tolerance * (1 + 1e-9)


# ---------------------------------------------------------------------------------------------------
# Quantities of the trace, by name
# ---------------------------------------------------------------------------------------------------
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


def parse_quantity(name: str, spec: MLPSpec) -> Quantity:
    """Check a claim's quantity name against the network; raises ConfigError-ready `ValueError`s."""
    text = name.strip()
    final = text.startswith("final.")
    body = text.removeprefix("final.")
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
        shape = (sizes[layer + 1], sizes[layer]) if match[4] == "weight" else (sizes[layer + 1],)
        index = tuple(int(part) for part in match[5].split(",") if part.strip())
        if len(index) != len(shape) or any(i >= n for i, n in zip(index, shape, strict=False)):
            raise ValueError(
                f"index [{','.join(map(str, index))}] is outside {parameter}, of shape "
                f"({', '.join(map(str, shape))})"
            )
        return Quantity(name, kind, layer, index, parameter=parameter)
    raise ValueError(f"unknown quantity; valid names: {VALID_NAMES}")


# ---------------------------------------------------------------------------------------------------
# A validated example
# ---------------------------------------------------------------------------------------------------
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


@dataclass
class WorkedExample:
    """Everything a run needs, checked: the spec, the optimizer, the data tensors, the claims."""

    config: WorkedConfig
    spec: MLPSpec
    optimizer: OptimizerSpec
    inputs: Tensor  # (N, sizes[0])
    targets: Tensor  # (N, sizes[-1]) or (N,) class indices
    claims: list[Claim]
    source: str = "config"
    variant: str = "raw inputs"

    @classmethod
    def from_config(cls, config: WorkedConfig, source: str = "config") -> WorkedExample:
        """Check the config against itself (shapes, data, claims): one ConfigError line if wrong."""
        network, init, data = config.network, config.init, config.data
        try:
            spec = MLPSpec(
                sizes=network.sizes,
                activations=network.activations,
                loss=network.loss,
                init="explicit",
                weights=_checked_matrices(init.weights, network.sizes, source),
                biases=init.biases,
                dtype=network.dtype,
                device=network.device,
            )
        except ConfigError as error:
            raise ConfigError(f"{source}: [network]/[init]: {error}") from None
        optimizer = OptimizerSpec(
            name=config.train.optimizer,
            lr=config.train.lr,
            momentum=config.train.momentum,
            train_biases=config.train.train_biases,
        )
        inputs, targets = _checked_data(data, spec, source)
        _check_labels(config.labels, spec.sizes, source)
        claims = [
            _checked_claim(i + 1, claim, spec, len(inputs), source)
            for i, claim in enumerate(config.claims)
        ]
        if config.picture.sample >= len(inputs):
            raise ConfigError(
                f"{source}: [picture] sample {config.picture.sample} does not exist: the data has "
                f"{len(inputs)} sample(s), counted from 0"
            )
        return cls(config, spec, optimizer, inputs, targets, claims, source)

    def standardised(self) -> WorkedExample | None:
        """The same example on inputs (x - mean) / std, with a first layer computing the same function.

        z = W x + b = W (std ⊙ s + mean) + b = (W·diag(std)) s + (b + W mean), so every output is the
        same before the first update; only the gradients (and so the step) change.
        """
        settings = self.config.data.standardise
        if settings is None:
            return None
        dtype = self.spec.dtype
        mean = torch.tensor(settings.mean, dtype=torch.float64)
        std = torch.tensor(settings.std, dtype=torch.float64)
        params = self.spec.initial_parameters()
        weight = params["layers.0.weight"].to(torch.float64)
        weights = [weight * std] + [
            params[f"layers.{i}.weight"] for i in range(1, self.spec.num_layers)
        ]
        biases = [params["layers.0.bias"].to(torch.float64) + weight @ mean] + [
            params[f"layers.{i}.bias"] for i in range(1, self.spec.num_layers)
        ]
        spec = MLPSpec(
            sizes=self.spec.sizes,
            activations=self.spec.activations,
            loss=self.spec.loss,
            init="explicit",
            weights=weights,
            biases=biases,
            dtype=dtype,
            device=self.spec.device,
        )
        inputs = ((self.inputs.to(torch.float64) - mean) / std).to(dtype)
        return WorkedExample(
            self.config,
            spec,
            self.optimizer,
            inputs.to(self.spec.device),
            self.targets,
            claims=[],
            source=self.source,
            variant="standardised inputs",
        )


def _checked_matrices(weights: list, sizes: list[int], source: str) -> list:
    """Name the layer and the row of a ragged matrix (torch would only say 'expected sequence')."""
    for i, matrix in enumerate(weights):
        lengths = {len(row) for row in matrix}
        if len(lengths) > 1:
            raise ConfigError(
                f"{source}: [init] weights[{i}] has rows of different lengths {sorted(lengths)}; "
                f"each row lists one neuron's {sizes[i] if i < len(sizes) else '?'} input weights"
            )
    return weights


def _checked_data(data: WorkedDataSection, spec: MLPSpec, source: str) -> tuple[Tensor, Tensor]:
    n_in, n_out = spec.sizes[0], spec.sizes[-1]
    for n, row in enumerate(data.inputs):
        if len(row) != n_in:
            raise ConfigError(
                f"{source}: [data] inputs[{n}] has {len(row)} values, but the network takes "
                f"{n_in} inputs (network.sizes[0])"
            )
    count = len(data.inputs)
    if len(data.targets) != count:
        raise ConfigError(
            f"{source}: [data] {len(data.targets)} targets for {count} input rows; give one per row"
        )
    if LOSSES[spec.loss].classification:
        if not all(isinstance(t, int) for t in data.targets):
            raise ConfigError(
                f"{source}: [data] targets: loss {spec.loss} needs class indices, e.g. targets = [0]"
            )
        for n, label in enumerate(data.targets):
            if not 0 <= label < n_out:
                raise ConfigError(
                    f"{source}: [data] targets[{n}] = {label} is not a class: the network has "
                    f"{n_out} outputs (classes 0 to {n_out - 1})"
                )
        targets = torch.tensor(data.targets, dtype=torch.long, device=spec.device)
    else:
        if not all(isinstance(t, list) for t in data.targets):
            raise ConfigError(
                f"{source}: [data] targets: loss {spec.loss} needs one row per input, "
                f"e.g. targets = [[4.0]]"
            )
        for n, row in enumerate(data.targets):
            if len(row) != n_out:
                raise ConfigError(
                    f"{source}: [data] targets[{n}] has {len(row)} values, but the network has "
                    f"{n_out} outputs (network.sizes[-1])"
                )
        targets = torch.tensor(data.targets, dtype=spec.dtype, device=spec.device)
    inputs = torch.tensor(data.inputs, dtype=spec.dtype, device=spec.device)
    targets_finite = not targets.is_floating_point() or bool(torch.isfinite(targets).all())
    if not (bool(torch.isfinite(inputs).all()) and targets_finite):
        raise ConfigError(f"{source}: [data] holds a value that is not finite (inf or NaN)")
    standardise = data.standardise
    if standardise is not None:
        for key in ("mean", "std"):
            if len(getattr(standardise, key)) != n_in:
                raise ConfigError(
                    f"{source}: [data.standardise] {key} has {len(getattr(standardise, key))} "
                    f"values for {n_in} inputs; give one per input"
                )
    return inputs, targets


def _check_labels(labels: LabelsSection, sizes: list[int], source: str) -> None:
    expected = {"inputs": sizes[0], "outputs": sizes[-1]}
    for key, width in expected.items():
        names = getattr(labels, key)
        if names is not None and len(names) != width:
            raise ConfigError(
                f"{source}: [labels] {key} has {len(names)} names for {width} neurons"
            )
    if labels.hidden is not None:
        widths = sizes[1:-1]
        if [len(names) for names in labels.hidden] != widths:
            raise ConfigError(
                f"{source}: [labels] hidden: give one list per hidden layer with one name per "
                f"neuron (widths {widths})"
            )


def _checked_claim(number: int, claim: ClaimSection, spec: MLPSpec, samples: int, source: str):
    where = f"{source}: [[claims]] #{number} ({claim.name})"
    try:
        quantity = parse_quantity(claim.name, spec)
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
    formula_value = None
    if claim.formula is not None:
        try:
            formula_value = evaluate_formula(claim.formula)
        except FormulaError as error:
            raise ConfigError(
                f"{where}: formula {claim.formula!r} {error}; use numbers, + - * / ^ and "
                "parentheses, e.g. 1/2 * (4 - 0.9)^2"
            ) from None
    return Claim(
        number=number,
        quantity=quantity,
        step=claim.step,
        sample=claim.sample,
        written=claim.value if isinstance(claim.value, str) else repr(claim.value),
        claimed=claimed,
        tolerance=rounding_tolerance(written),
        formula=claim.formula,
        formula_value=formula_value,
        significant_digits=len(written.as_tuple().digits),
    )


# ---------------------------------------------------------------------------------------------------
# Running: both models, one full-batch step at a time, every number kept
# ---------------------------------------------------------------------------------------------------
@dataclass
class ForwardValues:
    """A forward pass: per layer z and a, each (N, out); the loss; softmax probabilities (CE)."""

    loss: float
    pre_activations: list[Tensor]
    activations: list[Tensor]
    probabilities: Tensor | None

    @property
    def outputs(self) -> Tensor:
        return self.activations[-1]


@dataclass
class StepValues(ForwardValues):
    """One step: the forward pass before the update, the backward pass, and the update.

    grad_activations[l] is dL/da of layer l and deltas[l] = dL/dz, both (N, out); grads, params_before
    and params_after are by parameter name (weights (out, in), biases (out,)).
    """

    step: int = 0
    grad_activations: list[Tensor] = field(default_factory=list)
    deltas: list[Tensor] = field(default_factory=list)
    grads: dict[str, Tensor] = field(default_factory=dict)
    params_before: dict[str, Tensor] = field(default_factory=dict)
    params_after: dict[str, Tensor] = field(default_factory=dict)
    max_manual_autograd_diff: float = 0.0  # relative: max|manual - autograd| / max|autograd|
    max_manual_autograd_abs_diff: float = 0.0


@dataclass
class WorkedRun:
    """What a run of an example produced: the kept steps, the end state, claims' true values."""

    example: WorkedExample
    pair: SideBySide
    steps: list[StepValues]  # the kept steps; the first and the last run are always among them
    final: ForwardValues | None
    final_diff: float
    steps_run: int
    diverged_at_step: int | None = None
    interrupted: bool = False
    claim_values: dict[int, float] = field(default_factory=dict)  # claim number -> true value

    @property
    def tolerance(self) -> float:
        return AGREEMENT_TOLERANCE[self.example.spec.dtype]

    @property
    def max_manual_autograd_diff(self) -> float:
        return max([s.max_manual_autograd_diff for s in self.steps] + [self.final_diff])

    def step(self, number: int) -> StepValues | None:
        return next((s for s in self.steps if s.step == number), None)


def _copy(tensor: Tensor) -> Tensor:
    return tensor.detach().clone()


def probabilities_of(spec: MLPSpec, outputs: Tensor) -> Tensor | None:
    return torch.softmax(outputs, dim=1) if LOSSES[spec.loss].classification else None


@torch.no_grad()
def autograd_forward(model: AutogradMLP, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Every layer's z and a in the autograd model (its own layers, run one by one)."""
    pre_activations, activations = [], []
    for layer, activation in zip(model.layers, model.activation_fns, strict=True):
        z = layer(x)
        x = activation(z)
        pre_activations.append(z)
        activations.append(x)
    return pre_activations, activations


def _differences(pairs: list[tuple[Tensor, Tensor]]) -> tuple[float, float]:
    """(max relative, max absolute) difference over (manual, autograd) tensor pairs."""
    relative = max(rel_diff(m, a) for m, a in pairs)
    absolute = max(max_abs_diff(m, a) for m, a in pairs)
    return relative, absolute


def _capture_step(
    pair: SideBySide,
    example: WorkedExample,
    number: int,
    params_before,
    autograd_z,
    autograd_a,
    loss_autograd: float,
) -> StepValues:
    """Copy the hand-written model's cache after `pair.step` (buffers are reused next step)."""
    manual, spec = pair.manual, example.spec
    layers = manual.layers
    pre_activations = [_copy(layer.pre_activation) for layer in layers]
    activations = [_copy(layer.output) for layer in layers]
    deltas = [_copy(layer.delta) for layer in layers]
    # dL/da: the loss gradient at the output (BP1's left factor); delta of the layer above times its
    # weights, as they were before the update, below (BP2's left factor).
    grad_activations = [None] * len(layers)
    grad_activations[-1] = LOSSES[spec.loss].gradient(activations[-1].clone(), example.targets)
    for i in range(len(layers) - 2, -1, -1):
        grad_activations[i] = deltas[i + 1] @ params_before[f"layers.{i + 1}.weight"]
    grads = {name: _copy(g) for name, g in manual.named_grads()}
    params_after = {name: _copy(p) for name, p in manual.named_parameters()}
    autograd_params = dict(pair.autograd.named_parameters())
    loss = float(manual.loss(activations[-1], example.targets))
    compared = [(torch.tensor(loss), torch.tensor(loss_autograd))]
    compared += list(zip(pre_activations, autograd_z, strict=True))
    compared += list(zip(activations, autograd_a, strict=True))
    compared += [(grads[n], autograd_params[n].grad) for n in grads]
    compared += [(params_after[n], autograd_params[n].detach()) for n in params_after]
    relative, absolute = _differences(compared)
    return StepValues(
        loss=loss,
        pre_activations=pre_activations,
        activations=activations,
        probabilities=probabilities_of(spec, activations[-1]),
        step=number,
        grad_activations=grad_activations,
        deltas=deltas,
        grads=grads,
        params_before=params_before,
        params_after=params_after,
        max_manual_autograd_diff=relative,
        max_manual_autograd_abs_diff=absolute,
    )


def read_quantity(quantity: Quantity, values: ForwardValues, targets: Tensor, sample: int) -> float:
    """The true value of a named quantity at one step (or after the last update)."""
    kind, layer, index = quantity.kind, quantity.layer, quantity.index
    if kind == "loss":
        return values.loss
    if kind in ("output", "hidden"):
        return float(values.activations[layer][sample, index[0]])
    if kind in ("output_pre", "hidden_pre"):
        return float(values.pre_activations[layer][sample, index[0]])
    if kind == "prob":
        return float(values.probabilities[sample, index[0]])
    if kind == "error":  # target - output, as the sources write "actual - predicted"
        return float(targets[sample, index[0]] - values.outputs[sample, index[0]])
    assert isinstance(values, StepValues)
    if kind == "dloss":
        return float(values.grad_activations[-1][sample, index[0]])
    if kind == "delta":
        return float(values.deltas[layer][sample, index[0]])
    tensors = {
        "grad": values.grads,
        "param_before": values.params_before,
        "param_after": values.params_after,
    }[kind]
    return float(tensors[quantity.parameter][index])


def kept_step_numbers(steps: int, max_kept: int, always: set[int]) -> set[int]:
    """Which steps a run of `steps` keeps: about `max_kept` evenly, the first, and `always`."""
    stride = max(1, math.ceil(steps / max_kept))
    return {s for s in range(1, steps + 1) if s == 1 or s % stride == 0} | always


def run_example(example: WorkedExample) -> WorkedRun:
    """Train both models on the full batch for `train.steps` steps; keep every number of the run.

    Stops at the first inf/NaN loss (`diverged_at_step`) and on Ctrl-C (`interrupted`), keeping what
    it has. Claims are read as the run passes their step, so thinning the kept steps loses none.
    """
    config = example.config
    pair = SideBySide(example.spec, example.optimizer)
    x, y = example.inputs, example.targets
    total = config.train.steps
    keep = kept_step_numbers(
        total,
        config.train.max_trace_steps,
        {config.picture.step} | {c.step for c in example.claims},
    )
    run = WorkedRun(example, pair, steps=[], final=None, final_diff=0.0, steps_run=0)
    last: StepValues | None = None
    try:
        for number in range(1, total + 1):
            params_before = dict(pair.manual.state_dict())
            autograd_z, autograd_a = autograd_forward(pair.autograd, x)
            record = pair.step(x, y)
            last = _capture_step(
                pair, example, number, params_before, autograd_z, autograd_a, record.loss_autograd
            )
            run.steps_run = number
            for claim in example.claims:
                if claim.step == number and not claim.quantity.final:
                    run.claim_values[claim.number] = read_quantity(
                        claim.quantity, last, y, claim.sample
                    )
            if number in keep:
                run.steps.append(last)
            if not (math.isfinite(record.loss_manual) and math.isfinite(record.loss_autograd)):
                run.diverged_at_step = number
                break
    except KeyboardInterrupt:
        run.interrupted = True
    if last is not None and (not run.steps or run.steps[-1] is not last):
        run.steps.append(last)
    if run.diverged_at_step is None and run.steps_run:
        run.final, run.final_diff = _final_values(pair, example)
        for claim in example.claims:
            if claim.quantity.final:
                run.claim_values[claim.number] = read_quantity(
                    claim.quantity, run.final, y, claim.sample
                )
    return run


def _final_values(pair: SideBySide, example: WorkedExample) -> tuple[ForwardValues, float]:
    """The forward pass after the last update, and its largest difference from autograd."""
    manual, spec = pair.manual, example.spec
    outputs = manual.forward(example.inputs)
    loss = float(manual.loss(outputs, example.targets))
    values = ForwardValues(
        loss=loss,
        pre_activations=[_copy(layer.pre_activation) for layer in manual.layers],
        activations=[_copy(layer.output) for layer in manual.layers],
        probabilities=probabilities_of(spec, outputs),
    )
    autograd_z, autograd_a = autograd_forward(pair.autograd, example.inputs)
    loss_autograd = float(pair.autograd.loss(autograd_a[-1], example.targets))
    compared = [(torch.tensor(loss), torch.tensor(loss_autograd))]
    compared += list(zip(values.pre_activations, autograd_z, strict=True))
    compared += list(zip(values.activations, autograd_a, strict=True))
    relative, _ = _differences(compared)
    return values, relative


# ---------------------------------------------------------------------------------------------------
# The claims audit
# ---------------------------------------------------------------------------------------------------
@dataclass
class ClaimResult:
    """One audited claim: what the source says, what its formula gives, what backprop gives."""

    claim: Claim
    true_value: float | None  # None: the run did not reach the claim's step

    @property
    def agrees(self) -> bool | None:
        if self.true_value is None:
            return None
        return agrees(self.claim.claimed, self.true_value, self.claim.tolerance)

    @property
    def formula_agrees(self) -> bool | None:
        if self.claim.formula_value is None:
            return None
        return agrees(self.claim.claimed, self.claim.formula_value, self.claim.tolerance)

    def as_dict(self) -> dict[str, Any]:
        claim = self.claim
        return {
            "name": claim.quantity.name,
            "step": "final" if claim.quantity.final else claim.step,
            "sample": claim.sample,
            "claimed": claim.claimed,
            "written": claim.written,
            "tolerance": claim.tolerance,
            "formula": claim.formula,
            "formula_value": claim.formula_value,
            "true_value": self.true_value,
            "agrees": self.agrees,
            "formula_agrees": self.formula_agrees,
        }


def audit_claims(run: WorkedRun) -> list[ClaimResult]:
    return [ClaimResult(c, run.claim_values.get(c.number)) for c in run.example.claims]


AUDIT_LEGEND = (
    "A claim agrees when |claimed − value| ≤ ± (half a unit in the last decimal place the claim "
    "was written with: 0.27 → 0.005)."
)


def audit_table(results: list[ClaimResult]) -> str:
    """The audit as a plain-text table, one row per claim, with its legend."""
    with_formulas = any(r.claim.formula is not None for r in results)
    with_steps = any(r.claim.step != 1 or r.claim.quantity.final for r in results)
    header = ["step", "quantity", "claimed", "±"]
    if with_formulas:
        header += ["source's formula", "formula gives"]
    header += ["backprop gives", "claim vs backprop"]
    if with_formulas:
        header += ["claim vs formula"]
    rows = []
    for result in results:
        claim = result.claim
        # Two digits more than the claim was written with, so a disagreement shows.
        digits = max(6, claim.significant_digits + 2)
        row = [
            "final" if claim.quantity.final else str(claim.step),
            claim.quantity.name + (f" (sample {claim.sample})" if claim.sample else ""),
            claim.written,
            fmt(claim.tolerance, 1),
        ]
        if with_formulas:
            row += [
                claim.formula or "–",
                "–" if claim.formula_value is None else fmt(claim.formula_value, digits),
            ]
        row += [
            "not reached" if result.true_value is None else fmt(result.true_value, digits),
            _verdict(result.agrees),
        ]
        if with_formulas:
            row += [_verdict(result.formula_agrees)]
        rows.append(row)
    if not with_steps:  # every claim is about step 1: the column would say nothing
        header, rows = header[1:], [row[1:] for row in rows]
    left = {"quantity", "source's formula"}
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if name in left else cell.rjust(width)
            for cell, width, name in zip(cells, widths, header, strict=True)
        ).rstrip()

    return "\n".join([AUDIT_LEGEND, line(header), *(line(row) for row in rows)])


def _verdict(value: bool | None) -> str:
    return "–" if value is None else ("agrees" if value else "WRONG")


# ---------------------------------------------------------------------------------------------------
# The walk-through text
# ---------------------------------------------------------------------------------------------------
def fmt(value: float, digits: int = 6) -> str:
    """A number for reading: 6 significant digits, no trailing zeros, -0 shown as 0."""
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def factor(value: float) -> str:
    """A number as a factor of a product: negative numbers in parentheses."""
    return f"({fmt(value)})" if value < 0 else fmt(value)


def _sum(terms: list[str]) -> str:
    if len(terms) > SHOWN_TERMS:
        terms = [*terms[: SHOWN_TERMS - 1], f"… ({len(terms) - SHOWN_TERMS + 1} more terms)"]
    return " + ".join(terms)


def activation_text(name: str, z: float, a: float) -> str:
    """a = f(z), written out for one neuron."""
    if name == "identity":
        return f"a = z = {fmt(a)}"
    if name == "sigmoid":
        return f"a = 1/(1 + e^{factor(-z)}) = {fmt(a)}"
    if name == "tanh":
        return f"a = tanh({fmt(z)}) = {fmt(a)}"
    if name == "relu":
        return f"a = max({fmt(z)}, 0) = {fmt(a)}"
    if name == "leaky_relu":
        return f"a = {'z' if z > 0 else '0.01·z'} = {fmt(a)}"
    return f"a = ln(1 + e^{factor(z)}) = {fmt(a)}"  # softplus


def derivative_text(name: str, z: float, a: float, derivative: float) -> str:
    """f'(z), written out for one neuron."""
    if name == "identity":
        return "1"
    if name == "sigmoid":
        return f"a(1 − a) = {fmt(a)}·(1 − {fmt(a)}) = {fmt(derivative)}"
    if name == "tanh":
        return f"1 − a² = 1 − {factor(a)}² = {fmt(derivative)}"
    if name == "relu":
        return f"[z > 0] = {fmt(derivative)}"
    if name == "leaky_relu":
        return f"{'1 (z > 0)' if z > 0 else '0.01 (z ≤ 0)'}"
    return f"σ(z) = {fmt(derivative)}"  # softplus


def _neuron(labels: list[str] | None, unit: int) -> str:
    return f" ({labels[unit]})" if labels else ""


class Walkthrough:
    """Builds the printed walk-through of a run, step by step."""

    def __init__(self, run: WorkedRun):
        self.run = run
        self.example = run.example
        self.spec = run.example.spec
        self.labels = run.example.config.labels
        self.x = run.example.inputs
        self.y = run.example.targets
        self.samples = min(len(self.x), SHOWN_SAMPLES)

    def layer_labels(self, layer: int) -> list[str] | None:
        if layer == self.spec.num_layers - 1:
            return self.labels.outputs
        return self.labels.hidden[layer] if self.labels.hidden else None

    def role(self, layer: int) -> str:
        return "output layer" if layer == self.spec.num_layers - 1 else f"hidden layer {layer}"

    def header(self) -> list[str]:
        config, spec, optimizer = self.example.config, self.spec, self.example.optimizer
        sizes = "-".join(map(str, spec.sizes))
        loss = LOSSES[spec.loss]
        rule = (
            "plain gradient descent"
            if optimizer.name == "sgd" and not optimizer.momentum
            else (
                f"{optimizer.name} (momentum {optimizer.momentum})"
                if optimizer.name == "sgd"
                else optimizer.name
            )
        )
        lines = [
            f"{config.title}" + (f" — {self.example.variant}" if config.data.standardise else "")
        ]
        if config.source:
            lines.append(f"source: {config.source}")
        lines += [
            f"network {sizes}, activations {', '.join(spec.activations)}; "
            f"loss {spec.loss}: L = {loss.formula}",
            f"{rule}, lr {optimizer.lr:g}, biases {'trained' if optimizer.train_biases else 'held fixed'}"
            f", {self.run.steps_run} full-batch step(s) on {len(self.x)} sample(s), "
            f"{str(spec.dtype).removeprefix('torch.')}; indices count from 0",
        ]
        return lines

    # -- one step ---------------------------------------------------------------------------------
    def step(self, values: StepValues) -> list[str]:
        lines = [f"── step {values.step} " + "─" * 60]
        lines += self.forward(values)
        lines += self.loss(values)
        lines += self.backward(values)
        lines += self.update(values)
        verdict = "within" if values.max_manual_autograd_diff <= self.run.tolerance else "OUTSIDE"
        lines.append(
            f"hand-written vs autograd at step {values.step}: max relative difference "
            f"{values.max_manual_autograd_diff:.1e} over every z, a, the loss, every gradient and "
            f"updated parameter ({verdict} {self.run.tolerance:g})"
        )
        return lines

    def forward(self, values: StepValues) -> list[str]:
        lines = ["forward pass: z = W·a_prev + b, a = f(z)"]
        input_labels = self.labels.inputs
        for n in range(self.samples):
            x_row = self.x[n].tolist()
            shown = ", ".join(
                f"{input_labels[i]} = {fmt(v)}" if input_labels else fmt(v)
                for i, v in enumerate(x_row)
            )
            prefix = f"sample {n}: " if len(self.x) > 1 else ""
            lines.append(f"  {prefix}input x = [{shown}], target {self.target_text(n)}")
            for layer, name in enumerate(self.spec.activations):
                weight = values.params_before[f"layers.{layer}.weight"]
                bias = values.params_before[f"layers.{layer}.bias"]
                a_prev = self.x if layer == 0 else values.activations[layer - 1]
                lines.append(f"  layers.{layer} ({self.role(layer)}, {name})")
                labels = self.layer_labels(layer)
                for j in range(weight.shape[0]):
                    terms = [
                        f"{factor(float(weight[j, i]))}·{factor(float(a_prev[n, i]))}"
                        for i in range(weight.shape[1])
                    ]
                    z = float(values.pre_activations[layer][n, j])
                    a = float(values.activations[layer][n, j])
                    lines.append(
                        f"    z[{j}]{_neuron(labels, j)} = {_sum([*terms, factor(float(bias[j]))])}"
                        f" = {fmt(z)};  {activation_text(name, z, a)}"
                    )
        if len(self.x) > self.samples:
            lines.append(f"  (samples {self.samples} to {len(self.x) - 1} likewise)")
        return lines

    def target_text(self, n: int) -> str:
        if LOSSES[self.spec.loss].classification:
            label = int(self.y[n])
            names = self.labels.outputs
            return f"class {label}" + (f" ({names[label]})" if names else "")
        return f"y = [{', '.join(fmt(v) for v in self.y[n].tolist())}]"

    def loss(self, values: StepValues) -> list[str]:
        spec, out = self.spec, values.outputs
        name = spec.loss
        lines = [f"loss ({name}: L = {LOSSES[name].formula})"]
        rows = range(self.samples)
        hidden_terms = ["…"] if len(self.x) > self.samples else []  # samples not written out
        if name == "cross_entropy":
            for n in rows:
                p = values.probabilities[n].tolist()
                lines.append(
                    f"  p = softmax(z) = [{', '.join(fmt(v) for v in p)}]"
                    + (f" (sample {n})" if len(self.x) > 1 else "")
                )
            terms = [f"ln({fmt(float(values.probabilities[n, int(self.y[n])]))})" for n in rows]
            terms += hidden_terms
            body = f"−{terms[0]}" if len(self.x) == 1 else f"−({_sum(terms)})/{len(self.x)}"
        elif name == "bce":
            terms = [
                f"−({fmt(float(self.y[n, k]))}·ln({fmt(float(out[n, k]))}) + "
                f"{fmt(1 - float(self.y[n, k]))}·ln(1 − {fmt(float(out[n, k]))}))"
                for n in rows
                for k in range(out.shape[1])
            ] + hidden_terms
            body = f"({_sum(terms)})/{out.numel()}"
        else:
            terms = [
                f"({fmt(float(out[n, k]))} − {fmt(float(self.y[n, k]))})²"
                for n in rows
                for k in range(out.shape[1])
            ] + hidden_terms
            body = {
                "half_sse": f"½·({_sum(terms)})",
                "sse": _sum(terms),
                "mse": f"({_sum(terms)})/{out.numel()}",
            }[name]
        lines.append(f"  L = {body} = {fmt(values.loss)}")
        return lines

    def output_gradient_text(self, values: StepValues, n: int, k: int) -> str:
        """dL/da at output k of sample n: the loss's derivative, written out."""
        spec, out = self.spec, values.outputs
        a = fmt(float(out[n, k]))
        g = fmt(float(values.grad_activations[-1][n, k]))
        if spec.loss == "cross_entropy":
            hit = int(int(self.y[n]) == k)
            p = fmt(float(values.probabilities[n, k]))
            return f"(p[{k}] − [y = {k}])/N = ({p} − {hit})/{len(self.x)} = {g}"
        y = fmt(float(self.y[n, k]))
        return {
            "half_sse": f"ŷ − y = {a} − {y} = {g}",
            "sse": f"2(ŷ − y) = 2·({a} − {y}) = {g}",
            "mse": f"2(ŷ − y)/numel = 2·({a} − {y})/{out.numel()} = {g}",
            "bce": f"(ŷ − y)/(ŷ(1 − ŷ))/numel = ({a} − {y})/({a}·(1 − {a}))/{out.numel()} = {g}",
        }[spec.loss]

    def backward(self, values: StepValues) -> list[str]:
        lines = [
            "backward pass (chain rule): δ = ∂L/∂z = ∂L/∂a · f'(z) (BP1 at the output, BP2 below),",
            "  ∂L/∂W[j,i] = Σ_samples δ[j]·a_prev[i] (BP4), ∂L/∂b[j] = Σ_samples δ[j] (BP3)",
        ]
        last = self.spec.num_layers - 1
        many = len(self.x) > 1
        for layer in range(last, -1, -1):
            name = self.spec.activations[layer]
            labels = self.layer_labels(layer)
            lines.append(f"  layers.{layer} ({self.role(layer)}, {name})")
            derivative = ACTIVATIONS[name].backward(
                torch.ones_like(values.pre_activations[layer]),
                values.pre_activations[layer],
                values.activations[layer],
            )
            width = values.deltas[layer].shape[1]
            for n in range(self.samples):
                prefix = f"sample {n}: " if many else ""
                for j in range(width):
                    if layer == last:
                        grad_text = self.output_gradient_text(values, n, j)
                    else:
                        w_next = values.params_before[f"layers.{layer + 1}.weight"]
                        d_next = values.deltas[layer + 1]
                        terms = [
                            f"{factor(float(d_next[n, k]))}·{factor(float(w_next[k, j]))}"
                            for k in range(w_next.shape[0])
                        ]
                        grad_text = (
                            f"Σ_k δ_next[k]·W_next[k,{j}] = {_sum(terms)} = "
                            f"{fmt(float(values.grad_activations[layer][n, j]))}"
                        )
                    z = float(values.pre_activations[layer][n, j])
                    a = float(values.activations[layer][n, j])
                    d = float(derivative[n, j])
                    lines.append(f"    {prefix}∂L/∂a[{j}]{_neuron(labels, j)} = {grad_text}")
                    lines.append(
                        f"    {prefix}δ[{j}] = {factor(float(values.grad_activations[layer][n, j]))}"
                        f" · f'(z[{j}]) = {factor(float(values.grad_activations[layer][n, j]))} · "
                        f"{fmt(d)} = {fmt(float(values.deltas[layer][n, j]))}"
                        + (
                            ""
                            if name == "identity"
                            else f"   [f'(z) = {derivative_text(name, z, a, d)}]"
                        )
                    )
            a_prev = self.x if layer == 0 else values.activations[layer - 1]
            grad_w = values.grads[f"layers.{layer}.weight"]
            grad_b = values.grads[f"layers.{layer}.bias"]
            delta = values.deltas[layer]
            over = "Σ_samples " if many else ""
            more = (
                [f"… ({len(self.x) - self.samples} more samples)"]
                if len(self.x) > self.samples
                else []
            )
            for j in range(width):
                for i in range(grad_w.shape[1]):
                    terms = [
                        f"{factor(float(delta[n, j]))}·{factor(float(a_prev[n, i]))}"
                        for n in range(self.samples)
                    ]
                    lines.append(
                        f"    ∂L/∂W[{j},{i}] = {over}δ[{j}]·a_prev[{i}] = {_sum(terms + more)} = "
                        f"{fmt(float(grad_w[j, i]))}"
                    )
                terms = [factor(float(delta[n, j])) for n in range(self.samples)]
                lines.append(
                    f"    ∂L/∂b[{j}] = {over}δ[{j}] = {_sum(terms + more)}"
                    + (f" = {fmt(float(grad_b[j]))}" if many else "")
                )
        return lines

    def update(self, values: StepValues) -> list[str]:
        optimizer = self.example.optimizer
        plain = optimizer.name == "sgd" and not optimizer.momentum
        lr = optimizer.lr
        if plain:
            lines = [f"update (gradient descent, lr = {lr:g}): p ← p − lr·∂L/∂p"]
        else:
            lines = [f"update ({optimizer.name}, lr = {lr:g}; the step is the optimizer's)"]
        for name, before in values.params_before.items():
            if name.endswith(".bias") and not optimizer.train_biases:
                lines.append(f"  {name}: held fixed (train.train_biases = false)")
                continue
            after, grad = values.params_after[name], values.grads[name]
            for index in _indices(before.shape):
                b, g, a = float(before[index]), float(grad[index]), float(after[index])
                where = f"{name}[{','.join(map(str, index))}]"
                if plain:
                    lines.append(f"  {where} = {fmt(b)} − {fmt(lr)}·{factor(g)} = {fmt(a)}")
                else:
                    lines.append(f"  {where} = {fmt(b)} → {fmt(a)} (∂L/∂p = {fmt(g)})")
        return lines

    def final(self) -> list[str]:
        run = self.run
        if run.final is None:
            return []
        outputs = run.final.outputs
        lines = [
            f"after the last update (step {run.steps_run}): loss {fmt(run.final.loss)}, output "
            + "; ".join(
                "[" + ", ".join(fmt(v) for v in outputs[n].tolist()) + "]"
                for n in range(self.samples)
            )
        ]
        if run.final.probabilities is not None:
            names = self.labels.outputs or [str(k) for k in range(outputs.shape[1])]
            p = run.final.probabilities[0].tolist()
            lines.append(
                "  probabilities: "
                + ", ".join(f"{n} {fmt(v)}" for n, v in zip(names, p, strict=True))
            )
        return lines

    def summary(self) -> list[str]:
        """One row per kept step (thinned to about SUMMARY_ROWS) for a run of several steps."""
        steps = self.run.steps
        if len(steps) <= 1:
            return []
        stride = max(1, math.ceil(len(steps) / SUMMARY_ROWS))
        shown = [s for i, s in enumerate(steps) if i % stride == 0 or s is steps[-1]]
        lines = ["  step  loss before the step  output (sample 0)  max relative difference"]
        for s in shown:
            output = ", ".join(fmt(v) for v in s.outputs[0].tolist())
            lines.append(
                f"  {s.step:>4}  {fmt(s.loss):>20}  {output:>17}  {s.max_manual_autograd_diff:.1e}"
            )
        return lines

    def text(self) -> str:
        run = self.run
        detailed = run.steps if run.steps_run <= DETAILED_STEPS else [run.steps[0], run.steps[-1]]
        lines = self.header()
        for values in detailed:
            lines += self.step(values)
        if run.steps_run > DETAILED_STEPS:
            lines.append(f"(steps 2 to {run.steps_run - 1} are not written out; losses by step:)")
        if run.steps_run > 1:
            lines += self.summary()
        lines += self.final()
        return "\n".join(lines)


def _indices(shape: torch.Size) -> list[tuple[int, ...]]:
    """Every index of a tensor of `shape`, row by row: (0, 0), (0, 1), ... or (0,), (1,), ..."""
    return list(itertools.product(*(range(n) for n in shape)))


# ---------------------------------------------------------------------------------------------------
# Raw against standardised inputs
# ---------------------------------------------------------------------------------------------------
def scale_comparison(raw: WorkedRun, standardised: WorkedRun) -> str:
    """The first step on raw and on standardised inputs, side by side."""
    rows: list[tuple[str, str, str]] = []

    def add(label: str, value) -> None:
        rows.append((label, value(raw), value(standardised)))

    def first(run: WorkedRun) -> StepValues:
        return run.steps[0]

    add(
        "inputs (sample 0)",
        lambda r: "[" + ", ".join(fmt(v, 4) for v in r.example.inputs[0].tolist()) + "]",
    )
    add("output before the step", lambda r: fmt(float(first(r).outputs[0, 0])))
    add("loss before the step", lambda r: fmt(first(r).loss))
    for name in raw.steps[0].grads:
        if name.endswith(".weight"):
            add(
                f"largest |∂L/∂W| {name}",
                lambda r, n=name: fmt(float(first(r).grads[n].abs().max()), 4),
            )
            add(
                f"largest change of {name}",
                lambda r, n=name: fmt(
                    float((first(r).params_after[n] - first(r).params_before[n]).abs().max()), 4
                ),
            )
    add(
        "output after the step",
        lambda r: (
            fmt(float(r.steps[1].outputs[0, 0]))
            if len(r.steps) > 1
            else (
                fmt(float(r.final.outputs[0, 0]))
                if r.final is not None and r.steps_run == 1
                else "–"
            )
        ),
    )
    add(
        "loss after the step",
        lambda r: (
            fmt(r.steps[1].loss)
            if len(r.steps) > 1
            else (fmt(r.final.loss) if r.final is not None and r.steps_run == 1 else "–")
        ),
    )
    header = ("", "raw inputs", "standardised inputs")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    lines = [
        "the same first step on raw and on standardised inputs (same function, same first output):"
    ]
    for row in [header, *rows]:
        lines.append(
            f"  {row[0].ljust(widths[0])}  {row[1].rjust(widths[1])}  {row[2].rjust(widths[2])}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# trace.json, and everything a run writes
# ---------------------------------------------------------------------------------------------------
def _nested(tensor: Tensor) -> Any:
    return tensor.detach().cpu().tolist()


def step_dict(values: StepValues) -> dict[str, Any]:
    return {
        "step": values.step,
        "loss": values.loss,
        "outputs": _nested(values.outputs),
        "hidden": [_nested(a) for a in values.activations[:-1]],
        "pre_activations": [_nested(z) for z in values.pre_activations],
        **(
            {"probabilities": _nested(values.probabilities)}
            if values.probabilities is not None
            else {}
        ),
        "grad_activations": [_nested(g) for g in values.grad_activations],
        "deltas": [_nested(d) for d in values.deltas],
        "grads": {name: _nested(g) for name, g in values.grads.items()},
        "params_before": {name: _nested(p) for name, p in values.params_before.items()},
        "params_after": {name: _nested(p) for name, p in values.params_after.items()},
        "max_manual_autograd_diff": values.max_manual_autograd_diff,
        "max_manual_autograd_abs_diff": values.max_manual_autograd_abs_diff,
    }


def run_dict(run: WorkedRun) -> dict[str, Any]:
    """The trace of one run (without the claims)."""
    spec = run.example.spec
    final = None
    if run.final is not None:
        final = {"loss": run.final.loss, "outputs": _nested(run.final.outputs)}
        if run.final.probabilities is not None:
            final["probabilities"] = _nested(run.final.probabilities)
        final["max_manual_autograd_diff"] = run.final_diff
    return {
        "variant": run.example.variant,
        "network": {
            "sizes": spec.sizes,
            "activations": spec.activations,
            "loss": spec.loss,
            "dtype": str(spec.dtype).removeprefix("torch."),
        },
        "inputs": _nested(run.example.inputs),
        "targets": _nested(run.example.targets),
        "status": {
            "steps_run": run.steps_run,
            "steps_kept": len(run.steps),
            "diverged_at_step": run.diverged_at_step,
            "interrupted": run.interrupted,
        },
        "agreement": {
            "measure": "max |hand-written − autograd| / max |autograd| per tensor, over every z, a, "
            "the loss, every gradient and updated parameter",
            "max_manual_autograd_diff": run.max_manual_autograd_diff,
            "tolerance": run.tolerance,
            "within_tolerance": run.max_manual_autograd_diff <= run.tolerance,
        },
        "steps": [step_dict(values) for values in run.steps],
        "final": final,
    }


@dataclass
class WorkedResult:
    """A worked example run on its inputs, and optionally on standardised inputs, with its audit."""

    run: WorkedRun
    standardised: WorkedRun | None
    audit: list[ClaimResult]

    def text(self) -> str:
        parts = [Walkthrough(self.run).text()]
        if self.standardised is not None:
            parts.append("═" * 70)
            parts.append(Walkthrough(self.standardised).text())
            if self.run.steps and self.standardised.steps:
                parts.append(scale_comparison(self.run, self.standardised))
        if self.audit:
            parts.append("claims of the source, audited:\n" + audit_table(self.audit))
        return "\n\n".join(parts)

    def trace(self) -> dict[str, Any]:
        trace = run_dict(self.run)
        trace["title"] = self.run.example.config.title
        trace["source"] = self.run.example.config.source
        trace["claims"] = [result.as_dict() for result in self.audit]
        trace["claims_tolerance"] = AUDIT_LEGEND
        if self.standardised is not None:
            trace["standardised"] = run_dict(self.standardised)
        return trace

    def runs(self) -> list[WorkedRun]:
        return [self.run] + ([self.standardised] if self.standardised is not None else [])


def run_worked_example(example: WorkedExample) -> WorkedResult:
    """Run the example (and its standardised twin, if asked for) and audit its claims."""
    run = run_example(example)
    twin = example.standardised()
    standardised = run_example(twin) if twin is not None and not run.interrupted else None
    return WorkedResult(run, standardised, audit_claims(run))


def picture_state(run: WorkedRun):
    """The network picture's numbers at the configured step (or the last step run before it)."""
    from bpdemo.plots.network import NetworkState, short

    config = run.example.config
    wanted = min(config.picture.step, run.steps_run)
    values = run.step(wanted) or run.steps[-1]
    sample = config.picture.sample
    spec = run.example.spec
    classification = LOSSES[spec.loss].classification
    if classification:
        label = int(run.example.targets[sample])
        names = config.labels.outputs
        target = [f"target: class {label}" + (f" ({names[label]})" if names else "")]
    else:
        target = [f"y = {short(v)}" for v in run.example.targets[sample].tolist()]
    return NetworkState(
        weights=[
            values.params_before[f"layers.{i}.weight"].double().cpu().numpy()
            for i in range(spec.num_layers)
        ],
        biases=[
            values.params_before[f"layers.{i}.bias"].double().cpu().numpy()
            for i in range(spec.num_layers)
        ],
        grad_weights=[
            values.grads[f"layers.{i}.weight"].double().cpu().numpy()
            for i in range(spec.num_layers)
        ],
        grad_biases=[
            values.grads[f"layers.{i}.bias"].double().cpu().numpy() for i in range(spec.num_layers)
        ],
        inputs=run.example.inputs[sample].double().cpu().numpy(),
        pre_activations=[z[sample].double().cpu().numpy() for z in values.pre_activations],
        activations=[a[sample].double().cpu().numpy() for a in values.activations],
        activation_names=list(spec.activations),
        loss=values.loss,
        loss_name=spec.loss,
        targets=target,
        probabilities=None
        if values.probabilities is None
        else values.probabilities[sample].double().cpu().numpy(),
        input_labels=config.labels.inputs,
        hidden_labels=config.labels.hidden,
        output_labels=config.labels.outputs,
        title=f"{config.title}"
        + (f" — {run.example.variant}" if config.data.standardise else "")
        + f", step {values.step}"
        + (f", sample {sample}" if len(run.example.inputs) > 1 else ""),
    )


def write_outputs(run_dir: RunDir, config: WorkedConfig, result: WorkedResult) -> list[Path]:
    """config.toml, trace.json, metrics.json, steps.csv and the network picture(s)."""
    from bpdemo.plots.network import network_picture

    written = [
        run_dir.write_text("config.toml", dump_config(config)),
        run_dir.write_json("trace.json", result.trace()),
    ]
    metrics = {
        "status": result.trace()["status"],
        "agreement": {r.example.variant: run_dict(r)["agreement"] for r in result.runs()},
        "final_loss": {
            r.example.variant: (r.final.loss if r.final else None) for r in result.runs()
        },
        "claims": {
            "total": len(result.audit),
            "agree": sum(1 for c in result.audit if c.agrees),
            "wrong": sum(1 for c in result.audit if c.agrees is False),
            "not_reached": sum(1 for c in result.audit if c.agrees is None),
        },
    }
    written.append(run_dir.write_json("metrics.json", metrics))
    written.append(
        run_dir.write_csv(
            "steps.csv",
            (
                {
                    "variant": r.example.variant,
                    "step": s.step,
                    "loss": s.loss,
                    "max_manual_autograd_diff": s.max_manual_autograd_diff,
                    "max_manual_autograd_abs_diff": s.max_manual_autograd_abs_diff,
                }
                for r in result.runs()
                for s in r.steps
            ),
        )
    )
    for r, name in zip(result.runs(), ("network.png", "network_standardised.png"), strict=False):
        if r.steps:
            written.append(run_dir.save_figure(network_picture(picture_state(r)), name))
    return written


def raise_on_failure(result: WorkedResult, run_dir: RunDir) -> None:
    """After everything is written: divergence -> DivergenceError, Ctrl-C -> RunError (exit 1)."""
    for run in result.runs():
        if run.diverged_at_step is not None:
            which = f"{run.example.variant}: " if result.standardised is not None else ""
            raise DivergenceError(
                f"{which}the loss became inf or NaN at step {run.diverged_at_step}; "
                f"try a smaller learning rate (now {run.example.optimizer.lr:g}) or fewer steps; "
                f"the steps so far are in {run_dir.path / 'trace.json'}",
                run.diverged_at_step,
            )
    if result.run.interrupted:
        raise RunError(
            f"interrupted after step {result.run.steps_run}; partial results are in "
            f"{run_dir.path / 'trace.json'}"
        )
