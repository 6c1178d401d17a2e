"""A worked example checked against itself: the network, its optimizer, the data as tensors, the claims.

`WorkedExample.from_config` turns a validated config into everything a run needs, and refuses, with
one ConfigError line naming the file, what the schema alone cannot see: weights that do not fit the
layer widths, data rows of the wrong length, labels and claims naming neurons that do not exist.
`standardised()` is the same example on inputs (x - mean) / std, for the comparison of scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bpdemo.functional import LOSSES
from bpdemo.infra.errors import ConfigError
from bpdemo.optim import OptimizerSpec
from bpdemo.spec import EXPLICIT, MLPSpec
from bpdemo.worked.claims import Claim
from bpdemo.worked.names import Names
from bpdemo.worked.schema import WorkedConfig, WorkedDataSection, check_limits


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
    names: Names | None = None  # [labels], checked against the widths

    @classmethod
    def from_config(cls, config: WorkedConfig, source: str = "config") -> WorkedExample:
        """Check the config against itself (shapes, data, claims): one ConfigError line if wrong."""
        check_limits(config, source)
        network, init, data = config.network, config.init, config.data
        try:
            spec = MLPSpec(
                sizes=network.sizes,
                activations=network.activations,
                loss=network.loss,
                init=EXPLICIT,
                weights=_checked_matrices(init.weights, network.sizes, source),
                biases=init.biases,
                dtype=network.dtype,
                device=network.device,
                bias=network.bias,
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
        if data.standardise is not None and not spec.bias:
            raise ConfigError(
                f"{source}: [data.standardise] needs biases (the first layer's holds W·mean): "
                "leave network.bias = true, or leave out [data.standardise]"
            )
        names = Names.from_labels(config.labels, spec.sizes, spec.bias, source)
        claims = [
            Claim.from_section(i + 1, claim, spec, len(inputs), source, names)
            for i, claim in enumerate(config.claims)
        ]
        if config.picture.sample >= len(inputs):
            raise ConfigError(
                f"{source}: [picture] sample {config.picture.sample} does not exist: the data has "
                f"{len(inputs)} sample(s), counted from 0"
            )
        steps = config.train.steps
        if config.picture.step > steps:
            there = "step 1" if steps == 1 else f"steps 1 to {steps}"
            raise ConfigError(
                f"{source}: [picture] step {config.picture.step} is beyond the run, which has "
                f"{there} (train.steps = {steps}): choose a step it has, or run more steps"
            )
        return cls(config, spec, optimizer, inputs, targets, claims, source, names=names)

    def standardised(self) -> WorkedExample | None:
        """The same example on inputs (x - mean) / std, with a first layer computing the same function.

        z = W x + b = W (std ⊙ s + mean) + b = (W·diag(std)) s + (b + W mean), so every output is the
        same before the first update; only the gradients (and so the step) change.
        """
        settings = self.config.data.standardise
        if settings is None:
            return None
        mean = torch.tensor(settings.mean, dtype=torch.float64)
        std = torch.tensor(settings.std, dtype=torch.float64)
        params = self.spec.initial_parameters()
        weight = params["layers.0.weight"].to(torch.float64)
        params["layers.0.weight"] = weight * std
        params["layers.0.bias"] = params["layers.0.bias"].to(torch.float64) + weight @ mean
        spec = self.spec.with_parameters(params)
        inputs = ((self.inputs.to(torch.float64) - mean) / std).to(self.spec.dtype)
        return WorkedExample(
            self.config,
            spec,
            self.optimizer,
            inputs.to(self.spec.device),
            self.targets,
            claims=[],
            source=self.source,
            variant="standardised inputs",
            names=self.names,
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
