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

Speed (README, "Performance"): a training pass writes z, a, delta and dL/dx of the hidden layers into
buffers each layer allocates once, for the largest batch it has seen, and reuses (a smaller batch, such
as the short last one of an epoch, uses their first rows); it applies f'(z) in place, and multiplies by
a transposed view of W made once. Fresh large tensors are costly on a CPU (the operating system must
map and zero new pages each time), and reusing buffers also keeps the peak memory down. All weights
and biases are views into one flat tensor, and their gradients into another (`flat_views`), so an
optimizer updates the whole network with one operation per line of its rule. The network's
output is a new tensor at each pass, because callers keep it; the layers' cache (`input`,
`pre_activation`, `output`, `delta`) and the gradient buffers hold the last pass only: clone them to
keep them.
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
        input, pre_activation, output, delta: the cache of the last pass, (N, in) and (N, out).
    """

    def __init__(
        self,
        weight: Tensor,
        bias: Tensor,
        activation: Activation,
        grad_weight: Tensor | None = None,
        grad_bias: Tensor | None = None,
    ):
        """`grad_weight`, `grad_bias`: where to write the gradients (zeros of their own if None)."""
        self.weight = weight
        self.bias = bias
        self.activation = activation
        self.grad_weight = torch.zeros_like(weight) if grad_weight is None else grad_weight
        self.grad_bias = torch.zeros_like(bias) if grad_bias is None else grad_bias
        self.input: Tensor | None = None
        self.pre_activation: Tensor | None = None
        self.output: Tensor | None = None
        self.delta: Tensor | None = None
        self._buffers: dict[str, Tensor] = {}  # work tensors, rows for the largest batch seen
        self._views: dict[str, Tensor] = {}  # the rows of each that the last pass used

    @property
    def weight(self) -> Tensor:
        return self._weight

    @weight.setter
    def weight(self, weight: Tensor) -> None:
        self._weight = weight
        self._weight_t = weight.t()  # W^T, a view made once: it follows every in-place update of W

    def forward(self, x: Tensor, reuse_buffers: bool = False) -> Tensor:
        """x (N, in) -> a (N, out), keeping x, z and a for the backward pass.

        With `reuse_buffers`, z and a are written into this layer's buffers (overwritten next pass)
        instead of new tensors.
        """
        self.input = x
        if not reuse_buffers:
            self.pre_activation = torch.addmm(self.bias, x, self._weight_t)  # z = x W^T + b
            self.output = self.activation.forward(self.pre_activation)  # a = f(z)
            return self.output
        rows = x.shape[0]
        z = torch.addmm(self.bias, x, self._weight_t, out=self._buffer("z", rows))  # z = x W^T + b
        if self.activation.forward_into is None:
            a = self.activation.forward(z)
        else:
            a = self.activation.forward_into(z, self._buffer("a", rows))  # a = f(z)
        self.pre_activation, self.output = z, a
        return a

    def backward(
        self, grad_output: Tensor, need_grad_input: bool = True, in_place: bool = False
    ) -> Tensor | None:
        """dL/da (N, out) -> dL/dx (N, in); stores dL/dW and dL/db.

        Returns None when `need_grad_input` is False (the first layer: nothing below it learns).
        With `in_place`, `grad_output` is overwritten with delta and dL/dx is written into this
        layer's buffer (overwritten next pass): for callers that own `grad_output`, as `ManualMLP`.
        """
        # BP1 / BP2 (right-hand factor): delta = dL/dz = dL/da * f'(z)
        z, a = self.pre_activation, self.output
        if in_place and self.activation.backward_in_place is not None:
            scratch = self._buffer("scratch", z.shape[0])
            self.delta = self.activation.backward_in_place(grad_output, z, a, scratch)
        else:
            self.delta = self.activation.backward(grad_output, z, a)
        torch.mm(self.delta.t(), self.input, out=self.grad_weight)  # BP4: dL/dW = delta^T x
        torch.sum(self.delta, dim=0, out=self.grad_bias)  # BP3: dL/db = sum_n delta
        if not need_grad_input:
            return None
        if not in_place:
            return self.delta @ self.weight  # BP2 (left-hand factor): dL/dx = delta W
        grad_input = self._buffer("grad_input", z.shape[0], self.weight.shape[1])
        return torch.mm(self.delta, self.weight, out=grad_input)  # BP2 (left-hand factor)

    def _buffer(self, name: str, rows: int, columns: int | None = None) -> Tensor:
        """A (rows, columns or out_features) work tensor kept between passes.

        The first `rows` rows of a buffer allocated on first use and again only when a larger batch
        comes (evaluation on a whole split, say): a smaller batch, such as the short last one of an
        epoch, uses its first rows, and a training loop allocates nothing.
        """
        view = self._views.get(name)
        if view is not None and view.shape[0] == rows:
            return view
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape[0] < rows:
            columns = self.weight.shape[0] if columns is None else columns
            buffer = torch.empty(rows, columns, dtype=self.weight.dtype, device=self.weight.device)
            self._buffers[name] = buffer
        view = self._views[name] = buffer[:rows]
        return view


class ManualMLP:
    """A multilayer perceptron trained by hand-written backpropagation.

    Mirrors `torch.nn.Module` where a learner would expect it: `named_parameters()`, `parameters()`,
    `state_dict()`, `load_state_dict()`, `forward(x)`, `__call__(x)`.
    """

    def __init__(self, spec: MLPSpec):
        self.spec = spec
        self.loss_fn = LOSSES[spec.loss]
        params, grads = flat_views(spec.initial_parameters())
        self.layers = [
            Linear(
                params[f"layers.{i}.weight"],
                params[f"layers.{i}.bias"],
                ACTIVATIONS[name],
                grads[f"layers.{i}.weight"],
                grads[f"layers.{i}.bias"],
            )
            for i, name in enumerate(spec.activations)
        ]
        self._named_grads = list(self.named_grads())  # the buffers never change, only their values

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
    # The public passes each switch autograd off; `loss_and_grads` switches it off once around the
    # three (entering `torch.no_grad()` costs about 1.5 us, a tenth of a tiny network's forward).
    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """x (N, sizes[0]) -> output (N, sizes[-1]); keeps every layer's cache for `backward`."""
        return self._forward(x)

    __call__ = forward

    @torch.no_grad()
    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        check_target(self.spec, output, target)
        return self.loss_fn.value(output, target)

    @torch.no_grad()
    def backward(self, target: Tensor) -> None:
        """Backpropagate from the last forward's output; fills the gradient buffers."""
        self._backward(target)

    def loss_and_grads(self, x: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One forward and backward pass: (loss as a 0-dim tensor, {parameter name: gradient}).

        The gradient tensors are the model's own buffers, overwritten by the next call (as
        `p.grad` is in torch); clone them to keep them.
        """
        with torch.no_grad():
            output = self._forward(x)
            check_target(self.spec, output, target)
            if self.loss_fn.value_and_gradient is None:
                loss, grad_output = self.loss_fn.value(output, target), None
            else:
                loss, grad_output = self.loss_fn.value_and_gradient(output, target)
            self._backward(target, grad_output)
        return loss, dict(self._named_grads)

    def _forward(self, x: Tensor) -> Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            # hidden layers reuse their buffers; the output is new, since callers keep it
            x = layer.forward(x, reuse_buffers=i < last)
        return x

    def _backward(self, target: Tensor, grad_output: Tensor | None = None) -> None:
        """`grad_output`: dL/da at the output if already known (a new tensor), else computed here."""
        # dL/da at the output: a new tensor, so the layers may overwrite it with delta (BP1)
        grad = grad_output
        if grad is None:
            grad = self.loss_fn.gradient(self.layers[-1].output, target)
        for i in range(len(self.layers) - 1, -1, -1):
            grad = self.layers[i].backward(grad, need_grad_input=i > 0, in_place=True)


def flat_views(
    initial: OrderedDict[str, Tensor],
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Every parameter as a view into one flat tensor, and a zero gradient for each as a view into
    another, laid end to end in torch's parameter order.

    An optimizer then finds the whole network in two tensors and updates it with one operation per
    line of its rule, instead of one per parameter (`bpdemo.optim.consecutive`).
    """
    flat = torch.cat([tensor.reshape(-1) for tensor in initial.values()])
    flat_grad = torch.zeros_like(flat)
    sizes = [tensor.numel() for tensor in initial.values()]
    params, grads = {}, {}
    pieces = zip(initial.items(), flat.split(sizes), flat_grad.split(sizes), strict=True)
    for (name, tensor), piece, grad_piece in pieces:
        params[name] = piece.view(tensor.shape)
        grads[name] = grad_piece.view(tensor.shape)
    return params, grads


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
