"""The hand-written model: forward and backward passes written out, on torch tensors, without autograd.

Notation (Nielsen, *Neural Networks and Deep Learning*, ch. 2), for layer l with weight W (out, in):

    z^l = a^(l-1) W^T + b            pre-activation                      (N, out)
    a^l = f(z^l)                     activation                          (N, out)
    BP1  delta^L = dL/da^L * f'(z^L)                 error at the output layer
    BP2  delta^l = (delta^(l+1) W^(l+1)) * f'(z^l)   error carried one layer back
    BP3  dL/db^l = sum over the batch of delta^l
    BP4  dL/dW^l = (delta^l)^T a^(l-1)

Every tensor here is created with `requires_grad=False` and every pass runs under `torch.no_grad()`,
so no autograd graph is ever built (tests/test_no_autograd.py proves it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import torch
from torch import Tensor

from bpdemo.functional import ACTIVATIONS, LOSSES, Activation
from bpdemo.spec import MLPSpec


class Linear:
    """A fully connected layer followed by its activation, with an explicit forward and backward.

    Attributes:
        weight: (out_features, in_features), as `torch.nn.Linear.weight`.
        bias: (out_features,).
        grad_weight, grad_bias: dL/dW and dL/db of the last backward, same shapes.
        input, pre_activation, activation, delta: the cache of the last pass, (N, in) and (N, out).
    """

    def __init__(self, weight: Tensor, bias: Tensor, activation: Activation):
        self.weight = weight
        self.bias = bias
        self.activation = activation
        self.grad_weight = torch.zeros_like(weight)
        self.grad_bias = torch.zeros_like(bias)
        self.input: Tensor | None = None
        self.pre_activation: Tensor | None = None
        self.output: Tensor | None = None
        self.delta: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        """x (N, in) -> a (N, out), keeping x, z and a for the backward pass."""
        self.input = x
        self.pre_activation = torch.addmm(self.bias, x, self.weight.t())  # z = x W^T + b
        self.output = self.activation.forward(self.pre_activation)  # a = f(z)
        return self.output

    def backward(self, grad_output: Tensor, need_grad_input: bool = True) -> Tensor | None:
        """dL/da (N, out) -> dL/dx (N, in); stores dL/dW and dL/db.

        Returns None when `need_grad_input` is False (the first layer: nothing below it learns).
        """
        # BP1 / BP2 (right-hand factor): delta = dL/dz = dL/da * f'(z)
        self.delta = self.activation.backward(grad_output, self.pre_activation, self.output)
        torch.mm(self.delta.t(), self.input, out=self.grad_weight)  # BP4: dL/dW = delta^T x
        torch.sum(self.delta, dim=0, out=self.grad_bias)  # BP3: dL/db = sum_n delta
        if not need_grad_input:
            return None
        return self.delta @ self.weight  # BP2 (left-hand factor): dL/dx = delta W


class ManualMLP:
    """A multilayer perceptron trained by hand-written backpropagation.

    Mirrors `torch.nn.Module` where a learner would expect it: `named_parameters()`, `parameters()`,
    `state_dict()`, `load_state_dict()`, `forward(x)`, `__call__(x)`.
    """

    def __init__(self, spec: MLPSpec):
        self.spec = spec
        self.loss_fn = LOSSES[spec.loss]
        params = spec.initial_parameters()
        self.layers = [
            Linear(params[f"layers.{i}.weight"], params[f"layers.{i}.bias"], ACTIVATIONS[name])
            for i, name in enumerate(spec.activations)
        ]

    # -- parameters, as torch names them ------------------------------------------------------------
    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        for i, layer in enumerate(self.layers):
            yield f"layers.{i}.weight", layer.weight
            yield f"layers.{i}.bias", layer.bias

    def parameters(self) -> Iterator[Tensor]:
        for _, tensor in self.named_parameters():
            yield tensor

    def named_grads(self) -> Iterator[tuple[str, Tensor]]:
        """The gradient buffers of the last backward, by parameter name (like `p.grad` in torch)."""
        for i, layer in enumerate(self.layers):
            yield f"layers.{i}.weight", layer.grad_weight
            yield f"layers.{i}.bias", layer.grad_bias

    def state_dict(self) -> OrderedDict[str, Tensor]:
        return OrderedDict((name, t.detach().clone()) for name, t in self.named_parameters())

    @torch.no_grad()
    def load_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        own = dict(self.named_parameters())
        if set(state_dict) != set(own):
            missing, extra = sorted(set(own) - set(state_dict)), sorted(set(state_dict) - set(own))
            raise KeyError(f"state_dict does not match: missing {missing}, unexpected {extra}")
        for name, tensor in own.items():
            if state_dict[name].shape != tensor.shape:
                raise ValueError(
                    f"{name}: shape {tuple(state_dict[name].shape)} given, {tuple(tensor.shape)} needed"
                )
            tensor.copy_(state_dict[name])

    # -- passes ------------------------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """x (N, sizes[0]) -> output (N, sizes[-1]); keeps every layer's cache for `backward`."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    __call__ = forward

    @torch.no_grad()
    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        check_target(self.spec, output, target)
        return self.loss_fn.value(output, target)

    @torch.no_grad()
    def backward(self, target: Tensor) -> None:
        """Backpropagate from the last forward's output; fills the gradient buffers."""
        output = self.layers[-1].output
        grad = self.loss_fn.gradient(output, target)  # dL/da at the output
        for i in range(len(self.layers) - 1, -1, -1):
            grad = self.layers[i].backward(grad, need_grad_input=i > 0)

    def loss_and_grads(self, x: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One forward and backward pass: (loss as a 0-dim tensor, {parameter name: gradient}).

        The gradient tensors are the model's own buffers, overwritten by the next call (as
        `p.grad` is in torch); clone them to keep them.
        """
        output = self.forward(x)
        loss = self.loss(output, target)
        self.backward(target)
        return loss, dict(self.named_grads())


def check_target(spec: MLPSpec, output: Tensor, target: Tensor) -> None:
    """Refuse a target whose shape would silently broadcast against the output."""
    if LOSSES[spec.loss].classification:
        if target.dim() != 1 or target.shape[0] != output.shape[0]:
            raise ValueError(
                f"{spec.loss} needs one class label per row: target shape {tuple(target.shape)}, "
                f"output shape {tuple(output.shape)}"
            )
        if target.dtype != torch.long:
            raise ValueError(f"{spec.loss} needs integer (torch.long) class labels")
    elif target.shape != output.shape:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match output shape {tuple(output.shape)}"
        )
