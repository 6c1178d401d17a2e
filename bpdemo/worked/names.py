"""A source's own names for the neurons and parameters of a worked example (`[labels]`).

A book names its neurons y3, y4, y5 and its weights w13, w35, ...; `[labels]` gives those names.
`Names` checks them against the network and says what a label names (for a claim such as
`param_after.w35` or `delta.y5`); the label of a neuron or a parameter, for the text, the pictures
and the audit, is `bpdemo.equations.StepEquations.neuron_name` and `parameter_name`.
Layers count as the network's layers do: layer -1 is the input, 0 the first layer with weights.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from bpdemo.infra.errors import ConfigError
from bpdemo.worked.schema import LabelsSection

# What a label names: ("neuron", layer, unit), ("weight", layer, row, column) or ("bias", layer, row).
Named = tuple


@dataclass
class Names:
    """The labels of one network, checked against its widths (`from_labels`)."""

    labels: LabelsSection
    sizes: list[int]
    named: dict[str, Named] = field(default_factory=dict)

    @classmethod
    def from_labels(
        cls, labels: LabelsSection, sizes: list[int], bias: bool = True, source: str = "config"
    ) -> Names:
        """Check every list of [labels] against the widths; one ConfigError line if one is wrong."""
        names = cls(labels, list(sizes))
        layers = len(sizes) - 1
        for key, width in (("inputs", sizes[0]), ("outputs", sizes[-1])):
            given = getattr(labels, key)
            if given is not None and len(given) != width:
                raise ConfigError(
                    f"{source}: [labels] {key} has {len(given)} names for {width} neurons"
                )
        if labels.hidden is not None:
            widths = sizes[1:-1]
            if [len(row) for row in labels.hidden] != widths:
                raise ConfigError(
                    f"{source}: [labels] hidden: give one list per hidden layer with one name per "
                    f"neuron (widths {widths})"
                )
        if labels.weights is not None:
            shapes = [[len(row) for row in matrix] for matrix in labels.weights]
            wanted = [[sizes[i]] * sizes[i + 1] for i in range(layers)]
            if shapes != wanted:
                raise ConfigError(
                    f"{source}: [labels] weights: give one (out, in) matrix of names per layer, "
                    f"as [init] weights (shapes {[(o, i) for i, o in itertools.pairwise(sizes)]})"
                )
        if labels.biases is not None:
            if not bias:
                raise ConfigError(
                    f"{source}: [labels] biases names biases of a network without them "
                    "(network.bias = false): leave it out"
                )
            if [len(row) for row in labels.biases] != sizes[1:]:
                raise ConfigError(
                    f"{source}: [labels] biases: give one list of names per layer "
                    f"(widths {sizes[1:]})"
                )
        for name, what in names._all():
            if name in names.named:
                raise ConfigError(
                    f"{source}: [labels] names two things {name!r}; give each its own name"
                )
            names.named[name] = what
        return names

    def _all(self) -> list[tuple[str, Named]]:
        labels, last = self.labels, len(self.sizes) - 2
        found: list[tuple[str, Named]] = []
        found += [(name, ("neuron", -1, j)) for j, name in enumerate(labels.inputs or [])]
        for layer, row in enumerate(labels.hidden or []):
            found += [(name, ("neuron", layer, j)) for j, name in enumerate(row)]
        found += [(name, ("neuron", last, j)) for j, name in enumerate(labels.outputs or [])]
        for layer, matrix in enumerate(labels.weights or []):
            found += [
                (name, ("weight", layer, j, i))
                for j, row in enumerate(matrix)
                for i, name in enumerate(row)
            ]
        for layer, row in enumerate(labels.biases or []):
            found += [(name, ("bias", layer, j)) for j, name in enumerate(row)]
        return found

    # -- what a label names -----------------------------------------------------------------------
    def lookup(self, label: str) -> Named | None:
        return self.named.get(label.strip())
