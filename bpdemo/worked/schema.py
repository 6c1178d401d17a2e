"""The worked-example config: a network with explicit weights, its data, its training, and claims.

A worked example is one TOML file (`configs/worked_*.toml`), a dict or a TOML string (`load`). Its
sections are checked here one by one (types, ranges, names); `WorkedExample.from_config` then checks
them against each other and against the limits below. A worked example is written out number by
number, so it is small by nature; the limits keep a mistake (a pasted page as a title, a width of
200,000) from running for minutes before anything is said.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from bpdemo.infra.config import (
    Override,
    PositiveFloat,
    PositiveInt,
    Section,
    load_config,
    parse_toml,
    read_toml,
    same_as,
    validate,
)
from bpdemo.infra.errors import ConfigError
from bpdemo.infra.limits import MAX_THREADS  # train.threads
from bpdemo.optim import OptimizerSpec
from bpdemo.spec import ActivationName, DtypeName, LossName
from bpdemo.worked.formula import MAX_FORMULA_LENGTH

# -- limits (each refused with one line and exit status 2) ------------------------------------------
MAX_LAYERS = 6  # layers with weights (so at most 7 widths, the inputs included)
MAX_WIDTH = 16  # neurons in one layer (a picture stays readable up to about 8)
MAX_ROWS = 64  # samples in [data]
MAX_STEPS = 100_000  # train.steps
MAX_TRACE_STEPS = 1_000  # train.max_trace_steps
MAX_CLAIMS = 500
MAX_TITLE = 200  # characters of `title`
MAX_SOURCE = 500  # characters of `source`
MAX_NAME = 100  # characters of a neuron's label, a claim's name or value, the device
# MAX_FORMULA_LENGTH (bpdemo.worked.formula): characters of a claim's formula

Phase = Literal["step", "forward", "backward", "update"]
PHASES: tuple[str, ...] = get_args(Phase)  # step: values and gradients of the step, in one picture
EdgeLabels = Literal["auto", "all", "none"]


class NetworkSection(Section):
    """[network]: layer widths (input first), one activation per layer after the input, the loss."""

    sizes: Annotated[list[Annotated[int, Field(gt=0, le=MAX_WIDTH)]], Field(min_length=2)]
    activations: list[ActivationName]
    loss: LossName = "half_sse"
    dtype: DtypeName = "float64"
    device: str = "cpu"
    bias: bool = True  # torch's word: false gives layers without biases, as many books draw them


class InitSection(Section):
    """[init]: the starting weights, one (out, in) matrix per layer, and one bias list per layer."""

    weights: list[list[list[float]]]
    biases: list[list[float]] | None = None  # zeros when omitted


class WorkedTrainSection(Section):
    """[train]: full-batch steps (every step uses all the inputs, so one step is one epoch). The
    update's keys are `OptimizerSpec`'s, with its checks and defaults: plain gradient descent."""

    lr: same_as(OptimizerSpec, "lr")
    steps: Annotated[int, Field(gt=0, le=MAX_STEPS)] = 1
    train_biases: same_as(OptimizerSpec, "train_biases")
    optimizer: same_as(OptimizerSpec, "name")  # sgd with momentum 0 is plain gradient descent
    momentum: same_as(OptimizerSpec, "momentum")
    # A longer run keeps about this many steps in trace.json.
    max_trace_steps: Annotated[int, Field(gt=0, le=MAX_TRACE_STEPS)] = 200
    # torch's CPU threads (--threads); None: torch's default.
    threads: Annotated[int, Field(gt=0, le=MAX_THREADS)] | None = None


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
    """[labels]: optional names for the neurons and the parameters (text, pictures, audit, claims).

    weights and biases are nested as [init] weights and biases are: one (out, in) matrix of names per
    layer, one list per layer.
    """

    inputs: list[str] | None = None
    hidden: list[list[str]] | None = None  # one list per hidden layer
    outputs: list[str] | None = None
    weights: list[list[list[str]]] | None = None
    biases: list[list[str]] | None = None


DeltaConvention = Literal["dE/dz", "-dE/dz"]
ErrorConvention = Literal["t - y", "y - t"]


class ConventionsSection(Section):
    """[conventions]: the signs the source writes in, in which its claims are judged.

    delta: "dE/dz" (δ = ∂E/∂z, as the walk-through writes it) or "-dE/dz" (δ = (t − y)·f'(z), as
    many books define it). error: "t - y" (target minus output) or "y - t".
    """

    delta: DeltaConvention = "dE/dz"
    error: ErrorConvention = "t - y"


class PictureSection(Section):
    """[picture]: the network pictures: which step and sample, which phases, which edge labels.

    One picture per phase: step (network.png: each neuron's z and a, each weight with its gradient),
    forward (z and a, the weights), backward (dL/da and delta, the gradients) and update (each weight
    and bias, old -> new). edge_labels: "auto" writes numbers on as many edges as have room (the
    largest first), "all" on every edge, "none" on none.
    """

    step: Annotated[int, Field(gt=0, le=MAX_STEPS)] = 1
    sample: Annotated[int, Field(ge=0)] = 0
    phases: Annotated[list[Phase], Field(max_length=len(PHASES))] = Field(
        default_factory=lambda: list(PHASES)
    )
    edge_labels: EdgeLabels = "auto"


class ReportSection(Section):
    """[report]: how much the printed walk-through writes out."""

    max_samples: PositiveInt = 8  # samples written out term by term; the others enter the sums


class ClaimSection(Section):
    """[[claims]]: a number a source states about the example, to be audited.

    It agrees when within half a unit of its last written decimal, or within its own `tolerance`
    (absolute) or to its own `digits` (significant digits), for a source that rounded along the way.
    """

    name: str
    step: Annotated[int, Field(gt=0, le=MAX_STEPS)] = 1
    sample: Annotated[int, Field(ge=0)] = 0
    value: int | float | str
    formula: str | None = None
    tolerance: PositiveFloat | None = None
    digits: Annotated[int, Field(ge=1, le=17)] | None = None

    @model_validator(mode="before")
    @classmethod
    def known_keys(cls, data: Any) -> Any:
        """Name the valid keys of a claim (a table in a list, which the generic message misses)."""
        if isinstance(data, Mapping):
            unknown = [key for key in data if key not in cls.model_fields]
            if unknown:
                raise PydanticCustomError(
                    "unknown_key",
                    "unknown key {key} in [[claims]] (valid keys: {valid})",
                    {"key": repr(unknown[0]), "valid": ", ".join(cls.model_fields)},
                )
        return data


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
    conventions: ConventionsSection = ConventionsSection()
    picture: PictureSection = PictureSection()
    report: ReportSection = ReportSection()
    claims: list[ClaimSection] = Field(default_factory=list)


def load_worked_config(path: Path, overrides: Sequence[Override | str] = ()) -> WorkedConfig:
    """Read and validate a worked-example TOML file (one ConfigError line on any mistake)."""
    return load_config(WorkedConfig, path, list(overrides))


ConfigSource = WorkedConfig | Path | str | Mapping[str, Any]


def load(source: ConfigSource, overrides: Sequence[Override | str] = ()) -> WorkedConfig:
    """A worked-example config from a file path, a dict, or TOML text, with `--set`-style overrides.

    A string is a path when it is one line ending in .toml (or with no "="), else TOML text. Overrides are
    "section.key=value" strings, e.g. "train.steps=3". Raises ConfigError (one line) on any mistake.
    """
    if isinstance(source, WorkedConfig):
        if not overrides:
            return source
        data, name = source.model_dump(exclude_none=True), "config"
    elif isinstance(source, Mapping):
        data, name = _plain(source), "config"
    elif _is_path(source):
        if Path(source).is_dir():
            raise ConfigError(
                f"{source} is a folder, not a config file: pass the path of a worked example's "
                "TOML file (e.g. configs/worked_321.toml), a dict or TOML text"
            )
        if not Path(source).is_file():
            raise ConfigError(f"config file {source} not found")
        data, name = read_toml(Path(source)), str(source)
    elif isinstance(source, str):
        data, name = parse_toml(source, "config text"), "config text"
    else:
        raise TypeError(f"a worked example is a path, a dict or TOML text, not {type(source)}")
    return validate(WorkedConfig, data, name, overrides)


def source_name(source: ConfigSource) -> str:
    """How messages name where a config came from: its path, or "config"."""
    return str(source) if _is_path(source) else "config"


def _is_path(source: object) -> bool:
    if isinstance(source, str):  # one line that names a .toml file, or has no "key = value"
        one_line = "\n" not in source.strip()
        return one_line and (source.strip().endswith(".toml") or "=" not in source)
    return isinstance(source, Path)


def _plain(table: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a config dict that overrides can change without touching the caller's."""
    return {
        key: _plain(value) if isinstance(value, Mapping) else value for key, value in table.items()
    }


def check_limits(config: WorkedConfig, source: str) -> None:
    """Refuse, with one ConfigError line, a config beyond the limits at the top of this module."""
    counts = [
        ("network.sizes", len(config.network.sizes) - 1, MAX_LAYERS, "layers with weights"),
        ("data.inputs", len(config.data.inputs), MAX_ROWS, "rows"),
        ("claims", len(config.claims), MAX_CLAIMS, "claims"),
    ]
    for where, count, limit, what in counts:
        if count > limit:
            raise ConfigError(
                f"{source}: {where} has {count:,} {what}; at most {limit} are allowed"
            )
    texts = [
        ("title", config.title, MAX_TITLE),
        ("source", config.source, MAX_SOURCE),
        ("network.device", config.network.device, MAX_NAME),
    ]
    labels = config.labels
    for key, names in (("inputs", labels.inputs), ("outputs", labels.outputs)):
        texts += [(f"labels.{key}[{i}]", name, MAX_NAME) for i, name in enumerate(names or [])]
    for layer, names in enumerate(labels.hidden or []):
        texts += [(f"labels.hidden[{layer}][{i}]", name, MAX_NAME) for i, name in enumerate(names)]
    for layer, names in enumerate(labels.biases or []):
        texts += [(f"labels.biases[{layer}][{i}]", name, MAX_NAME) for i, name in enumerate(names)]
    for layer, matrix in enumerate(labels.weights or []):
        texts += [
            (f"labels.weights[{layer}][{j}][{i}]", name, MAX_NAME)
            for j, row in enumerate(matrix)
            for i, name in enumerate(row)
        ]
    for number, claim in enumerate(config.claims, start=1):
        where = f"[[claims]] #{number}"
        texts.append((f"{where} name", claim.name, MAX_NAME))
        if isinstance(claim.value, str):
            texts.append((f"{where} value", claim.value, MAX_NAME))
        if claim.formula is not None:
            texts.append((f"{where} formula", claim.formula, MAX_FORMULA_LENGTH))
    for where, text, limit in texts:
        if len(text) > limit:
            raise ConfigError(
                f"{source}: {where} is {len(text):,} characters long; at most {limit:,} are allowed"
            )
