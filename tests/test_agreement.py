"""The agreement measure: gradient differences relative to the terms each gradient adds up; the check
at the same parameters, and the drift of two runs, each trained on its own."""

import pytest
import torch

from bpdemo import TOLERANCES, MLPSpec, NetworkSpec, OptimizerSpec, SideBySide, rel_diff, twin_of
from bpdemo.agreement import max_abs_diff, relative_to, summand_scales
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
    # |g|, float32 rounding alone then looks much larger than it is. (softplus: its
    # hand-written backward rounds differently from torch's kernel; tanh's and sigmoid's do not.)
    spec = MLPSpec([2, 8, 1], ["softplus", "identity"], loss="mse", seed=0, dtype="float32")
    pair = SideBySide(spec, OptimizerSpec("adam", lr=0.01))
    x, y = make_data(spec, batch=64, seed=4)
    against_g = 0.0
    for _ in range(400):
        record = pair.step(x, y)  # its differences are at the same weights
        for name, grad in pair.manual.named_grads():
            against_g = max(against_g, record.grad_abs_diff[name] / float(grad.abs().max()))
    # what dividing by |g| reports: rounding alone, magnified a hundredfold by the cancelling terms
    assert against_g > 50 * pair.agreement.max_rel_grad_diff
    assert pair.agreement.within_tolerance, pair.agreement.as_dict()
    assert pair.agreement.max_rel_grad_diff < 1e-5
    assert pair.agreement.max_abs_grad_diff < 1e-5


# -- two questions: the check at the same parameters, and the drift of the two runs ---------------
CHAOTIC = MLPSpec(  # weights so large that training amplifies any difference between two runs
    [4, 16, 16, 16, 3],
    ["tanh", "tanh", "tanh", "identity"],
    loss="cross_entropy",
    init="normal",
    init_scale=2.0,
    seed=0,
    dtype="float64",
)


def batches(spec, count: int, rows: int = 16):
    for step in range(count):
        yield make_data(spec, batch=rows, seed=step)


def test_two_runs_that_drift_apart_still_pass_the_check_at_every_step():
    pair = SideBySide(CHAOTIC, OptimizerSpec("sgd", lr=0.5))
    records = [pair.step(x, y) for x, y in batches(CHAOTIC, 20)]
    tolerance = TOLERANCES[torch.float64]
    drift = pair.agreement.drift
    assert drift.past_tolerance_at_step is not None  # the runs parted well beyond rounding
    assert max(r.drift_max_rel_grad_diff for r in records) > 1e3 * tolerance
    assert all(record.max_rel_grad_diff <= tolerance for record in records)
    assert pair.agreement.within_tolerance and pair.agreement.outside_from_step is None


def test_the_check_is_autograd_at_the_hand_written_parameters():
    pair = SideBySide(CHAOTIC, OptimizerSpec("sgd", lr=0.5))
    for x, y in batches(CHAOTIC, 10):
        pair.step(x, y)
    assert not pair.runs_identical()
    x, y = make_data(CHAOTIC, batch=16, seed=99)
    independent = twin_of(pair.manual)  # built here, from the hand-written weights as they are now
    _, expected = independent.loss_and_grads(x, y)
    record = pair.step(x, y)
    for name, grad in pair.manual.named_grads():
        assert record.grad_abs_diff[name] == max_abs_diff(grad, expected[name])
        assert record.drift_grad_abs_diff[name] != record.grad_abs_diff[name]


def test_identical_runs_answer_both_questions_with_one_autograd_pass():
    spec = MLPSpec([3, 8, 1], ["relu", "identity"], loss="mse", seed=0, dtype="float32")
    pair = SideBySide(spec, OptimizerSpec("adam", lr=0.01))
    records = [pair.step(x, y) for x, y in batches(spec, 20)]
    assert all(record.same_parameters for record in records)
    assert pair.reference is None  # never needed: the autograd run's gradient is the one
    assert pair.agreement.drift.parted_at_step is None
    assert all(r.drift_grad_rel_diff == r.grad_rel_diff for r in records)


def subtly_wrong_backward(layer):
    """`Linear.backward` with tanh' = 1 - a² taken from a rounded to float32: off by about 1e-8."""

    def backward(grad_output, input_grad=True):
        rounded = layer.output.to(torch.float32).to(layer.output.dtype)
        layer.grad_output = grad_output
        layer.delta = grad_output * (1 - rounded**2)
        torch.mm(layer.delta.t(), layer.input, out=layer.grad_weight)
        torch.sum(layer.delta, dim=0, out=layer.grad_bias)
        return layer.delta @ layer.weight if input_grad else None

    return backward


def test_a_subtly_wrong_backward_fails_the_check_at_step_1_and_after():
    pair = SideBySide(CHAOTIC, OptimizerSpec("sgd", lr=0.01))
    layer = pair.manual.layers[1]
    layer.backward = subtly_wrong_backward(layer)
    records = [pair.step(x, y) for x, y in batches(CHAOTIC, 5)]
    assert pair.agreement.outside_from_step == 1 and not pair.agreement.within_tolerance
    tolerance = TOLERANCES[torch.float64]
    assert all(tolerance < record.max_rel_grad_diff < 1e-4 for record in records)  # subtle
    assert not records[-1].same_parameters  # checked at the hand-written parameters after it


def test_a_perturbed_autograd_run_is_drift_not_a_failed_check_with_dropout_and_batchnorm():
    spec = NetworkSpec(
        6,
        [
            {"type": "linear", "units": 12},
            {"type": "batchnorm"},
            {"type": "activation", "name": "tanh"},
            {"type": "dropout", "p": 0.3},
            {"type": "linear", "units": 3},
        ],
        loss="cross_entropy",
        seed=2,
        dtype="float64",
    )
    pair = SideBySide(spec, OptimizerSpec("adam", lr=0.01))
    with torch.no_grad():  # the autograd run starts 1e-6 away: it drifts from step 1
        next(pair.autograd.parameters()).add_(1e-6)
    generator = torch.Generator().manual_seed(0)
    records = []
    for _ in range(6):
        x = torch.randn(16, 6, dtype=torch.float64, generator=generator)
        records.append(pair.step(x, torch.randint(0, 3, (16,), generator=generator)))
    assert pair.agreement.drift.parted_at_step == 1
    assert pair.agreement.drift.past_tolerance_at_step == 1
    # the reference drew the hand-written model's dropout masks and batch statistics
    assert all(record.max_rel_grad_diff <= TOLERANCES[torch.float64] for record in records)


def test_the_agreement_of_metrics_json_says_which_question_each_number_answers():
    pair = SideBySide(CHAOTIC, OptimizerSpec("sgd", lr=0.5))
    for x, y in batches(CHAOTIC, 20):
        pair.step(x, y)
    block = pair.agreement.as_dict()
    drift = block["drift"]
    assert block["within_tolerance"] and block["max_rel_grad_diff"] <= block["tolerance"]
    assert block["max_abs_param_diff"] == drift["max_abs_param_diff"] > 0
    assert drift["max_rel_grad_diff"] > block["tolerance"]
    assert drift["parted_at_step"] <= drift["past_tolerance_at_step"]
    row = pair.step(*make_data(CHAOTIC, batch=16, seed=20)).row()
    assert {"drift_max_rel_grad_diff", "drift_max_abs_grad_diff", "same_parameters"} <= set(row)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softplus_is_torchs_value_bit_for_bit(dtype):
    # one unit in the last place of a hidden value can move a float32 sigmoid output saturated
    # within a unit of 1 to 1 itself, and a whole sample's gradient with it
    from bpdemo.functional import ACTIVATIONS

    z = torch.linspace(-30, 30, 1001, dtype=dtype)
    expected = ACTIVATIONS["softplus"].torch_fn(z)
    assert torch.equal(ACTIVATIONS["softplus"].forward(z), expected)
    out = torch.empty_like(z)
    assert ACTIVATIONS["softplus"].forward(z, out=out) is out and torch.equal(out, expected)


def test_tanh_backward_is_torchs_bit_for_bit_where_it_saturates():
    # 1 - a² near a = ±1: rounding a² first would lose the digits of the difference, and a deep
    # saturated network would then show a gradient difference at the same weights beyond 1e-10
    from bpdemo.functional import ACTIVATIONS

    z = torch.linspace(-19, 19, 1001, dtype=torch.float64)
    grad_a = torch.cos(z)
    leaf = z.clone().requires_grad_()
    torch.tanh(leaf).backward(grad_a)
    delta = ACTIVATIONS["tanh"].backward(grad_a, z, torch.tanh(z))
    assert torch.equal(delta, leaf.grad)


def test_the_demos_agreement_lines_say_the_check_then_the_drift_and_why_runs_drift():
    from bpdemo.report import agreement_line

    pair = SideBySide(CHAOTIC, OptimizerSpec("sgd", lr=0.5))
    for x, y in batches(CHAOTIC, 20):
        pair.step(x, y)
    check, drift, why = agreement_line(pair).splitlines()
    assert "each step at the hand-written model's parameters" in check
    assert "(within tolerance 1e-10)" in check
    assert "drift, not a check" in drift and "OUTSIDE" not in drift
    assert f"above 1e-10 from step {pair.agreement.drift.past_tolerance_at_step}" in drift
    assert why.strip().startswith("two runs drift apart because each keeps its own rounding")


def test_a_failed_check_says_outside_and_the_step_it_began():
    from bpdemo.report import agreement_line

    pair = SideBySide(CHAOTIC, OptimizerSpec("sgd", lr=0.01))
    layer = pair.manual.layers[1]
    layer.backward = subtly_wrong_backward(layer)
    for x, y in batches(CHAOTIC, 3):
        pair.step(x, y)
    assert "(OUTSIDE tolerance 1e-10 from step 1)" in agreement_line(pair).splitlines()[0]
