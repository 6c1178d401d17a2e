"""The gradient check passes only on what it compared, and says plainly what it could not compare."""

import math

import pytest
import torch
import torch.nn.functional as F

from bpdemo import check_gradients
from bpdemo.layers import LayerNorm

X = torch.linspace(-2.0, 2.0, 7, dtype=torch.float64).reshape(7, 1) + 0.01
W = torch.tensor([0.5, -1.5], dtype=torch.float64)


def swish(x, beta):  # x σ(β x), with a learnable β
    return x * torch.sigmoid(beta * x)


def swish_backward(upstream, x, beta):
    """Both gradients of swish, worked by hand: d/dx = s + β x s (1 - s), d/dβ = x² s (1 - s)."""
    s = torch.sigmoid(beta * x)
    return upstream * (s + beta * x * s * (1 - s)), (upstream * x * x * s * (1 - s)).sum()


BETA = torch.tensor(1.3, dtype=torch.float64)


def test_the_hand_worked_swish_backward_passes():
    report = check_gradients(swish, (X, BETA), backward=swish_backward)
    assert report.passed, str(report)
    assert [row.name for row in report.rows] == ["input 0"] * 2 + ["input 1"] * 2


def test_a_backward_that_returns_none_for_a_floating_input_fails_and_names_it():
    report = check_gradients(
        swish, (X, BETA), backward=lambda up, x, b: (swish_backward(up, x, b)[0], None)
    )
    assert not report.passed
    (failure,) = report.failures
    assert failure.name == "input 1" and failure.problem == "no gradient given (None)"
    assert "input 1" in str(report) and "FAIL: no gradient given (None)" in str(report)


def test_a_backward_that_returns_fewer_gradients_than_inputs_fails_for_the_missing_one():
    report = check_gradients(
        swish, (X, BETA), backward=lambda up, x, b: swish_backward(up, x, b)[0]
    )
    assert not report.passed
    assert [(row.name, row.problem) for row in report.failures] == [
        ("input 1", "nothing returned for it")
    ]


def test_an_input_left_out_with_wrt_may_have_no_gradient():
    report = check_gradients(
        swish, (X, BETA), backward=lambda up, x, b: (swish_backward(up, x, b)[0], None), wrt=[0]
    )
    assert report.passed, str(report)
    assert {row.name for row in report.rows} == {"input 0"}


def test_a_gradient_of_the_wrong_shape_is_a_failing_row_with_both_shapes():
    report = check_gradients(torch.sin, X, backward=lambda up, x: (up * torch.cos(x)).flatten())
    assert not report.passed
    (row,) = report.rows
    assert row.problem == "shape (7,) given, (7, 1) expected"
    assert "FAIL: shape (7,) given, (7, 1) expected" in str(report)


def test_a_gradient_that_is_not_a_tensor_is_a_failing_row():
    report = check_gradients(torch.sin, X, backward=lambda up, x: 1.0)
    assert [row.problem for row in report.rows] == ["given a float, not a tensor"]


def test_a_correct_float32_backward_passes_against_finite_differences_taken_in_float64():
    x = X.float()
    report = check_gradients(torch.tanh, x, backward=lambda up, x: up * (1 - torch.tanh(x) ** 2))
    assert report.passed, str(report)
    assert {row.reference for row in report.rows} == {"finite differences", "autograd"}
    assert all(row.max_rel_diff < 1e-6 for row in report.rows)  # float32 rounding, nothing more
    assert "finite differences taken in float64" in str(report)


def test_a_float32_function_that_cannot_run_in_float64_says_why_and_compares_with_autograd():
    weight = torch.tensor([[2.0]])  # float32: x @ weight needs x in float32

    def fn(x):
        return torch.tanh(x @ weight)

    report = check_gradients(
        fn, X.float(), backward=lambda up, x: (up * (1 - fn(x) ** 2)) @ weight.T
    )
    assert report.passed, str(report)
    assert [row.reference for row in report.rows] == ["autograd"]
    assert "finite differences not taken: fn raised RuntimeError" in str(report)


def test_a_backward_off_by_a_factor_two_fails_with_every_entry_counted_and_the_ratio_shown():
    report = check_gradients(torch.sin, X, backward=lambda up, x: 2 * up * torch.cos(x))
    assert not report.passed
    for row in report.rows:
        assert (row.failing, row.entries) == (7, 7)
        assert row.ratio == pytest.approx(2.0, rel=1e-6)
        assert row.value == pytest.approx(2 * row.expected, rel=1e-6)
    assert "FAIL: 7 of 7 entries; worst [" in str(report) and "(given/expected 2)" in str(report)


def test_a_backward_with_the_wrong_sign_shows_a_ratio_of_minus_one():
    report = check_gradients(torch.sin, X, backward=lambda up, x: -up * torch.cos(x))
    assert {round(row.ratio, 6) for row in report.rows} == {-1.0}


# -- a check that compared nothing has not passed ---------------------------------------------------------
def test_a_function_autograd_cannot_reach_has_not_passed():
    report = check_gradients(lambda t: torch.sin(t.detach()), X)
    assert not report.passed and not report.rows
    assert "NOT PASSED: nothing was compared" in str(report)
    assert "not connected to the inputs" in str(report)


def test_a_function_through_argmax_has_not_passed():
    assert not check_gradients(lambda t: t.argmax(), X).passed  # an integer output
    assert not check_gradients(lambda t: t.argmax().double(), X).passed  # out of autograd's reach


@pytest.mark.parametrize(
    "inputs",
    [torch.arange(4), torch.tensor([True, False]), torch.tensor([1 + 2j, 3 - 1j])],
    ids=["int", "bool", "complex"],
)
def test_a_check_of_inputs_that_are_not_real_floating_point_has_not_passed(inputs):
    report = check_gradients(lambda t: t * 2, inputs)
    assert not report.passed
    assert report.problems


def test_a_hand_written_backward_of_a_detached_function_fails():
    report = check_gradients(
        lambda t: torch.sin(t.detach()), X, backward=lambda up, x: up * torch.cos(x)
    )
    assert not report.passed
    assert any("not connected" in problem for problem in report.problems)


# -- settings -------------------------------------------------------------------------------------------
def test_tolerance_zero_asks_for_identical_values():
    exact = check_gradients(torch.sin, X, backward=lambda up, x: up * torch.cos(x), tolerance=0)
    # autograd computes cos(x) * upstream too: identical; finite differences are 1e-10 away
    rows = {row.reference: row for row in exact.rows}
    assert rows["autograd"].passed and rows["autograd"].tolerance == 0
    assert not rows["finite differences"].passed and rows["finite differences"].tolerance == 0


@pytest.mark.parametrize("tolerance", [-1e-6, math.nan, "1e-6"])
def test_a_tolerance_that_is_negative_or_not_a_number_is_refused(tolerance):
    with pytest.raises(ValueError, match="tolerance must be a number >= 0"):
        check_gradients(torch.sin, X, tolerance=tolerance)


@pytest.mark.parametrize("step", [0, -1e-6, math.nan, math.inf])
def test_a_step_that_is_not_a_positive_number_is_refused(step):
    with pytest.raises(ValueError, match="step must be a positive number"):
        check_gradients(torch.sin, X, step=step)


def test_wrt_must_name_floating_point_inputs():
    with pytest.raises(ValueError, match="wrt: input 1 is int64, which has no gradient"):
        check_gradients(lambda x, k: x * k, (X, torch.tensor(3)), wrt=[1])


# -- zero to rounding ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_correct_layernorm_over_one_feature_passes(dtype):
    # x̂ = x - mean(x) is 0 for one feature: γ's gradient is 0 by hand, rounding (6e-14) in torch
    x = torch.randn(4, 1, generator=torch.Generator().manual_seed(0), dtype=dtype)
    report = check_gradients(LayerNorm(1, dtype=dtype), x)
    assert report.passed, str(report)


def test_a_small_gradient_that_is_wrong_still_fails_beside_the_zero_floor():
    # the gradient of 1e-3 sin(x) is 1e-3 cos(x), well above the floor: a 1 % error fails
    report = check_gradients(
        lambda x: 1e-3 * torch.sin(x), X, backward=lambda up, x: 1.01e-3 * up * torch.cos(x)
    )
    assert not report.passed and all(row.ratio == pytest.approx(1.01) for row in report.rows)


def test_a_function_that_changes_its_input_in_place_is_checked_on_fresh_copies():
    def doubling_sin(x):  # changes x in place, then sin(2x): dL/dx = 2 cos(2x)
        return torch.sin(x.mul_(2))

    report = check_gradients(doubling_sin, X, backward=lambda up, x: 2 * up * torch.cos(2 * x))
    assert report.passed, str(report)


def test_layer_norm_by_autograd_alone_passes_where_its_gradient_is_rounding():
    weight = torch.ones(1, dtype=torch.float64)
    report = check_gradients(lambda t, w: F.layer_norm(t, (1,), weight=w), (X, weight))
    assert report.passed, str(report)


def test_a_layer_and_an_input_of_different_dtypes_are_refused_in_one_line():
    with pytest.raises(ValueError, match="x is float64 but the layer's parameters are float32"):
        check_gradients(LayerNorm(1), X)
