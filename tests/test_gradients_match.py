"""Hand-written gradients equal autograd's (within the documented tolerance) and finite differences.

For every activation and every loss, float32 and float64, batch 1 and 8, depth 1 to 4.
"""

import itertools

import pytest
import torch

from bpdemo import AutogradMLP, ManualMLP, MLPSpec, finite_difference_grads, rel_diff
from bpdemo.agreement import FINITE_DIFFERENCE_TOLERANCE, TOLERANCES
from bpdemo.functional import ACTIVATIONS, LOSSES
from tests.conftest import make_data, suited_to

WIDTHS = [4, 5, 3, 4, 3]  # input width, then the width of up to four layers


def spec_for(activation: str, loss: str, depth: int, dtype: torch.dtype) -> MLPSpec:
    """A depth-layer network using `activation` everywhere, but last where the loss's kind of target
    needs another (a sigmoid for probabilities)."""
    sizes, activations = suited_to(loss, WIDTHS[: depth + 1], [activation] * depth)
    # weights and biases uniform in (-1, 1): nonzero biases keep pre-activations off relu's kink at 0,
    # where the derivative is a convention and finite differences are one-sided
    generator = torch.Generator().manual_seed(depth)
    shapes = list(zip(sizes[1:], sizes[:-1], strict=True))
    weights = [
        torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1 for shape in shapes
    ]
    biases = [
        torch.rand(out, generator=generator, dtype=torch.float64) * 2 - 1 for out, _ in shapes
    ]
    return MLPSpec(sizes, activations, loss=loss, weights=weights, biases=biases, dtype=dtype)


CASES = list(itertools.product(ACTIVATIONS, LOSSES, [1, 2, 3, 4]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize(("activation", "loss", "depth"), CASES[::2] + CASES[1::2])
def test_hand_written_gradients_equal_autograd(activation, loss, depth, batch, dtype):
    spec = spec_for(activation, loss, depth, dtype)
    x, y = make_data(spec, batch, seed=batch)
    manual = ManualMLP(spec)
    loss_manual, grads_manual = manual.loss_and_grads(x, y)
    loss_autograd, grads_autograd = AutogradMLP(spec).loss_and_grads(x, y)

    assert torch.allclose(loss_manual, loss_autograd, rtol=TOLERANCES[dtype], atol=0)
    assert list(grads_manual) == list(grads_autograd)
    for name in grads_manual:
        assert grads_manual[name].shape == grads_autograd[name].shape
        assert rel_diff(grads_manual[name], grads_autograd[name]) <= TOLERANCES[dtype], name


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_both_models_equal_finite_differences_in_float64(activation, loss, depth, batch):
    spec = spec_for(activation, loss, depth, torch.float64)
    x, y = make_data(spec, batch, seed=10 + batch)
    _, grads_manual = ManualMLP(spec).loss_and_grads(x, y)
    _, grads_autograd = AutogradMLP(spec).loss_and_grads(x, y)
    numeric = finite_difference_grads(spec, spec.initial_parameters(), x, y)
    for name, expected in numeric.items():
        # central differences with h = 1e-6 are exact to about 1e-9 relative in float64
        assert rel_diff(grads_manual[name], expected) < FINITE_DIFFERENCE_TOLERANCE, name
        assert rel_diff(grads_autograd[name], expected) < FINITE_DIFFERENCE_TOLERANCE, name


def test_a_wrong_derivative_is_caught(monkeypatch):
    """The comparison can fail: a sigmoid derivative off by a factor of 2 is far outside tolerance."""
    from dataclasses import replace

    from bpdemo import functional

    broken = replace(
        functional.ACTIVATIONS["sigmoid"], backward=lambda g, z, a, out=None: 2 * g * a * (1 - a)
    )
    monkeypatch.setitem(functional.ACTIVATIONS, "sigmoid", broken)
    spec = spec_for("sigmoid", "mse", 2, torch.float64)
    x, y = make_data(spec, 4)
    _, grads_manual = ManualMLP(spec).loss_and_grads(x, y)
    _, grads_autograd = AutogradMLP(spec).loss_and_grads(x, y)
    assert rel_diff(grads_manual["layers.0.weight"], grads_autograd["layers.0.weight"]) > 0.1


def test_softmax_cross_entropy_gradient_at_the_logits_is_p_minus_onehot_over_n():
    """Worked by hand: logits (0, ln 2) give p = (1/3, 2/3); label 0, N = 1 -> (-2/3, 2/3)."""
    from bpdemo.functional import cross_entropy

    logits = torch.tensor([[0.0, torch.log(torch.tensor(2.0))]], dtype=torch.float64)
    labels = torch.tensor([0])
    value, gradient = cross_entropy(logits, labels)
    assert value.item() == pytest.approx(torch.log(torch.tensor(3.0)).item())
    expected = torch.tensor([[-2 / 3, 2 / 3]], dtype=torch.float64)
    assert torch.allclose(gradient, expected, atol=1e-15)


def test_the_3_2_1_example_by_hand():
    """Linear 3-2-1 network, half squared error: every gradient worked out by hand.

    x = (1, 2, 3); W1 = [[0.5, 0.1, 0.2], [0.5, 0.2, 0.1]], b1 = (0.2, 0.2); W2 = [[0.3, 0.3]],
    b2 = 0.1. Hidden h = (0.5 + 0.2 + 0.6 + 0.2, 0.5 + 0.4 + 0.3 + 0.2) = (1.5, 1.4);
    output 0.3 * 1.5 + 0.3 * 1.4 + 0.1 = 0.97; L = 1/2 (0.97 - 4)^2 = 4.59045;
    dL/dy = -3.03; dL/dW2 = -3.03 * h = (-4.545, -4.242); dL/db2 = -3.03;
    delta1 = -3.03 * 0.3 = -0.909 each; dL/dW1 = delta1 x^T; dL/db1 = delta1.
    """
    spec = MLPSpec(
        [3, 2, 1],
        ["identity", "identity"],
        loss="half_sse",
        weights=[[[0.5, 0.1, 0.2], [0.5, 0.2, 0.1]], [[0.3, 0.3]]],
        biases=[[0.2, 0.2], [0.1]],
        dtype=torch.float64,
    )
    model = ManualMLP(spec)
    x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    loss, grads = model.loss_and_grads(x, torch.tensor([[4.0]], dtype=torch.float64))
    assert model.layers[0].output[0].tolist() == pytest.approx([1.5, 1.4])
    assert loss.item() == pytest.approx(4.59045)
    assert grads["layers.1.weight"][0].tolist() == pytest.approx([-4.545, -4.242])
    assert grads["layers.1.bias"].tolist() == pytest.approx([-3.03])
    for row in grads["layers.0.weight"]:
        assert row.tolist() == pytest.approx([-0.909, -1.818, -2.727])
    assert grads["layers.0.bias"].tolist() == pytest.approx([-0.909, -0.909])
