"""What the image demo adds for a convolutional network: the multilayer perceptron trained on the same
split for comparison, and what the convolution layers learned (their filters, and the feature maps of
one image through each layer), read from both models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bpdemo.compare import SideBySide
from bpdemo.conv import Conv2d
from bpdemo.experiment import Experiment, SplitData, TrainingConfig
from bpdemo.optim import OptimizerSpec
from bpdemo.report import agreement
from bpdemo.scores import accuracy, class_scores
from bpdemo.spec import ModelSection, NetworkSpec


def convolves(spec) -> bool:
    """Whether a network's description has image layers (a convolution, a pooling)."""
    return isinstance(spec, NetworkSpec) and len(spec.shapes[1]) == 3


@dataclass
class MLPConfig:
    """The settings the comparison MLP trains with: the demo's own seed and [train], its own
    [model] and [optimizer] (those of the default image demo)."""

    seed: int
    model: ModelSection
    optimizer: OptimizerSpec
    train: Any


def train_mlp(
    config: TrainingConfig,
    model: ModelSection,
    optimizer: OptimizerSpec,
    split: SplitData,
    *,
    inputs: int,
    outputs: int,
    distributed: bool = False,
) -> Experiment:
    """The MLP `model` trained side by side on the same split, seed and mini-batches as `config`'s
    network, quietly and without a run folder; scored with `Experiment.results`."""
    mlp_config = MLPConfig(config.seed, model, optimizer, config.train)
    experiment = Experiment.prepare(
        mlp_config, split, {}, inputs=inputs, outputs=outputs, run=None, distributed=distributed
    )
    experiment.fit(quiet=True, description="MLP", metrics=accuracy)
    return experiment


def mlp_block(experiment: Experiment) -> dict[str, Any]:
    """The `mlp` block of metrics.json: its sizes, scores (hand-written and autograd) and agreement."""
    results = experiment.results(class_scores)
    spec = experiment.pair.spec
    return {
        "sizes": list(spec.sizes),
        "activations": list(spec.activations),
        "optimizer": experiment.config.optimizer.name,
        "lr": experiment.config.optimizer.lr,
        **results["manual"],
        "autograd_test_accuracy": results["autograd"]["test"]["accuracy"],
        "agreement": agreement(experiment.pair),
    }


@dataclass
class FeatureMap:
    """One layer's output for one image, in both models: (C, H, W) each, float64."""

    layer: int
    name: str
    manual: np.ndarray
    autograd: np.ndarray


@torch.no_grad()
def feature_maps(pair: SideBySide, x: Tensor) -> list[FeatureMap]:
    """One image x (F,) through the layers of both models in evaluation mode: the output of every
    layer that is still an image (C, H, W), input side first."""
    shape = pair.spec.input_shape
    manual_x = x.reshape(1, *shape)
    autograd_x = manual_x.clone()
    pair.manual.eval()
    pair.autograd.eval()
    maps = []
    try:
        for index, (layer, module) in enumerate(
            zip(pair.manual.layers, pair.autograd.layers, strict=True)
        ):
            manual_x, autograd_x = layer.forward(manual_x), module(autograd_x)
            if manual_x.ndim != 4:
                break
            name = pair.spec.layers[index]["type"]
            if name == "activation":
                name = pair.spec.layers[index]["name"]
            maps.append(
                FeatureMap(
                    index,
                    name,
                    manual_x[0].double().cpu().numpy().copy(),
                    autograd_x[0].double().cpu().numpy(),
                )
            )
    finally:
        pair.manual.train()
        pair.autograd.train()
    return maps


def first_filters(pair: SideBySide) -> tuple[np.ndarray, np.ndarray] | None:
    """The first convolution's weights (out, C, kh, kw) in both models, or None without one."""
    for index, layer in enumerate(pair.manual.layers):
        if isinstance(layer, Conv2d):
            autograd = pair.autograd.layers[index].weight
            return (
                layer.weight.double().cpu().numpy().copy(),
                autograd.detach().double().cpu().numpy(),
            )
    return None
