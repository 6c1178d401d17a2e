"""`bpdemo.register_layer`: a layer of the user's own, with its own parameters (a Swish with a learnable
β per feature), checked on registration and then trained side by side, from Python, from a config and
through `--import`."""

import json
import textwrap

import pytest
import torch

from bpdemo import NetworkSpec, OptimizerSpec, SideBySide, fit, register_layer
from bpdemo.infra.cli import run_main
from bpdemo.register import import_extensions
from demos.images import main

# The extension a user writes: the layer by hand, its derivatives derived on paper, and its torch twin.
SWISH = textwrap.dedent(
    '''
    import torch
    from torch import nn

    from bpdemo import register_layer


    def per_feature(values, x):
        """(F,) values lined up with x's second axis, (N, F) or (N, C, H, W)."""
        return values.view(1, -1, *[1] * (x.ndim - 2))


    class TorchSwish(nn.Module):
        def __init__(self, beta):
            super().__init__()
            self.beta = nn.Parameter(beta.clone())

        def forward(self, x):
            return x * torch.sigmoid(per_feature(self.beta, x) * x)


    class Swish:
        """y = x σ(βx), one learnable β per feature (or channel).

        dy/dx = σ + βx σ(1 − σ),   dy/dβ = x² σ(1 − σ),   σ = σ(βx)
        """

        parameter_names = ("beta",)

        def __init__(self, shape, dtype, device, beta=1.0):
            self.beta = torch.full(shape[:1], float(beta), dtype=dtype, device=device)
            self.grad_beta = torch.zeros_like(self.beta)
            self.training = True

        def forward(self, x):
            self.input = x
            self.sigmoid = torch.sigmoid(per_feature(self.beta, x) * x)
            return x * self.sigmoid

        def backward(self, grad_output, input_grad=True):
            x, s = self.input, self.sigmoid
            slope = s * (1 - s)
            by_feature = grad_output * x * x * slope  # dL/dβ, summed over all but the features
            torch.sum(by_feature, dim=[d for d in range(x.ndim) if d != 1], out=self.grad_beta)
            if not input_grad:
                return None
            return grad_output * (s + per_feature(self.beta, x) * x * slope)

        def torch_module(self):
            return TorchSwish(self.beta)


    register_layer("swish", Swish)
    '''
)
LAYERS = [
    {"type": "linear", "units": 12},
    {"type": "swish", "beta": 0.5},
    {"type": "linear", "units": 3},
]


@pytest.fixture
def swish_file(tmp_path, registries):
    path = tmp_path / "swish_layer.py"
    path.write_text(SWISH)
    return path


def test_a_registered_swish_trains_side_by_side_and_learns_its_beta(swish_file):
    import_extensions([str(swish_file)])
    spec = NetworkSpec(4, LAYERS, loss="cross_entropy", dtype="float64", seed=1)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=generator, dtype=torch.float64)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    pair = SideBySide(spec, OptimizerSpec("adam", lr=0.05))
    fit(pair, (x[:64], y[:64]), (x[64:], y[64:]), epochs=3, batch_size=16, quiet=True)
    assert pair.agreement.within_tolerance and pair.agreement.steps_compared == 12
    beta = pair.manual.layers[1].beta
    assert not torch.allclose(beta, torch.full_like(beta, 0.5))  # learned
    assert torch.allclose(beta, pair.autograd.layers[1].beta.detach(), rtol=0, atol=1e-12)
    assert [name for name, _ in pair.manual.named_parameters()][2] == "layers.1.beta"


def test_a_registered_layer_trains_from_a_config_through_import(swish_file, tmp_path):
    config = tmp_path / "swish.toml"
    config.write_text(
        textwrap.dedent(
            """
            [data]
            per_class = 20
            [model]
            loss = "cross_entropy"
            dtype = "float64"
            layers = [{type = "linear", units = 16}, {type = "swish"}, {type = "linear"}]
            [train]
            epochs = 2
            batch_size = 25
            """
        )
    )
    out = tmp_path / "run"
    argv = ["--import", str(swish_file), "--config", str(config), "--quiet", "--out", str(out)]
    assert run_main(main, argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["agreement"]["within_tolerance"] is True and metrics["steps"] == 12


def test_a_layer_with_a_wrong_derivative_is_refused_in_one_line(swish_file):
    wrong = swish_file.read_text().replace("x * x * slope", "x * slope").replace('"swish"', '"bad"')
    swish_file.write_text(wrong)
    with pytest.raises(Exception) as caught:
        import_extensions([str(swish_file)])
    message = str(caught.value)
    assert "layer 'bad'" in message and "parameter beta" in message and "\n" not in message


def test_a_layer_class_that_cannot_be_built_by_the_network_is_refused(registries):
    class NoShape:
        def __init__(self, features):
            pass

    with pytest.raises(ValueError, match="must take shape, dtype, device"):
        register_layer("noshape", NoShape)
