"""Hand-written layers for images: convolution, max and average pooling, flattening.

Each is a layer of the kind `bpdemo.layers` describes (`forward`, `backward`, `parameter_names`,
`torch_module()`), on activations of shape (N, C, H, W). A convolution is a matrix product over the
image's patches (im2col, as CS231n's fast layers and torch's own CPU kernels do it):

    patches = unfold(X)           (N, C·kh·kw, L)   one column per output position, L = H_out·W_out
    Z = W · patches + b           (N, out, L)       W viewed as (out, C·kh·kw)
    BP4  ∂L/∂W = δ · patchesᵀ     summed over the batch
    BP3  ∂L/∂b = Σ δ              over the batch and every position
    BP2  ∂L/∂X = fold(Wᵀ · δ)     each patch's gradient added back where the patch came from

`unfold` and `fold` only move numbers (fold adds those that land on the same pixel); no `conv2d`
is called on the hand-written path. A pooling layer takes the same windows of each channel on its
own: max pooling routes each output's gradient to the one input that was the window's maximum
(the first in reading order when several tie, as torch does), average pooling spreads it evenly.

`output_shape(entry, shape, where)` gives each kind's output shape from its input's, so a network
description is checked before anything is built (`bpdemo.spec.NetworkSpec`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    """A size given as one number (square) or as (height, width), as torch takes it."""
    if isinstance(value, int | float):
        return (int(value), int(value))
    height, width = value
    return (int(height), int(width))


def sliding_output(size: int, kernel: int, stride: int, padding: int) -> int:
    """How many positions a window of `kernel` takes along `size` pixels (padded on both sides)."""
    return (size + 2 * padding - kernel) // stride + 1


def windows(x: Tensor, kernel, stride, padding=(0, 0)) -> Tensor:
    """Every window of x (N, C, H, W) as a view (N, C, kh, kw, H_out, W_out), zero-padded: entry
    [n, c, u, v, i, j] is x_padded[n, c, i·s + u, j·s + v]. Made once, read many times, copies
    nothing; `unfold(x)` is this reshaped to (N, C·kh·kw, L)."""
    if any(padding):
        x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    n, channels, height, width = x.shape
    out_h = sliding_output(height, kernel[0], stride[0], 0)
    out_w = sliding_output(width, kernel[1], stride[1], 0)
    s_n, s_c, s_h, s_w = x.stride()
    return x.as_strided(
        (n, channels, kernel[0], kernel[1], out_h, out_w),
        (s_n, s_c, s_h, s_w, s_h * stride[0], s_w * stride[1]),
    )


def unfold(x: Tensor, kernel, stride, padding) -> Tensor:
    """The patches of x (N, C, H, W) as columns (N, C·kh·kw, L), as `torch.nn.functional.unfold`."""
    view = windows(x, kernel, stride, padding)
    n, channels, kh, kw, out_h, out_w = view.shape
    return view.reshape(n, channels * kh * kw, out_h * out_w)


def fold(columns: Tensor, size, kernel, stride, padding) -> Tensor:
    """The columns (N, C·kh·kw, L) of patches added back onto an image (N, C, H, W), as
    `torch.nn.functional.fold`: one strided addition per kernel offset (u, v)."""
    (height, width), (kh, kw) = size, kernel
    n = columns.shape[0]
    channels = columns.shape[1] // (kh * kw)
    padded = columns.new_zeros(n, channels, height + 2 * padding[0], width + 2 * padding[1])
    out_h = sliding_output(height, kh, stride[0], padding[0])
    out_w = sliding_output(width, kw, stride[1], padding[1])
    pieces = columns.view(n, channels, kh, kw, out_h, out_w)
    for u in range(kh):
        for v in range(kw):
            rows = slice(u, u + stride[0] * (out_h - 1) + 1, stride[0])
            cols = slice(v, v + stride[1] * (out_w - 1) + 1, stride[1])
            padded[:, :, rows, cols] += pieces[:, :, u, v]
    return padded[:, :, padding[0] : padding[0] + height, padding[1] : padding[1] + width]


class Conv2d:
    """A 2-d convolution, as `torch.nn.Conv2d` (cross-correlation, torch's names and shapes).

    Attributes:
        weight: (out_channels, in_channels, kh, kw); bias: (out_channels,) (absent without bias).
        grad_weight, grad_bias: ∂L/∂W and ∂L/∂b of the last backward, same shapes.
        input_size: the last forward's (H, W); patches: unfold(X) (N, C·kh·kw, L).
        delta: the last backward's δ = ∂L/∂Z (N, out, H_out, W_out).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = pair(kernel_size), pair(stride), pair(padding)
        self.parameter_names = ("weight", "bias") if bias else ("weight",)
        kh, kw = self.kernel_size
        # torch's default: U(-1/√fan_in, 1/√fan_in), fan_in = C·kh·kw
        bound = 1 / math.sqrt(in_channels * kh * kw)
        weight = torch.empty(out_channels, in_channels, kh, kw, dtype=torch.float64)
        weight.uniform_(-bound, bound, generator=generator)
        self.weight = weight.to(dtype=dtype, device=device)
        self.grad_weight = torch.zeros_like(self.weight)
        if bias:
            self.bias = torch.zeros(out_channels, dtype=dtype, device=device)
            self.grad_bias = torch.zeros_like(self.bias)
        self.training = True
        self.input_size: tuple[int, int] | None = None
        self.patches: Tensor | None = None
        self.delta: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        """X (N, C, H, W) -> Z (N, out, H_out, W_out), keeping X's patches."""
        n, _, height, width = x.shape
        out_h = sliding_output(height, self.kernel_size[0], self.stride[0], self.padding[0])
        out_w = sliding_output(width, self.kernel_size[1], self.stride[1], self.padding[1])
        self.input_size = (height, width)
        self.patches = unfold(x, self.kernel_size, self.stride, self.padding)  # (N, C·kh·kw, L)
        kernels = self.weight.view(self.out_channels, -1)  # (out, C·kh·kw): one kernel a row
        z = torch.matmul(kernels, self.patches)  # Z = W · patches   (N, out, L)
        if "bias" in self.parameter_names:
            z += self.bias.view(1, -1, 1)  # + b, one per output channel
        return z.view(n, self.out_channels, out_h, out_w)

    def backward(self, grad_output: Tensor, input_grad: bool = True) -> Tensor | None:
        """δ = ∂L/∂Z (N, out, H_out, W_out) -> ∂L/∂X (N, C, H, W); fills the gradients."""
        n = grad_output.shape[0]
        self.delta = grad_output
        delta = grad_output.reshape(n, self.out_channels, -1)  # (N, out, L)
        # BP4: ∂L/∂W = δ · patchesᵀ, one product per image, summed over the batch
        per_image = torch.matmul(delta, self.patches.transpose(1, 2))  # (N, out, C·kh·kw)
        torch.sum(per_image, dim=0, out=self.grad_weight.view(self.out_channels, -1))
        if "bias" in self.parameter_names:
            torch.sum(delta, dim=(0, 2), out=self.grad_bias)  # BP3: ∂L/∂b = Σ δ
        if not input_grad:
            return None
        kernels = self.weight.view(self.out_channels, -1)
        grad_patches = torch.matmul(kernels.t(), delta)  # Wᵀ · δ   (N, C·kh·kw, L)
        # BP2: ∂L/∂X = fold(Wᵀ · δ): each patch's share added back onto the pixels it came from
        return fold(grad_patches, self.input_size, self.kernel_size, self.stride, self.padding)

    def summand_scales(self) -> dict[str, Tensor]:
        """|δ| · |patches|ᵀ for the weight (BP4), Σ|δ| for the bias (BP3): see `bpdemo.agreement`."""
        n = self.delta.shape[0]
        abs_delta = self.delta.abs().reshape(n, self.out_channels, -1)
        per_image = torch.matmul(abs_delta, self.patches.abs().transpose(1, 2))
        scales = {"weight": per_image.sum(dim=0).view_as(self.weight)}
        if "bias" in self.parameter_names:
            scales["bias"] = abs_delta.sum(dim=(0, 2))
        return scales

    def torch_module(self) -> nn.Module:
        """`torch.nn.Conv2d` with copies of this layer's weights."""
        module = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            bias="bias" in self.parameter_names,
            dtype=self.weight.dtype,
            device=self.weight.device,
        )
        with torch.no_grad():
            for name in self.parameter_names:
                getattr(module, name).copy_(getattr(self, name))
        return module


class _Pool2d:
    """What max and average pooling share: each channel's windows, (N, C, kh·kw, H_out, W_out)."""

    parameter_names = ()

    def __init__(self, kernel_size: int | tuple[int, int], stride=None):
        self.kernel_size = pair(kernel_size)
        self.stride = self.kernel_size if stride is None else pair(stride)  # torch's default
        self.training = True
        self.input_size: tuple[int, int] | None = None

    def _windows(self, x: Tensor) -> Tensor:
        self.input_size = tuple(x.shape[2:])
        view = windows(x, self.kernel_size, self.stride)
        n, channels, kh, kw, out_h, out_w = view.shape
        return view.reshape(n, channels, kh * kw, out_h, out_w)

    def _fold(self, grad_windows: Tensor) -> Tensor:
        """(N, C, kh·kw, H_out, W_out) -> (N, C, H, W): each window's gradient added back onto
        its pixels."""
        n = grad_windows.shape[0]
        columns = grad_windows.reshape(n, -1, grad_windows.shape[3] * grad_windows.shape[4])
        return fold(columns, self.input_size, self.kernel_size, self.stride, (0, 0))


class MaxPool2d(_Pool2d):
    """Max pooling, as `torch.nn.MaxPool2d(kernel_size, stride)`: y = max of each window.

    Backward: ∂L/∂x is ∂L/∂y at the window's maximum and 0 elsewhere; where several inputs tie
    for the maximum, the first in reading order takes it all, as torch routes it.
    """

    def __init__(self, kernel_size, stride=None):
        super().__init__(kernel_size, stride)
        self.argmax: Tensor | None = None  # (N, C, 1, H_out, W_out): where each maximum is

    def forward(self, x: Tensor) -> Tensor:
        # torch.max gives the first index of the maximum on a tie; a window's position fits in a
        # byte (up to 255 pixels), an eighth of the memory of the int64 it comes as
        y, argmax = self._windows(x).max(dim=2, keepdim=True)
        small = self.kernel_size[0] * self.kernel_size[1] <= 255
        self.argmax = argmax.to(torch.uint8) if small else argmax
        return y.squeeze(2)

    def backward(self, grad_output: Tensor, input_grad: bool = True) -> Tensor | None:
        if not input_grad:
            return None
        n, channels, out_h, out_w = grad_output.shape
        window = self.kernel_size[0] * self.kernel_size[1]
        routed = grad_output.new_zeros(n, channels, window, out_h, out_w)
        # ∂L/∂y goes to the maximum only
        routed.scatter_(2, self.argmax.long(), grad_output.unsqueeze(2))
        return self._fold(routed)

    def torch_module(self) -> nn.Module:
        return nn.MaxPool2d(self.kernel_size, self.stride)


class AvgPool2d(_Pool2d):
    """Average pooling, as `torch.nn.AvgPool2d(kernel_size, stride)`: y = mean of each window.

    Backward: each input of a window gets ∂L/∂y / (kh·kw), added up where windows overlap.
    """

    def forward(self, x: Tensor) -> Tensor:
        return self._windows(x).mean(dim=2)

    def backward(self, grad_output: Tensor, input_grad: bool = True) -> Tensor | None:
        if not input_grad:
            return None
        n, channels, out_h, out_w = grad_output.shape
        window = self.kernel_size[0] * self.kernel_size[1]
        share = (grad_output / window).unsqueeze(2)  # ∂L/∂x = ∂L/∂y / (kh·kw)
        return self._fold(share.expand(n, channels, window, out_h, out_w))

    def torch_module(self) -> nn.Module:
        return nn.AvgPool2d(self.kernel_size, self.stride)


class Flatten:
    """(N, C, H, W) -> (N, C·H·W), channel by channel, as `torch.nn.Flatten`; the backward puts
    the gradient back into the image's shape."""

    parameter_names = ()

    def __init__(self):
        self.training = True
        self.input_shape: tuple[int, ...] | None = None

    def forward(self, x: Tensor) -> Tensor:
        self.input_shape = tuple(x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_output: Tensor, input_grad: bool = True) -> Tensor | None:
        return grad_output.reshape(self.input_shape) if input_grad else None

    def torch_module(self) -> nn.Module:
        return nn.Flatten()


# -- the description of each kind: its keys, and its output shape -------------------------------------
# Keys and defaults, as `bpdemo.spec.LAYER_KEYS` lists them for every kind: None is required;
# "input" takes the input's channel count (a number given is checked against it); a pool's stride
# "kernel_size" is its kernel's, as torch's default. A size is one whole number (square) or two,
# [height, width].
IMAGE_LAYER_KEYS: dict[str, dict[str, object]] = {
    "conv2d": {
        "out_channels": None,
        "kernel_size": None,
        "stride": 1,
        "padding": 0,
        "bias": True,
        "in_channels": "input",
    },
    "maxpool2d": {"kernel_size": None, "stride": "kernel_size"},
    "avgpool2d": {"kernel_size": None, "stride": "kernel_size"},
    "flatten": {},
}


def _size(entry: dict, key: str, where: str, least: int) -> tuple[int, int]:
    """entry[key] as (height, width), or a ValueError of one line."""
    value = entry[key]
    values = list(value) if isinstance(value, list | tuple) else [value]
    if len(values) not in (1, 2) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= least for v in values
    ):
        raise ValueError(f"{where}{key} must be a whole number of at least {least}, or two of them")
    return (values[0], values[-1])


def sizes_of(entry: dict, where: str = "") -> dict[str, object]:
    """An image layer's kernel, stride and padding as (height, width) pairs, checked."""
    sizes: dict[str, object] = {"kernel_size": _size(entry, "kernel_size", where, 1)}
    stride_key = "kernel_size" if entry["stride"] == "kernel_size" else "stride"
    sizes["stride"] = _size(entry, stride_key, where, 1)
    sizes["padding"] = _size(entry, "padding", where, 0) if "padding" in entry else (0, 0)
    return sizes


def output_shape(entry: dict, shape: tuple[int, ...], where: str) -> tuple[int, ...]:
    """The shape (C, H, W) or (features,) an image layer makes of `shape`; a ValueError of one line,
    starting with `where` ("layers[2] (conv2d): "), if it cannot take it."""
    kind = entry["type"]
    if len(shape) != 3:
        raise ValueError(
            f"{where}takes images (channels, height, width), but gets {shape[0]} features: "
            "put it before the flatten (and give the network the images' input_shape)"
        )
    if kind == "flatten":
        return (math.prod(shape),)
    channels, height, width = shape
    sizes = sizes_of(entry, where)
    kernel, stride, padding = sizes["kernel_size"], sizes["stride"], sizes["padding"]
    if kind == "conv2d":
        out_channels = _size(entry, "out_channels", where, 1)[0]
        if entry["in_channels"] not in ("input", channels):
            raise ValueError(
                f"{where}in_channels is {entry['in_channels']}, but its input has {channels} "
                "channels; leave in_channels out, or change the layer before it"
            )
        if not isinstance(entry["bias"], bool):
            raise ValueError(f"{where}bias must be true or false")
    if kernel[0] > height + 2 * padding[0] or kernel[1] > width + 2 * padding[1]:
        padded = f" padded by {padding[0]}" if any(padding) else ""
        raise ValueError(
            f"{where}kernel {kernel[0]}×{kernel[1]} is larger than its input of "
            f"{height}×{width} pixels{padded}: use a smaller kernel, or pool less before it"
        )
    out_h = sliding_output(height, kernel[0], stride[0], padding[0])
    out_w = sliding_output(width, kernel[1], stride[1], padding[1])
    return (out_channels if kind == "conv2d" else channels, out_h, out_w)


def build(entry: dict, shape: tuple[int, ...], dtype, device) -> object:
    """The hand-written layer an entry describes, for inputs of `shape` (C, H, W); a convolution's
    weights start as torch's default draws them (the caller may draw them again)."""
    kind = entry["type"]
    if kind == "flatten":
        return Flatten()
    sizes = sizes_of(entry)
    if kind == "conv2d":
        return Conv2d(
            shape[0],
            entry["out_channels"],
            bias=entry["bias"],
            dtype=dtype,
            device=device,
            **sizes,
        )
    return (MaxPool2d if kind == "maxpool2d" else AvgPool2d)(sizes["kernel_size"], sizes["stride"])
