"""The worked-example config: a network with explicit weights, its data, its training, and claims.

A worked example is one TOML file (`configs/worked_*.toml`). Its sections are checked here one by
one (types, ranges, names); `WorkedExample.from_config` then checks them against each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from pydantic import Field

from bpdemo.config import (
    ActivationName,
    DtypeName,
    Fraction,
    LossName,
    OptimizerName,
    Override,
    PositiveFloat,
    PositiveInt,
    Section,
    load_config,
)


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


def load_worked_config(path: Path, overrides: Sequence[Override | str] = ()) -> WorkedConfig:
    """Read and validate a worked-example TOML file (one ConfigError line on any mistake)."""
    return load_config(WorkedConfig, path, list(overrides))
