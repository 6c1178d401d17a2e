"""Hand-written layers beyond `Linear`: batch and layer normalisation, dropout, a lone activation.

A layer is any object with

    parameter_names             e.g. ("weight", "bias"): each is an attribute, its gradient `grad_<name>`
    forward(x) -> y             keeps what its backward needs (its cache)
    backward(grad_y, input_grad=True) -> grad_x
                                dL/dx (None with input_grad=False: the network's first layer),
                                and fills `grad_<name>` for each parameter
    training                    True in training mode, False in evaluation (set by the network)
    torch_module()              the matching `torch.nn` module, with copies of the same weights

and optionally `summand_scales()` (see `bpdemo.agreement`). `bpdemo.manual.Linear` is one; `ManualSequential`
stacks any of them under a loss, and `bpdemo.autograd_mlp.twin_of` builds its autograd twin from their
`torch_module()`s, parameter for parameter. Shapes: x and y are (N, features). Each backward is the
standard derivation (CS231n's batch-normalisation exercise), written next to its forward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from bpdemo import conv
from bpdemo.autograd_mlp import SharedMaskDropout, TorchFunction
from bpdemo.functional import ACTIVATIONS, draw_mask
from bpdemo.manual import Linear, ManualNetwork, Workspace
from bpdemo.spec import INITS, NetworkSpec


class _Normalisation:
    """What batch and layer normalisation share: y = x̂ γ + β, with x̂ = (x - mean) / sqrt(var + eps).

    `axis` is where the mean and variance are taken: over the batch (0) or over the features (1).
    """

    parameter_names = ("weight", "bias")
    axis = 0

    def __init__(self, features: int, eps: float, dtype: torch.dtype, device: torch.device):
        self.weight = torch.ones(features, dtype=dtype, device=device)  # γ
        self.bias = torch.zeros(features, dtype=dtype, device=device)  # β
        self.grad_weight, self.grad_bias = (
            torch.zeros_like(self.weight),
            torch.zeros_like(self.bias),
        )
        self.eps = eps
        self.training = True
        self.normalised: Tensor | None = None  # x̂ (N, features)
        self.inv_std: Tensor | None = None  # 1 / sqrt(var + eps), per feature or per row
        self.grad_output: Tensor | None = None
        self.through_statistics = True  # whether the mean and variance depend on this x

    def _normalise(self, x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        self.inv_std = torch.rsqrt(var + self.eps)
        self.normalised = (x - mean) * self.inv_std
        return self.normalised * self.weight + self.bias  # y = x̂ γ + β

    def backward(self, grad_output: Tensor, input_grad: bool = True) -> Tensor | None:
        x_hat, axis = self.normalised, self.axis
        self.grad_output = grad_output
        torch.sum(grad_output * x_hat, dim=0, out=self.grad_weight)  # dL/dγ = Σ_n dy x̂
        torch.sum(grad_output, dim=0, out=self.grad_bias)  # dL/dβ = Σ_n dy
        if not input_grad:
            return None
        grad_x_hat = grad_output * self.weight  # dL/dx̂ = dy γ
        if not self.through_statistics:  # running statistics are constants: dx = dx̂ / std
            return grad_x_hat * self.inv_std
        # The mean and variance depend on every x of the group (m of them), so
        # dL/dx = (1/m) (1/std) (m dx̂ - Σ dx̂ - x̂ Σ dx̂ x̂), sums over the group.
        m = x_hat.shape[axis]
        sum_grad = grad_x_hat.sum(dim=axis, keepdim=True)
        sum_grad_x_hat = (grad_x_hat * x_hat).sum(dim=axis, keepdim=True)
        return (m * grad_x_hat - sum_grad - x_hat * sum_grad_x_hat) * (self.inv_std / m)

    def summand_scales(self) -> dict[str, Tensor]:
        """|terms| summed: Σ_n |dy| |x̂| for γ, Σ_n |dy| for β."""
        abs_grad = self.grad_output.abs()
        return {
            "weight": (abs_grad * self.normalised.abs()).sum(dim=0),
            "bias": abs_grad.sum(dim=0),
        }

    def _copy_parameters(self, module: nn.Module) -> nn.Module:
        with torch.no_grad():
            module.weight.copy_(self.weight)
            module.bias.copy_(self.bias)
        return module


class BatchNorm1d(_Normalisation):
    """Batch normalisation over the batch, as `torch.nn.BatchNorm1d`.

    Training: each feature is normalised by the mean and (biased) variance of this batch, and the
    running statistics move towards them: running = (1 - momentum) running + momentum batch value
    (the variance unbiased, N / (N - 1), as torch keeps it). Evaluation: the running statistics.
    """

    buffer_names = ("running_mean", "running_var", "num_batches_tracked")

    def __init__(self, features, eps=1e-5, momentum=0.1, dtype=torch.float32, device="cpu"):
        super().__init__(features, eps, dtype, device)
        self.momentum = momentum
        self.running_mean = torch.zeros(features, dtype=dtype, device=device)
        self.running_var = torch.ones(features, dtype=dtype, device=device)
        self.num_batches_tracked = torch.zeros((), dtype=torch.long, device=device)  # as torch

    def forward(self, x: Tensor) -> Tensor:
        self.through_statistics = self.training
        if not self.training:
            return self._normalise(x, self.running_mean, self.running_var)
        rows = x.shape[0]
        if rows < 2:
            raise ValueError("BatchNorm1d needs at least 2 rows per batch in training mode")
        mean, var = x.mean(dim=0), x.var(dim=0, unbiased=False)
        self.num_batches_tracked.add_(1)
        self.running_mean.mul_(1 - self.momentum).add_(mean, alpha=self.momentum)
        unbiased = var * (rows / (rows - 1))
        self.running_var.mul_(1 - self.momentum).add_(unbiased, alpha=self.momentum)
        return self._normalise(x, mean, var)

    def torch_module(self) -> nn.Module:
        features = self.weight.shape[0]
        module = nn.BatchNorm1d(
            features, eps=self.eps, momentum=self.momentum, dtype=self.weight.dtype
        ).to(self.weight.device)
        with torch.no_grad():
            for name in self.buffer_names:
                getattr(module, name).copy_(getattr(self, name))
        return self._copy_parameters(module).train(self.training)


class LayerNorm(_Normalisation):
    """Layer normalisation over each row's features, as `torch.nn.LayerNorm(features)`: the same in
    training and evaluation."""

    axis = 1

    def __init__(self, features, eps=1e-5, dtype=torch.float32, device="cpu"):
        super().__init__(features, eps, dtype, device)

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, unbiased=False, keepdim=True)
        return self._normalise(x, mean, var)

    def torch_module(self) -> nn.Module:
        features = self.weight.shape[0]
        module = nn.LayerNorm(features, eps=self.eps, dtype=self.weight.dtype)
        return self._copy_parameters(module.to(self.weight.device))


class Dropout:
    """Dropout: in training, each unit is kept with probability 1 - p and scaled by 1 / (1 - p).

    The masks come from this layer's own generator, seeded by `seed`, one mask per training
    forward; its torch twin starts from the same generator state and draws the same masks, so the
    two models stay comparable step by step (torch's own `nn.Dropout` draws from the global
    generator, which cannot be shared). Evaluation: nothing is dropped.
    """

    parameter_names = ()

    def __init__(self, p: float, seed: int = 0):
        if not 0 <= p < 1:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = p
        self.generator = torch.Generator().manual_seed(seed)
        self.training = True
        self.mask: Tensor | None = None  # kept / (1 - p), the last training forward's

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            self.mask = None
            return x
        self.mask = draw_mask(x, self.p, self.generator)
        return x * self.mask

    def backward(self, grad_output: Tensor, input_grad: bool = True) -> Tensor | None:
        if not input_grad:
            return None
        return grad_output if self.mask is None else grad_output * self.mask  # dx = dy · mask

    def torch_module(self) -> nn.Module:
        twin = SharedMaskDropout(self.p)
        twin.generator.set_state(self.generator.get_state())
        return twin.train(self.training)


class ActivationLayer:
    """An activation on its own, a = f(z), for a network that puts one after a normalisation."""

    parameter_names = ()

    def __init__(self, name: str):
        self.activation = ACTIVATIONS[name]
        self.training = True
        self.pre_activation: Tensor | None = None
        self.output: Tensor | None = None

    def forward(self, z: Tensor) -> Tensor:
        self.pre_activation, self.output = z, self.activation.forward(z)
        return self.output

    def backward(self, grad_output: Tensor, input_grad: bool = True) -> Tensor | None:
        if not input_grad:
            return None
        return self.activation.backward(grad_output, self.pre_activation, self.output)

    def torch_module(self) -> nn.Module:
        return TorchFunction(self.activation.torch_fn)


# -- building a stack from its description --------------------------------------------------------------
# How each kind of layer in `bpdemo.spec.LAYER_KEYS` is built:
# build(entry, width_in, spec, context) -> (layer, width_out); an image layer's width is its
# shape (C, H, W), as `NetworkSpec.shapes` has it.
Build = Callable[[dict, int, NetworkSpec, dict], tuple[object, int]]


def _linear(entry, width, spec, context):
    units = entry["units"]
    weight = torch.empty(units, width, dtype=torch.float64)
    INITS[spec.init].draw(weight, spec.init_scale, context["generator"])
    layer = Linear(
        weight.to(spec.dtype),
        torch.zeros(units, dtype=spec.dtype),
        ACTIVATIONS[entry["activation"]],
        workspace=Workspace(spec.dtype, spec.device),
    )
    return layer, units


def _image_layer(entry, shape, spec, context):
    layer = conv.build(entry, shape, spec.dtype, spec.device)
    if isinstance(layer, conv.Conv2d):  # drawn as the (out, C·kh·kw) matrix it multiplies as
        kernels = torch.empty(layer.out_channels, layer.weight[0].numel(), dtype=torch.float64)
        INITS[spec.init].draw(kernels, spec.init_scale, context["generator"])
        layer.weight.copy_(kernels.view_as(layer.weight))
    return layer, spec.shapes[context["index"] + 1]


LAYER_TYPES: dict[str, Build] = {
    **dict.fromkeys(conv.IMAGE_LAYER_KEYS, _image_layer),
    "linear": _linear,
    "batchnorm": lambda e, width, spec, c: (
        BatchNorm1d(width, e["eps"], e["momentum"], spec.dtype, spec.device),
        width,
    ),
    "layernorm": lambda e, width, spec, c: (
        LayerNorm(width, e["eps"], spec.dtype, spec.device),
        width,
    ),
    # each dropout layer draws from its own seed: the network's seed plus its position
    "dropout": lambda e, width, spec, c: (Dropout(e["p"], spec.seed + c["index"]), width),
    "activation": lambda e, width, spec, c: (ActivationLayer(e["name"]), width),
}


class ManualSequential(ManualNetwork):
    """The hand-written network a `NetworkSpec` describes: its layers in order, then its loss."""

    def __init__(self, spec: NetworkSpec):
        generator = torch.Generator().manual_seed(spec.seed)  # linear weights, in layer order
        layers = []
        for index, (entry, shape) in enumerate(zip(spec.layers, spec.shapes, strict=False)):
            context = {"generator": generator, "index": index}
            width = shape[0] if len(shape) == 1 else shape
            layer, _ = LAYER_TYPES[entry["type"]](entry, width, spec, context)
            layers.append(layer)
        super().__init__(spec, layers)
