"""Hand-written optimizers follow torch.optim's trajectory step for step."""

import re

import pytest
import torch

from bpdemo import TOLERANCES, MLPSpec, OptimizerSpec, SideBySide, clip_grad_norm
from bpdemo.infra.errors import ConfigError
from tests.conftest import make_data

SETTINGS = {
    "sgd": OptimizerSpec(name="sgd", lr=0.1),
    "momentum": OptimizerSpec(name="sgd", lr=0.05, momentum=0.9),
    "nesterov": OptimizerSpec(name="sgd", lr=0.05, momentum=0.9, nesterov=True),
    "sgd+weight_decay": OptimizerSpec(name="sgd", lr=0.05, momentum=0.5, weight_decay=0.01),
    "adam": OptimizerSpec(name="adam", lr=0.01),
    "adam+weight_decay": OptimizerSpec(name="adam", lr=0.01, betas=(0.8, 0.99), weight_decay=0.05),
}


def train_side_by_side(optimizer: OptimizerSpec, dtype: torch.dtype, steps: int = 60) -> SideBySide:
    spec = MLPSpec([4, 6, 5, 2], ["tanh", "sigmoid", "identity"], loss="mse", seed=3, dtype=dtype)
    pair = SideBySide(spec, optimizer)
    for step in range(steps):
        x, y = make_data(spec, batch=8, seed=step)
        pair.step(x, y)
    return pair


@pytest.mark.parametrize("name", list(SETTINGS))
def test_hand_written_optimizer_follows_torch_optim_for_60_steps_float64(name):
    pair = train_side_by_side(SETTINGS[name], torch.float64)
    start = pair.spec.initial_parameters()
    moved = max(float((p - start[n]).abs().max()) for n, p in pair.manual.named_parameters())
    assert moved > 0.05  # the trajectory is long enough to mean something
    assert pair.agreement.steps_compared == 60
    assert pair.agreement.max_abs_param_diff < 1e-12
    assert pair.agreement.max_rel_grad_diff < TOLERANCES[torch.float64]


@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_hand_written_optimizer_follows_torch_optim_float32(name):
    pair = train_side_by_side(SETTINGS[name], torch.float32)
    assert pair.agreement.max_abs_param_diff < 1e-5
    assert pair.agreement.within_tolerance


def test_a_wrong_update_rule_is_caught():
    """Momentum against plain SGD: the comparison must see the trajectories part."""
    pair = train_side_by_side(SETTINGS["momentum"], torch.float64, steps=5)
    pair.torch_optimizer.param_groups[0]["momentum"] = 0.0
    x, y = make_data(pair.spec, batch=8, seed=99)
    record = pair.step(x, y)
    assert record.max_abs_param_diff > 1e-4


def test_train_biases_false_holds_biases_fixed_in_both_models():
    pair = train_side_by_side(
        OptimizerSpec(name="sgd", lr=0.1, train_biases=False), torch.float64, 5
    )
    start = pair.spec.initial_parameters()
    for model in (pair.manual, pair.autograd):
        for name, param in model.named_parameters():
            changed = not torch.equal(param.detach(), start[name])
            assert changed == name.endswith(".weight"), name


def test_clip_grad_norm_matches_torch():
    generator = torch.Generator().manual_seed(0)
    grads = [torch.randn(3, 4, generator=generator, dtype=torch.float64) * 10 for _ in range(3)]
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    norm_torch = torch.nn.utils.clip_grad_norm_(params, max_norm=1.0)
    norm_manual = clip_grad_norm(grads, max_norm=1.0)
    assert norm_manual == pytest.approx(float(norm_torch), rel=1e-14)
    assert norm_manual > 1.0
    for p, g in zip(params, grads, strict=True):
        assert torch.allclose(p.grad, g, rtol=1e-14, atol=0)
    clipped_norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))
    assert float(clipped_norm) == pytest.approx(1.0, rel=1e-5)


def test_clipping_side_by_side_agrees():
    pair = train_side_by_side(
        OptimizerSpec(name="sgd", lr=0.5, max_grad_norm=0.1), torch.float64, 20
    )
    assert pair.agreement.max_abs_param_diff < 1e-12


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"name": "rmsprop"},
            "OptimizerSpec: name: Input should be 'sgd' or 'adam' (got 'rmsprop')",
        ),
        ({"lr": 0.0}, "OptimizerSpec: lr: Input should be greater than 0 (got 0.0)"),
        ({"lr": -0.1}, "OptimizerSpec: lr: Input should be greater than 0 (got -0.1)"),
        ({"momentum": 1.5}, "OptimizerSpec: momentum: Input should be less than 1 (got 1.5)"),
        ({"nesterov": True}, "OptimizerSpec: nesterov: needs a momentum above 0 (got True)"),
    ],
)
def test_bad_optimizer_settings_are_refused_clearly(settings, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        OptimizerSpec(**settings)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_max_grad_norm_clips_in_each_optimizers_own_step(name):
    """Outside SideBySide too: `.manual(model).step()` and `.torch(model).step()` both clip first."""
    from bpdemo import AutogradMLP, ManualMLP

    spec = MLPSpec([3, 5, 2], ["tanh", "identity"], "mse", seed=3, dtype="float64")
    settings = OptimizerSpec(name, lr=0.1, max_grad_norm=1e-3)
    manual, autograd = ManualMLP(spec), AutogradMLP(spec)
    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.ones(6, 2, dtype=torch.float64) * 10  # far off: the gradient norm is far above 1e-3
    manual.loss_and_grads(x, y)
    norm_before = float(torch.linalg.vector_norm(manual.flat_grads))
    assert norm_before > 1.0
    before = manual.flat_parameters.clone()
    settings.manual(manual).step()
    autograd.loss_and_grads(x, y)
    settings.torch(autograd).step()
    # the gradients were scaled to norm 1e-3 before the update, in both models
    assert float(torch.linalg.vector_norm(manual.flat_grads)) == pytest.approx(1e-3, rel=1e-5)
    clipped = torch.cat([p.grad.reshape(-1) for p in autograd.parameters()])
    assert float(torch.linalg.vector_norm(clipped)) == pytest.approx(1e-3, rel=1e-5)
    if name == "sgd":  # one step of lr * g moves the weights by lr * 1e-3 in norm, no more
        moved = float(torch.linalg.vector_norm(manual.flat_parameters - before))
        assert moved == pytest.approx(0.1 * 1e-3, rel=1e-5)
    for (n, p_m), (_, p_a) in zip(
        manual.named_parameters(), autograd.named_parameters(), strict=True
    ):
        torch.testing.assert_close(p_m, p_a.detach(), rtol=1e-12, atol=1e-15, msg=n)
