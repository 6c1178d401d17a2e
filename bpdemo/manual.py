"""The hand-written model: forward and backward passes written out, on torch tensors, without autograd.

Notation (Nielsen, *Neural Networks and Deep Learning*, ch. 2), for layer l with weight W (out, in):

    z^l = a^(l-1) W^T + b            pre-activation                      (N, out)
    a^l = f(z^l)                     activation                          (N, out)
    BP1  delta^L = dL/da^L * f'(z^L)                 error at the output layer
    BP2  delta^l = (delta^(l+1) W^(l+1)) * f'(z^l)   error carried one layer back
    BP3  dL/db^l = sum over the batch of delta^l
    BP4  dL/dW^l = (delta^l)^T a^(l-1)

`Linear.backward` is BP1/BP2 (its right-hand factor), BP4, BP3, and BP2's left-hand factor
dL/da^(l-1) = delta^l W^l, which it hands to the layer below. Every tensor here is created with
`requires_grad=False` and every pass runs under `torch.no_grad()`, so no autograd graph is ever built
(tests/test_no_autograd.py proves it).

`ManualNetwork` runs any stack of such layers (`bpdemo.layers` has more kinds); `ManualMLP` is the
stack of `Linear` layers an `MLPSpec` describes. The layers write their work tensors (z, a, delta,
dL/dx) into a `Workspace` and reuse them from
step to step, and all weights and biases are views into one flat tensor (their gradients into
another), so an optimizer updates the whole network with one operation per line of its rule. The
layers' cache and the gradients hold the last pass only: clone them to keep them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import torch
from torch import Tensor

from bpdemo.autograd_mlp import LinearActivation
from bpdemo.functional import ACTIVATIONS, LOSSES, Activation
from bpdemo.spec import MLPSpec, check_input, check_target


class Workspace:
    """Work tensors a layer keeps from pass to pass, so that a training loop allocates nothing.

    `rows(name, n, columns)` gives the first n rows of a (rows, columns) buffer made on first use, and
    again only when a larger batch comes (evaluation on a whole split, say); a smaller batch, such as
    the short last one of an epoch, uses its first rows. New large tensors are costly on a CPU (the
    system maps and zeroes fresh pages), and reusing them also keeps the peak memory down.
    """

    def __init__(self, dtype: torch.dtype, device: torch.device):
        self.dtype, self.device = dtype, device
        self.buffers: dict[str, Tensor] = {}
        self._rows: dict[str, Tensor] = {}  # the rows of each buffer the last pass used

    def rows(self, name: str, n: int, columns: int) -> Tensor:
        view = self._rows.get(name)
        if view is not None and view.shape == (n, columns):
            return view
        buffer = self.buffers.get(name)
        if buffer is None or buffer.shape[0] < n or buffer.shape[1] != columns:
            buffer = torch.empty(n, columns, dtype=self.dtype, device=self.device)
            self.buffers[name] = buffer
        view = self._rows[name] = buffer[:n]
        return view

    @property
    def nbytes(self) -> int:
        return sum(buffer.nbytes for buffer in self.buffers.values())


class Linear:
    """A fully connected layer followed by its activation, with an explicit forward and backward.

    A layer of the kind `bpdemo.layers` describes: `forward` keeps its cache, `backward` returns
    dL/dx and fills `grad_<name>` of each of its `parameter_names`; `torch_module()` is its twin.

    Attributes:
        weight: (out_features, in_features), as `torch.nn.Linear.weight`.
        bias: (out_features,), or None for a layer without bias (`nn.Linear(bias=False)`).
        weight_t: W^T (in_features, out_features), a view of `weight` (`bind` sets all three).
        grad_weight, grad_bias: dL/dW and dL/db of the last backward, same shapes.
        input, pre_activation, output: the last forward's x (N, in), z and a (N, out).
        grad_output, delta: the last backward's dL/da and delta = dL/dz, (N, out).
        workspace: where the work tensors go; None makes new ones at every pass.
    """

    def __init__(
        self,
        weight: Tensor,
        bias: Tensor | None,
        activation: Activation,
        grad_weight: Tensor | None = None,
        grad_bias: Tensor | None = None,
        workspace: Workspace | None = None,
    ):
        self.activation = activation
        # Without a bias there is no bias parameter at all, as torch's nn.Linear(bias=False).
        self.parameter_names = ("weight",) if bias is None else ("weight", "bias")
        given = {"weight": (weight, grad_weight), "bias": (bias, grad_bias)}
        parameters, grads = {}, {}
        for name in self.parameter_names:
            parameters[name], grad = given[name]
            grads[name] = torch.zeros_like(parameters[name]) if grad is None else grad
        self.bind(parameters, grads)
        self.workspace = workspace
        self.training = True  # a linear layer computes the same in training and evaluation
        self.input: Tensor | None = None
        self.pre_activation: Tensor | None = None
        self.output: Tensor | None = None
        self.grad_output: Tensor | None = None
        self.delta: Tensor | None = None

    def bind(self, parameters: dict[str, Tensor], grads: dict[str, Tensor]) -> None:
        """Take `weight`, `bias` and their gradient buffers as given (the network binds views of its
        flat tensors), and W^T as a view of that weight, made once: it follows every in-place update
        of W, and costs nothing in the forward pass."""
        self.weight, self.bias = parameters["weight"], parameters.get("bias")
        self.grad_weight, self.grad_bias = grads["weight"], grads.get("bias")
        self.weight_t = self.weight.t()

    def forward(self, x: Tensor) -> Tensor:
        """x (N, in) -> a (N, out), keeping x, z and a for the backward pass."""
        rows = x.shape[0]
        if self.bias is None:
            z = torch.mm(x, self.weight_t, out=self._work("z", rows))  # z = x W^T
        else:
            z = torch.addmm(self.bias, x, self.weight_t, out=self._work("z", rows))  # z = x W^T + b
        a = self.activation.forward(z, out=self._work("a", rows))  # a = f(z)
        self.input, self.pre_activation, self.output = x, z, a
        return a

    def backward(self, grad_output: Tensor, input_grad: bool = True) -> Tensor | None:
        """dL/da (N, out) -> dL/dx (N, in); fills the gradients.

        With `input_grad=False` (the first layer: nothing below it learns) it returns None and skips
        that product, which would cost as much as the forward pass.
        """
        rows = grad_output.shape[0]
        self.grad_output = grad_output
        # BP1 / BP2 (right-hand factor): delta = dL/dz = dL/da * f'(z)
        self.delta = self.activation.backward(
            grad_output, self.pre_activation, self.output, out=self._work("delta", rows)
        )
        torch.mm(self.delta.t(), self.input, out=self.grad_weight)  # BP4: dL/dW = delta^T x
        if self.bias is not None:
            torch.sum(self.delta, dim=0, out=self.grad_bias)  # BP3: dL/db = sum_n delta
        if not input_grad:
            return None
        grad_input = self._work("grad_input", rows, self.weight.shape[1])
        return torch.mm(self.delta, self.weight, out=grad_input)  # BP2 (left): dL/dx = delta W

    def summand_scales(self) -> dict[str, Tensor]:
        """Per parameter, the sum of the absolute values of the terms its last gradient added up:
        |delta|^T |x| for the weight (BP4), sum_n |delta| for the bias (BP3)."""
        abs_delta = self.delta.abs()
        scales = {"weight": abs_delta.t() @ self.input.abs()}
        if self.bias is not None:
            scales["bias"] = abs_delta.sum(dim=0)
        return scales

    def torch_module(self) -> torch.nn.Module:
        """`torch.nn.Linear` followed by the same activation, with copies of this layer's weights."""
        out_features, in_features = self.weight.shape
        module = LinearActivation(
            in_features,
            out_features,
            self.activation.torch_fn,
            self.weight.dtype,
            self.weight.device,
            bias="bias" in self.parameter_names,
        )
        with torch.no_grad():
            for name in self.parameter_names:
                getattr(module, name).copy_(getattr(self, name))
        return module

    def _work(self, name: str, rows: int, columns: int | None = None) -> Tensor | None:
        """A work tensor from the workspace (None without one: the operation makes a new one)."""
        if self.workspace is None:
            return None
        return self.workspace.rows(name, rows, self.weight.shape[0] if columns is None else columns)


class ManualNetwork:
    """A stack of hand-written layers and a loss, trained by backpropagation through them.

    Mirrors `torch.nn.Module` where a learner would expect it: `named_parameters()`, `parameters()`,
    `state_dict()`, `load_state_dict()`, `forward(x)`, `__call__(x)`, `train()`, `eval()`.
    Parameters are named as torch names the modules of a `ModuleList` called `layers`
    (`layers.0.weight`, ...), so both models line up name by name.

    Attributes:
        layers: the layers, input side first.
        flat_parameters, flat_grads: every parameter, and every gradient, end to end in that
            order; `named_parameters()` and `named_grads()` are views into them.
    """

    def __init__(self, spec, layers: list):
        self.spec = spec
        self.loss_fn = LOSSES[spec.loss]
        self.layers = layers
        self.training = True
        initial = OrderedDict((name, t.detach().clone()) for name, t in self.named_parameters())
        dtype, device = spec.dtype, spec.device
        pieces = [tensor.reshape(-1) for tensor in initial.values()]
        self.flat_parameters = (
            torch.cat(pieces) if pieces else torch.zeros(0, dtype=dtype, device=device)
        )
        self.flat_grads = torch.zeros_like(self.flat_parameters)
        params, grads = _views(self.flat_parameters, initial), _views(self.flat_grads, initial)
        for i, layer in enumerate(self.layers):
            own = {local: params[f"layers.{i}.{local}"] for local in layer.parameter_names}
            own_grads = {local: grads[f"layers.{i}.{local}"] for local in layer.parameter_names}
            bind_parameters(layer, own, own_grads)
        self._named_grads = list(self.named_grads())  # the buffers never change, only their values

    # -- parameters, as torch names them ------------------------------------------------------------
    def _parameter_slots(self) -> Iterator[tuple[str, object, str]]:
        for i, layer in enumerate(self.layers):
            for local in layer.parameter_names:
                yield f"layers.{i}.{local}", layer, local

    def named_parameters(self) -> Iterator[tuple[str, Tensor]]:
        for name, layer, local in self._parameter_slots():
            yield name, getattr(layer, local)

    def parameters(self) -> Iterator[Tensor]:
        for _, tensor in self.named_parameters():
            yield tensor

    def named_grads(self) -> Iterator[tuple[str, Tensor]]:
        """The gradient buffers of the last backward, by parameter name (like `p.grad` in torch)."""
        for name, layer, local in self._parameter_slots():
            yield name, getattr(layer, f"grad_{local}")

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        """State that is not learnt by gradient (running statistics), as torch names it."""
        for i, layer in enumerate(self.layers):
            for local in getattr(layer, "buffer_names", ()):
                yield f"layers.{i}.{local}", getattr(layer, local)

    def state_dict(self) -> OrderedDict[str, Tensor]:
        """Parameters and buffers by name, copied: what `load_state_dict` of either model takes."""
        named = [*self.named_parameters(), *self.named_buffers()]
        return OrderedDict((name, t.detach().clone()) for name, t in named)

    @torch.no_grad()
    def load_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        own = {**dict(self.named_parameters()), **dict(self.named_buffers())}
        if set(state_dict) != set(own):
            missing, extra = sorted(set(own) - set(state_dict)), sorted(set(state_dict) - set(own))
            raise KeyError(f"state_dict does not match: missing {missing}, unexpected {extra}")
        for name, tensor in own.items():
            if state_dict[name].shape != tensor.shape:
                raise ValueError(
                    f"{name}: shape {tuple(state_dict[name].shape)} given, {tuple(tensor.shape)} needed"
                )
            tensor.copy_(state_dict[name])

    # -- modes, as torch has them -------------------------------------------------------------------
    def train(self, mode: bool = True) -> ManualNetwork:
        """Training mode (batch statistics, dropout on); `train(False)` is `eval()`."""
        self.training = mode
        for layer in self.layers:
            layer.training = mode
        return self

    def eval(self) -> ManualNetwork:
        """Evaluation mode: running statistics, dropout off."""
        return self.train(False)

    # -- passes ------------------------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """x (N, inputs) -> output (N, outputs), a new tensor; keeps every layer's cache."""
        check_input(self.spec, x)
        return self._forward(x).clone()  # the last layer's output may be a work tensor, reused

    __call__ = forward

    @torch.no_grad()
    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        check_target(self.spec, output, target)
        return self.loss_fn.value(output, target)

    @torch.no_grad()
    def backward(self, target: Tensor) -> None:
        """Backpropagate from the last forward's output; fills the gradient buffers."""
        output = self.layers[-1].output
        check_target(self.spec, output, target)
        self._backward(self.loss_fn.gradient(output, target))

    @torch.no_grad()
    def loss_and_grads(self, x: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One forward and backward pass: (loss as a 0-dim tensor, {parameter name: gradient}).

        The gradient tensors are the model's own buffers, overwritten by the next call (as
        `p.grad` is in torch); clone them to keep them.
        """
        check_input(self.spec, x)
        output = self._forward(x)
        check_target(self.spec, output, target)
        loss, grad_output = self.loss_fn.value_and_gradient(output, target)
        self._backward(grad_output)
        return loss, dict(self._named_grads)

    @torch.no_grad()
    def input_gradient(self, x: Tensor, target: Tensor) -> Tensor:
        """∂L/∂x (N, inputs): how the loss changes with each input (pixel), by the same backward
        pass carried one layer further, through the first layer too (BP2). Like
        `loss_and_grads`, it overwrites the gradient buffers."""
        check_input(self.spec, x)
        output = self._forward(x)
        check_target(self.spec, output, target)
        grad = self._backward(self.loss_fn.gradient(output, target), input_grad=True)
        return grad.reshape(x.shape).clone()  # a work buffer of the first layer: kept as a copy

    def _forward(self, x: Tensor) -> Tensor:
        shape = getattr(self.spec, "input_shape", None)
        if shape is not None:  # images come as rows of pixels, channel by channel
            x = x.reshape(x.shape[0], *shape)
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def _backward(self, grad_output: Tensor, input_grad: bool = False) -> Tensor | None:
        """`grad_output`: dL/d(output) of the network, where the backward pass starts.

        The first layer is asked for dL/dx only with `input_grad` (returned then): the inputs are
        data, nothing below them learns, so training never needs it.
        """
        grad = grad_output
        for layer in reversed(self.layers[1:]):
            grad = layer.backward(grad)
        return self.layers[0].backward(grad, input_grad=input_grad)


class ManualMLP(ManualNetwork):
    """A multilayer perceptron, `Linear` layers built from an `MLPSpec`, trained by hand-written
    backpropagation (see `ManualNetwork` for what it offers)."""

    def __init__(self, spec: MLPSpec):
        initial = spec.initial_parameters()
        layers = [
            Linear(
                initial[f"layers.{i}.weight"],
                initial.get(f"layers.{i}.bias"),  # None: a network without biases
                ACTIVATIONS[name],
                workspace=Workspace(spec.dtype, spec.device),
            )
            for i, name in enumerate(spec.activations)
        ]
        super().__init__(spec, layers)


def bind_parameters(layer, parameters: dict[str, Tensor], grads: dict[str, Tensor]) -> None:
    """Give `layer` its parameters and gradient buffers, by local name (`weight`, ...).

    A layer that derives something from its parameters (`Linear` keeps W^T) takes them in its own
    `bind(parameters, grads)`; any other layer has them set as attributes, `grad_<name>` for each
    gradient.
    """
    bind = getattr(layer, "bind", None)
    if bind is not None:
        bind(parameters, grads)
        return
    for local, tensor in parameters.items():
        setattr(layer, local, tensor)
        setattr(layer, f"grad_{local}", grads[local])


def _views(flat: Tensor, like: OrderedDict[str, Tensor]) -> dict[str, Tensor]:
    """`flat` cut into views shaped like each tensor of `like`, laid end to end in its order."""
    pieces = flat.split([tensor.numel() for tensor in like.values()])
    return {
        name: piece.view(tensor.shape)
        for (name, tensor), piece in zip(like.items(), pieces, strict=True)
    }
