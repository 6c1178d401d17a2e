"""The agreement measure: gradient differences relative to the terms each gradient adds up."""

import torch

from bpdemo import MLPSpec, OptimizerSpec, SideBySide, rel_diff
from bpdemo.agreement import relative_to, summand_scales
from tests.conftest import make_data


def test_the_scale_is_the_sum_of_absolute_terms_worked_out_row_by_row():
    spec = MLPSpec([3, 4, 2], ["tanh", "identity"], loss="mse", seed=1, dtype="float64")
    pair = SideBySide(spec, OptimizerSpec("sgd", lr=0.1))
    x, y = make_data(spec, batch=5)
    pair.gradients(x, y)
    scales = summand_scales(pair.manual)
    for i, layer in enumerate(pair.manual.layers):
        delta, a_prev = layer.delta, layer.input
        expected_w = torch.zeros_like(layer.weight)
        expected_b = torch.zeros_like(layer.bias)
        for n in range(len(x)):  # one product per row: dL/dW = sum_n delta_n^T a_prev_n
            expected_w += (delta[n].abs()[:, None]) * a_prev[n].abs()[None, :]
            expected_b += delta[n].abs()
        torch.testing.assert_close(scales[f"layers.{i}.weight"], expected_w, rtol=1e-14, atol=0)
        torch.testing.assert_close(scales[f"layers.{i}.bias"], expected_b, rtol=1e-14, atol=0)
        grads = dict(pair.manual.named_grads())
        assert (grads[f"layers.{i}.weight"].abs() <= expected_w * (1 + 1e-12)).all()


def test_cancelling_terms_do_not_pass_for_a_disagreement():
    # A bias gradient at a minimum: residuals +0.5 and -0.5 (plus a hair) cancel to about 1e-8.
    # float32 rounding of the sum then differs from the exact value by ~1e-8, which is 100 % of
    # |g| but a tiny fraction of the terms added, 1.0.
    g_exact = torch.tensor([1e-8], dtype=torch.float64)
    g_float32 = torch.tensor([0.0], dtype=torch.float64)
    scale = torch.tensor([1.0], dtype=torch.float64)
    assert rel_diff(g_float32, g_exact) == 1.0
    assert relative_to(float((g_float32 - g_exact).abs().max()), scale) == 1e-8


def test_a_wrong_gradient_is_still_far_outside_the_tolerance():
    # Halving every gradient (a lost factor 2, say) must show up at the first step.
    spec = MLPSpec([3, 5, 1], ["sigmoid", "identity"], loss="mse", seed=3, dtype="float64")
    pair = SideBySide(spec, OptimizerSpec("sgd", lr=0.1))
    x, y = make_data(spec, batch=8)
    original = pair.manual.loss_and_grads

    def halved(x, y):
        loss, grads = original(x, y)
        for grad in grads.values():
            grad.mul_(0.5)
        return loss, grads

    pair.manual.loss_and_grads = halved
    record = pair.step(x, y)
    assert record.max_rel_grad_diff > 0.05
    assert not pair.agreement.within_tolerance


def test_float32_training_near_a_minimum_stays_within_tolerance():
    # Adam near a minimum: gradient entries cancel to a tiny fraction of their terms. Measured against
    # |g| (`rel_diff`), float32 rounding alone then looks like a several-percent disagreement.
    spec = MLPSpec([2, 8, 1], ["tanh", "identity"], loss="mse", seed=0, dtype="float32")
    pair = SideBySide(spec, OptimizerSpec("adam", lr=0.01))
    x, y = make_data(spec, batch=64, seed=4)
    against_g = 0.0
    for _ in range(400):
        pair.step(x, y)
        autograd = dict(pair.autograd.named_parameters())
        for name, grad in pair.manual.named_grads():
            against_g = max(against_g, rel_diff(grad, autograd[name].grad))
    assert against_g > 1e-3  # what the old measure reported: rounding, and nothing else
    assert pair.agreement.within_tolerance, pair.agreement.as_dict()
    assert pair.agreement.max_rel_grad_diff < 1e-5
    assert pair.agreement.max_abs_grad_diff < 1e-5
