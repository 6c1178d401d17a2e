"""A worked example's verdict answers one question at every step: does the hand-written step compute
what autograd computes from the same parameters?

The autograd twin takes each step from the hand-written model's own parameters, so a mistake shows
at the step where it matters, and only there, and rounding cannot build up over a run.
"""

import dataclasses
import json

import pytest
import torch

from bpdemo.functional import ACTIVATIONS
from bpdemo.optim import MANUAL_OPTIMIZERS, SGD
from bpdemo.worked import run

# One input, one relu neuron, one output; lr 2 sends the relu neuron below 0 after step 1:
# step 1: z0 = 1·1 + 0 = 1 > 0, ŷ = 1, ∂L/∂ŷ = 1, every gradient 1, so W0, b0, W1, b1 = -1, -2, -1, -2
# step 2: z0 = -1·1 − 2 = -3 < 0, so relu'(z0) = 0 and layers.0's gradients are 0
DEAD_AT_STEP_2 = {
    "network": {"sizes": [1, 1, 1], "activations": ["relu", "identity"]},
    "init": {"weights": [[[1.0]], [[1.0]]]},
    "train": {"lr": 2.0, "steps": 3},
    "data": {"inputs": [[1.0]], "targets": [[0.0]]},
}


def leaky_everywhere(grad_a, z, a, out=None):
    """A wrong relu backward: it passes the gradient where z < 0 too, as if relu'(z) were 1."""
    return grad_a.clone()


def test_the_relu_example_is_computed_as_by_hand():
    steps = run(DEAD_AT_STEP_2).run.steps
    assert steps[0].params_after["layers.0.weight"].item() == -1.0
    assert steps[0].params_after["layers.1.bias"].item() == -2.0
    assert steps[1].pre_activations[0].item() == -3.0
    assert steps[1].grads["layers.0.weight"].item() == 0.0
    assert all(step.max_manual_autograd_diff == 0.0 for step in steps)


def test_a_wrong_backward_fails_the_verdict_at_the_first_step_where_it_matters(monkeypatch):
    wrong = dataclasses.replace(ACTIVATIONS["relu"], backward=leaky_everywhere)
    monkeypatch.setitem(ACTIVATIONS, "relu", wrong)
    result = run(DEAD_AT_STEP_2)
    differences = [step.max_manual_autograd_diff for step in result.run.steps]
    assert differences[0] == 0.0  # z > 0: the mistake plays no part
    assert differences[1] > 0.5  # z < 0: layers.0's gradient is 2 by hand, 0 by autograd
    text = result.text()
    assert "at step 1: max relative difference 0.0e+00" in text and "(within 1e-10)" in text
    assert "at step 2: max relative difference" in text and "(OUTSIDE 1e-10)" in text
    assert not result.metrics()["agreement"]["raw inputs"]["within_tolerance"]


class SlipOnce(SGD):
    """Plain gradient descent that adds 0.001 to every parameter at its first step, and only then."""

    def update(self, param, grad, state):
        super().update(param, grad, state)
        if self.step_count == 1:
            param.add_(1e-3)


def test_a_slip_in_one_update_is_flagged_at_that_step_only(monkeypatch, tmp_path):
    monkeypatch.setitem(MANUAL_OPTIMIZERS, "sgd", SlipOnce)
    config = {**DEAD_AT_STEP_2, "train": {"lr": 0.1, "steps": 3}}
    result = run(config)
    differences = [step.max_manual_autograd_diff for step in result.run.steps]
    assert differences[0] > 1e-4  # the slipped update, against torch.optim's from the same start
    # each later step is judged from the hand-written model's own parameters: its step is right
    assert differences[1:] == [0.0, 0.0]
    assert result.run.final_diff == 0.0


def test_trace_json_and_steps_csv_hold_the_difference_from_the_same_parameters(
    monkeypatch, tmp_path
):
    from bpdemo.infra.cli import run_main
    from demos.worked_example import main

    monkeypatch.setitem(MANUAL_OPTIMIZERS, "sgd", SlipOnce)
    config = tmp_path / "relu.toml"
    config.write_text(
        "[network]\nsizes = [1, 1, 1]\nactivations = ['relu', 'identity']\n"
        "[init]\nweights = [[[1.0]], [[1.0]]]\n[train]\nlr = 0.1\nsteps = 3\n"
        "[data]\ninputs = [[1.0]]\ntargets = [[0.0]]\n"
    )
    out = tmp_path / "run"
    assert run_main(main, ["--config", str(config), "--out", str(out), "--quiet"]) == 0
    trace = json.loads((out / "trace.json").read_text())
    per_step = [s["max_manual_autograd_diff"] for s in trace["steps"]]
    assert per_step[0] > 1e-4 and per_step[1:] == [0.0, 0.0]
    rows = (out / "steps.csv").read_text().splitlines()
    assert rows[0].split(",")[:4] == ["variant", "step", "loss", "max_manual_autograd_diff"]
    assert [float(row.split(",")[3]) for row in rows[1:]] == per_step


def test_each_step_keeps_autograds_numbers_from_the_hand_written_parameters():
    result = run(DEAD_AT_STEP_2)
    for step in result.run.steps:
        # autograd by hand in this test, from the step's parameters before the update
        w0, b0, w1, b1 = (
            step.params_before[name].clone().requires_grad_()
            for name in ("layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias")
        )
        x = torch.tensor([[1.0]], dtype=torch.float64)
        z0 = x @ w0.T + b0
        out = torch.relu(z0) @ w1.T + b1
        loss = 0.5 * out.square().sum()
        loss.backward()
        twin = step.autograd
        assert twin.loss == pytest.approx(float(loss.detach()), abs=0)
        assert twin.pre_activations[0].item() == z0.item()
        assert twin.grads["layers.0.weight"].item() == w0.grad.item()
        assert twin.params_after["layers.1.bias"].item() == pytest.approx(
            (b1 - 2.0 * b1.grad).item(), abs=0
        )
