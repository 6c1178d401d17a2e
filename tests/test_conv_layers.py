"""The image layers (`bpdemo.conv`) against their `torch.nn` twins and a naive loop written here.

Every comparison is in float64 and to 1e-12 of the reference's size: forward, ∂L/∂X and each
parameter's gradient, for L = Σ y · upstream with a random upstream.
"""

import itertools

import pytest
import torch
from torch import nn

from bpdemo import ConfigError, ManualSequential, NetworkSpec, check_gradients, twin_of
from bpdemo.conv import AvgPool2d, Conv2d, Flatten, MaxPool2d, fold, unfold

F64 = torch.float64
TOLERANCE = 1e-12


def close(given, expected) -> bool:
    scale = max(1.0, float(expected.abs().max()))
    return (
        given.shape == expected.shape and float((given - expected).abs().max()) <= TOLERANCE * scale
    )


def random(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def through_torch(module, x, upstream):
    """y, ∂L/∂x and {parameter: gradient} of a torch module, L = Σ y · upstream."""
    leaf = x.clone().requires_grad_(True)
    y = module(leaf)
    (y * upstream).sum().backward()
    return y.detach(), leaf.grad, {name: p.grad for name, p in module.named_parameters()}


# -- a convolution, written as the definition says, one output at a time ---------------------------
def naive_conv(x, weight, bias, stride, padding):
    """y[n, o, i, j] = b[o] + Σ_c,u,v W[o, c, u, v] · x_padded[n, c, i·s + u, j·s + v]"""
    n, channels, height, width = x.shape
    out, _, kh, kw = weight.shape
    padded = torch.zeros(n, channels, height + 2 * padding, width + 2 * padding, dtype=F64)
    padded[:, :, padding : padding + height, padding : padding + width] = x
    out_h = (height + 2 * padding - kh) // stride + 1
    out_w = (width + 2 * padding - kw) // stride + 1
    y = torch.zeros(n, out, out_h, out_w, dtype=F64)
    for b, o, i, j in itertools.product(range(n), range(out), range(out_h), range(out_w)):
        patch = padded[b, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
        y[b, o, i, j] = (weight[o] * patch).sum() + (0.0 if bias is None else bias[o])
    return y


def naive_conv_grads(x, weight, upstream, stride, padding):
    """∂L/∂W, ∂L/∂b and ∂L/∂X of L = Σ y · upstream, one term of the chain rule at a time."""
    n, channels, height, width = x.shape
    out, _, kh, kw = weight.shape
    padded = torch.zeros(n, channels, height + 2 * padding, width + 2 * padding, dtype=F64)
    padded[:, :, padding : padding + height, padding : padding + width] = x
    grad_padded = torch.zeros_like(padded)
    grad_weight = torch.zeros_like(weight)
    _, _, out_h, out_w = upstream.shape
    for b, o, i, j in itertools.product(range(n), range(out), range(out_h), range(out_w)):
        rows = slice(i * stride, i * stride + kh)
        cols = slice(j * stride, j * stride + kw)
        grad_weight[o] += upstream[b, o, i, j] * padded[b, :, rows, cols]
        grad_padded[b, :, rows, cols] += upstream[b, o, i, j] * weight[o]
    grad_x = grad_padded[:, :, padding : padding + height, padding : padding + width]
    return grad_weight, upstream.sum(dim=(0, 2, 3)), grad_x


CONV_CASES = [
    # (height, width, kernel, stride, padding, bias)
    (h, w, k, s, p, b)
    for (h, w), k, s, p, b in itertools.product(
        [(5, 5), (6, 7)], [2, 3], [1, 2], [0, 1], [True, False]
    )
]


@pytest.mark.parametrize(("height", "width", "kernel", "stride", "padding", "bias"), CONV_CASES)
def test_conv2d_agrees_with_torch_and_with_a_naive_loop(
    height, width, kernel, stride, padding, bias
):
    layer = Conv2d(3, 4, kernel, stride, padding, bias, dtype=F64)
    if bias:
        layer.bias.copy_(random(4, seed=1))
    x = random(2, 3, height, width, seed=2)
    y = layer.forward(x.clone())
    upstream = random(*y.shape, seed=3)
    grad_x = layer.backward(upstream.clone())

    y_torch, grad_x_torch, grads_torch = through_torch(layer.torch_module(), x, upstream)
    assert close(y, y_torch) and close(grad_x, grad_x_torch)
    assert close(layer.grad_weight, grads_torch["weight"])
    assert set(grads_torch) == set(layer.parameter_names)

    bias_value = layer.bias if bias else None
    assert close(y, naive_conv(x, layer.weight, bias_value, stride, padding))
    grad_weight, grad_bias, grad_x_naive = naive_conv_grads(
        x, layer.weight, upstream, stride, padding
    )
    assert close(layer.grad_weight, grad_weight) and close(grad_x, grad_x_naive)
    if bias:
        assert close(layer.grad_bias, grads_torch["bias"]) and close(layer.grad_bias, grad_bias)


def naive_pool(x, kernel, stride, reduce):
    n, channels, height, width = x.shape
    out_h, out_w = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    y = torch.zeros(n, channels, out_h, out_w, dtype=F64)
    for b, c, i, j in itertools.product(range(n), range(channels), range(out_h), range(out_w)):
        window = x[b, c, i * stride : i * stride + kernel, j * stride : j * stride + kernel]
        y[b, c, i, j] = reduce(window)
    return y


@pytest.mark.parametrize(
    ("layer_type", "reduce"), [(MaxPool2d, torch.max), (AvgPool2d, torch.mean)]
)
@pytest.mark.parametrize(
    ("height", "width", "kernel", "stride"), [(4, 4, 2, None), (5, 7, 2, 1), (7, 6, 3, 2)]
)
def test_pooling_agrees_with_torch_and_with_a_naive_loop(
    layer_type, reduce, height, width, kernel, stride
):
    layer = layer_type(kernel, stride)
    x = random(2, 3, height, width, seed=4)
    y = layer.forward(x.clone())
    upstream = random(*y.shape, seed=5)
    grad_x = layer.backward(upstream.clone())
    y_torch, grad_x_torch, _ = through_torch(layer.torch_module(), x, upstream)
    assert close(y, y_torch) and close(grad_x, grad_x_torch)
    assert close(y, naive_pool(x, kernel, stride or kernel, reduce))


def test_tied_maxima_send_the_whole_gradient_to_the_first_in_reading_order_as_torch_does():
    # every window of 2x2 holds one value four times; stride 1 makes the windows overlap
    x = torch.tensor([[[[1.0, 1.0, 2.0], [1.0, 1.0, 2.0], [2.0, 2.0, 2.0]]]], dtype=F64)
    layer = MaxPool2d(2, 1)
    y = layer.forward(x.clone())
    upstream = torch.tensor([[[[1.0, 10.0], [100.0, 1000.0]]]], dtype=F64)
    grad_x = layer.backward(upstream.clone())
    # by hand: window (0,0) max 1 at (0,0); (0,1) max 2 at (0,2); (1,0) max 2 at (2,0);
    # (1,1) max 2 at (1,2), the first 2 of [[1, 2], [2, 2]] in reading order
    expected = torch.zeros_like(x)
    expected[0, 0, 0, 0], expected[0, 0, 0, 2] = 1.0, 10.0
    expected[0, 0, 2, 0], expected[0, 0, 1, 2] = 100.0, 1000.0
    assert torch.equal(y, torch.tensor([[[[1.0, 2.0], [2.0, 2.0]]]], dtype=F64))
    assert torch.equal(grad_x, expected)
    _, grad_torch, _ = through_torch(layer.torch_module(), x, upstream)
    assert torch.equal(grad_x, grad_torch)


def test_flatten_goes_channel_by_channel_and_back():
    layer = Flatten()
    x = random(2, 3, 4, 5, seed=6)
    y = layer.forward(x)
    assert torch.equal(y, nn.Flatten()(x)) and y.shape == (2, 60)
    assert torch.equal(layer.backward(y * 2), x * 2)


@pytest.mark.parametrize(
    "layer",
    [
        Conv2d(2, 3, 3, 1, 1, dtype=F64),
        Conv2d(2, 3, 2, 2, 0, bias=False, dtype=F64),
        MaxPool2d(2),
        AvgPool2d(3, 2),
        Flatten(),
    ],
    ids=["conv-pad1", "conv-stride2-nobias", "maxpool", "avgpool", "flatten"],
)
def test_check_gradients_passes_for_each_image_layer(layer):
    if "bias" in layer.parameter_names:
        layer.bias.copy_(random(3, seed=7))
    report = check_gradients(layer, random(2, 2, 6, 6, seed=8))
    assert report.passed, str(report)
    assert {row.reference for row in report.rows} == {"finite differences", "autograd"}


class TransposedKernelConv(Conv2d):
    """A plausible mistake: ∂L/∂X spread back through each kernel transposed (u and v swapped)."""

    def backward(self, grad_output, input_grad=True):
        grad_x = super().backward(grad_output, input_grad)
        saved = self.weight
        self.weight = saved.transpose(2, 3).contiguous()
        wrong = super().backward(grad_output, input_grad)
        self.weight = saved
        return wrong if grad_x is not None else None


def test_check_gradients_fails_for_a_backward_with_a_transposed_kernel():
    layer = TransposedKernelConv(2, 3, 3, 1, 1, dtype=F64)
    report = check_gradients(layer, random(2, 2, 5, 5, seed=9))
    assert not report.passed
    assert {row.name for row in report.failures} == {"input x"}


CNN = [
    {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1},
    {"type": "activation", "name": "tanh"},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "conv2d", "out_channels": 2, "kernel_size": 2, "stride": 2, "bias": False},
    {"type": "flatten"},
    {"type": "linear", "units": 3},
]


def test_a_cnn_described_by_a_spec_has_the_shapes_torch_gives_and_autograds_gradients():
    spec = NetworkSpec(2 * 8 * 8, CNN, loss="cross_entropy", dtype="float64", input_shape=(2, 8, 8))
    assert spec.shapes == [(2, 8, 8), (3, 8, 8), (3, 8, 8), (3, 4, 4), (2, 2, 2), (8,), (3,)]
    model = ManualSequential(spec)
    x, y = random(4, 128, seed=10), torch.tensor([0, 2, 1, 2])
    report = check_gradients(model, (x, y))
    assert report.passed, str(report)
    twin = twin_of(model)
    leaf = x.clone().requires_grad_(True)
    twin.loss(twin(leaf), y).backward()
    assert close(model.input_gradient(x, y), leaf.grad)


@pytest.mark.parametrize(
    ("layers", "shape", "message"),
    [
        (
            [{"type": "conv2d", "out_channels": 2, "kernel_size": 5}],
            (1, 4, 4),
            "layers[0] (conv2d): kernel 5×5 is larger than its input of 4×4 pixels",
        ),
        (
            [
                {"type": "maxpool2d", "kernel_size": 2},
                {"type": "conv2d", "out_channels": 2, "kernel_size": 3, "in_channels": 3},
            ],
            (1, 4, 4),
            "layers[1] (conv2d): in_channels is 3, but its input has 1 channels",
        ),
        (
            [{"type": "avgpool2d", "kernel_size": 2}, {"type": "linear", "units": 2}],
            (1, 4, 4),
            "layers[1] (linear): takes features, but gets images 1×2×2: put a flatten layer before it",
        ),
        (
            [{"type": "flatten"}, {"type": "maxpool2d", "kernel_size": 2}],
            (1, 4, 4),
            "layers[1] (maxpool2d): takes images (channels, height, width), but gets 16 features",
        ),
    ],
)
def test_a_layer_that_cannot_take_its_input_is_one_line_naming_it(layers, shape, message):
    with pytest.raises(ConfigError) as caught:
        NetworkSpec(16, layers, input_shape=shape)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_network_that_starts_with_a_linear_layer_takes_the_images_as_rows():
    spec = NetworkSpec(16, [{"type": "linear", "units": 2}], input_shape=(1, 4, 4))
    assert spec.input_shape is None and spec.shapes == [(16,), (2,)]


@pytest.mark.parametrize(
    ("kernel", "stride", "padding"), [(2, 1, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 0))]
)
def test_unfold_and_fold_move_the_numbers_as_torchs_do(kernel, stride, padding):
    from torch.nn.functional import fold as torch_fold
    from torch.nn.functional import unfold as torch_unfold

    pairs = [k if isinstance(k, tuple) else (k, k) for k in (kernel, stride, padding)]
    x = random(2, 3, 7, 6, seed=11)
    columns = unfold(x, *pairs)
    assert torch.equal(columns, torch_unfold(x, kernel, padding=padding, stride=stride))
    back = fold(columns, (7, 6), *pairs)
    expected = torch_fold(columns, (7, 6), kernel, padding=padding, stride=stride)
    assert close(back, expected)


def test_a_cnn_of_too_many_weights_is_refused_before_it_is_built():
    from bpdemo.spec import ModelSection

    wide = [
        {"type": "conv2d", "out_channels": 4096, "kernel_size": 3, "padding": 1},
        {"type": "flatten"},
        {"type": "linear"},
    ]
    # 4096 × (3·9 + 1) = 114,688 for the kernels, (4096·32·32 + 1) × 10 for the linear layer
    with pytest.raises(ConfigError, match="layers make 42,057,738 weights"):
        ModelSection(layers=wide).spec(3072, 10, 0, (3, 32, 32))
