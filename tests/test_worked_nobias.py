"""A network without biases (`[network] bias = false`), as many books draw one: no bias parameter in
either model, nothing about biases in the text or the pictures, numbers as a hand computation."""

import pytest
import torch
from conftest import D3, D4, D5, LOSS, TEXTBOOK, X1, X2, Y3, Y4, Y5
from matplotlib.text import Text

from bpdemo.autograd_mlp import AutogradMLP
from bpdemo.functional import ACTIVATIONS
from bpdemo.infra.errors import ConfigError
from bpdemo.manual import Linear, ManualMLP
from bpdemo.worked import PHASES, WorkedExample, load, picture_state, run

NO_BIAS = 'title = "2-2-1 without biases"\n' + TEXTBOOK


def hand_step() -> dict[str, float]:
    """One step of the 2-2-1 network above, by hand (conftest): E = ½(y5 − t)², δ = ∂E/∂z."""
    return {
        "y3": Y3, "y4": Y4, "y5": Y5, "loss": LOSS, "d5": D5, "d3": D3, "d4": D4,
        "w35": 0.3 - D5 * Y3, "w45": 0.9 - D5 * Y4,
        "w13": 0.1 - D3 * X1, "w23": 0.8 - D3 * X2, "w14": 0.4 - D4 * X1, "w24": 0.6 - D4 * X2,
    }  # fmt: skip


def test_neither_model_has_a_bias_parameter():
    example = WorkedExample.from_config(load(NO_BIAS))
    for model in (ManualMLP(example.spec), AutogradMLP(example.spec)):
        names = list(model.state_dict())
        assert names == ["layers.0.weight", "layers.1.weight"]
    assert [name for name, _ in AutogradMLP(example.spec).named_parameters()] == [
        "layers.0.weight",
        "layers.1.weight",
    ]


def test_numbers_equal_a_hand_computation():
    step = run(NO_BIAS).run.steps[0]
    hand = hand_step()
    assert step.activations[0][0].tolist() == pytest.approx([hand["y3"], hand["y4"]], abs=1e-12)
    assert float(step.outputs[0, 0]) == pytest.approx(hand["y5"], abs=1e-12)
    assert step.loss == pytest.approx(hand["loss"], abs=1e-12)
    assert float(step.deltas[1][0, 0]) == pytest.approx(hand["d5"], abs=1e-12)
    assert step.deltas[0][0].tolist() == pytest.approx([hand["d3"], hand["d4"]], abs=1e-12)
    after = step.params_after
    assert set(after) == {"layers.0.weight", "layers.1.weight"}
    assert after["layers.1.weight"][0].tolist() == pytest.approx(
        [hand["w35"], hand["w45"]], abs=1e-12
    )
    assert after["layers.0.weight"].flatten().tolist() == pytest.approx(
        [hand["w13"], hand["w23"], hand["w14"], hand["w24"]], abs=1e-12
    )
    assert step.max_manual_autograd_diff <= 1e-12


def test_a_layer_without_bias_has_a_twin_without_one():
    weight = torch.tensor([[0.1, 0.8], [0.4, 0.6]], dtype=torch.float64)
    layer = Linear(weight, None, ACTIVATIONS["sigmoid"])
    assert layer.parameter_names == ("weight",)
    assert layer.bias is None and layer.grad_bias is None
    twin = layer.torch_module()
    assert twin.bias is None and torch.equal(twin.weight, weight)
    x = torch.tensor([[0.35, 0.9]], dtype=torch.float64)
    assert torch.allclose(twin(x), layer.forward(x))


def test_the_text_says_nothing_about_biases():
    text = run(NO_BIAS).text()
    assert "without biases" in text.splitlines()[1]  # the network line says what it is
    for word in ("bias", "b0", "b1", "∂L/∂b", "BP3"):
        assert word not in text.replace("without biases", ""), word


@pytest.mark.parametrize("phase", PHASES)
def test_the_pictures_say_nothing_about_biases(phase):
    figure = run(NO_BIAS).picture(phase=phase)
    texts = " ".join(t.get_text() for t in figure.findobj(Text))
    assert "b =" not in texts and "∂L/∂b" not in texts and "held fixed" not in texts


def test_the_numbers_drawn_hold_no_biases():
    state = picture_state(run(NO_BIAS).run, phase="update")
    assert state.biases is None and state.grad_biases is None and state.biases_after is None
    assert [w.shape for w in state.weights] == [(2, 2), (1, 2)]


def test_biases_for_a_network_without_them_are_refused():
    text = NO_BIAS.replace("[train]", "biases = [[0, 0], [0]]\n[train]")
    with pytest.raises(ConfigError, match="without biases"):
        run(text)


def test_claims_on_a_bias_that_does_not_exist_are_refused():
    text = NO_BIAS + '[[claims]]\nname = "grad.layers.0.bias[0]"\nvalue = 0\n'
    with pytest.raises(ConfigError, match="no biases"):
        run(text)


def test_a_biased_network_without_biases_given_says_what_it_gets():
    text = run(NO_BIAS.replace("bias = false", "")).text()
    lines = [line for line in text.splitlines() if "[init] gives none" in line]
    assert len(lines) == 1
    assert "starts at 0 and is trained" in lines[0] and "network.bias = false" in lines[0]
    held = run(
        NO_BIAS.replace("bias = false", "").replace("lr = 1.0", "lr = 1.0\ntrain_biases = false")
    )
    assert "held fixed" in next(
        line for line in held.text().splitlines() if "[init] gives none" in line
    )
    given = NO_BIAS.replace("bias = false", "").replace(
        "[train]", "biases = [[0, 0], [0]]\n[train]"
    )
    assert "[init] gives none" not in run(given).text()
