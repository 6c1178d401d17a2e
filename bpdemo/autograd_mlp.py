"""The reference models: the same networks as `torch.nn` modules, their gradients by `torch.autograd`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from bpdemo.functional import ACTIVATIONS, LOSSES, draw_mask
from bpdemo.spec import MLPSpec, check_input, check_target


# -- the twins of single hand-written layers (each layer's `torch_module()` makes one) --------------
class LinearActivation(nn.Linear):
    """`nn.Linear` followed by an activation: the autograd twin of a `Linear` layer."""

    def __init__(self, in_features, out_features, activation, dtype, device, bias=True):
        super().__init__(in_features, out_features, bias=bias, dtype=dtype, device=device)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(super().forward(x))


class SharedMaskDropout(nn.Module):
    """The autograd twin of `Dropout`: the same masks, from a generator in the same state."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.generator = torch.Generator()

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        return x * draw_mask(x, self.p, self.generator)


class TorchFunction(nn.Module):
    """A parameter-free function as a module (the autograd twin of an `ActivationLayer`)."""

    def __init__(self, fn: Callable[[Tensor], Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)


# -- whole networks -------------------------------------------------------------------------------
class AutogradNetwork(nn.Module):
    """The autograd twin of a hand-written network: each layer's `torch_module()`, the same weights,
    in a `ModuleList` called `layers`, so that the parameter names match the hand-written model's."""

    def __init__(self, spec, modules: list[nn.Module]):
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleList(modules)
        self.loss_fn = LOSSES[spec.loss].torch_fn

    @classmethod
    def from_manual(cls, manual) -> AutogradNetwork:
        """The autograd twin of a hand-written network, with copies of its weights and state."""
        return cls(manual.spec, [layer.torch_module() for layer in manual.layers]).train(
            manual.training
        )

    def forward(self, x: Tensor) -> Tensor:
        check_input(self.spec, x)
        shape = getattr(self.spec, "input_shape", None)
        if shape is not None:  # images come as rows of pixels, channel by channel
            x = x.reshape(x.shape[0], *shape)
        for layer in self.layers:
            x = layer(x)
        return x

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        check_target(self.spec, output, target)
        return self.loss_fn(output, target)

    def loss_and_grads(self, x: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One forward and `loss.backward()`: (detached 0-dim loss, {parameter name: p.grad})."""
        self.zero_grad(set_to_none=True)
        loss = self.loss(self(x), target)
        loss.backward()
        return loss.detach(), {name: p.grad for name, p in self.named_parameters()}


class AutogradMLP(AutogradNetwork):
    """`nn.Linear` layers built from an `MLPSpec`, with the spec's initial weights."""

    def __init__(self, spec: MLPSpec):
        linear = [
            nn.Linear(fan_in, fan_out, bias=spec.bias, dtype=spec.dtype, device=spec.device)
            for fan_in, fan_out in zip(spec.sizes[:-1], spec.sizes[1:], strict=True)
        ]
        super().__init__(spec, linear)
        self.activation_fns = [ACTIVATIONS[name].torch_fn for name in spec.activations]
        self.load_state_dict(spec.initial_parameters())

    @classmethod
    def from_manual(cls, manual) -> AutogradMLP:
        """The autograd twin of a hand-written model, with identical (copied) weights."""
        model = cls(manual.spec)
        model.load_state_dict(manual.state_dict())
        return model

    def forward(self, x: Tensor) -> Tensor:
        check_input(self.spec, x)
        for layer, activation in zip(self.layers, self.activation_fns, strict=True):
            x = activation(layer(x))
        return x

    def forward_by_layer(
        self, x: Tensor, keep_grads: bool = False
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Every layer's z and a, (N, out) each: the same forward pass, kept layer by layer.

        keep_grads: keep their gradients (`retain_grad`), so that after `loss.backward()` a.grad is
        ∂L/∂a and z.grad is δ = ∂L/∂z of each layer, which autograd would otherwise free.
        """
        check_input(self.spec, x)
        pre_activations, activations = [], []
        for layer, activation in zip(self.layers, self.activation_fns, strict=True):
            z = layer(x)
            x = activation(z)
            if keep_grads:
                z.retain_grad()
                x.retain_grad()
            pre_activations.append(z)
            activations.append(x)
        return pre_activations, activations


def twin_of(manual) -> AutogradNetwork:
    """The autograd twin of any hand-written network, with copies of its weights."""
    if isinstance(manual.spec, MLPSpec):
        return AutogradMLP.from_manual(manual)
    return AutogradNetwork.from_manual(manual)
