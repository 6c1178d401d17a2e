"""Bring your own derivative: registered activations and losses, the gradient check, new layers."""

import math
import textwrap

import pytest
import torch
import torch.nn.functional as F

from bpdemo import (
    ManualSequential,
    MLPSpec,
    NetworkSpec,
    OptimizerSpec,
    SideBySide,
    check_gradients,
    fit,
    register_activation,
    register_loss,
    twin_of,
)
from bpdemo.agreement import TOLERANCES
from bpdemo.functional import ACTIVATIONS, LOSSES
from bpdemo.infra.config import Section, load_config
from bpdemo.layers import ActivationLayer, BatchNorm1d, Dropout, LayerNorm
from bpdemo.manual import Linear
from bpdemo.spec import ModelSection
from tests.conftest import targets_for


def register_silu():
    # SiLU: f(z) = z σ(z), f'(z) = σ(z) (1 + z (1 - σ(z))), derived by hand
    return register_activation(
        "silu",
        forward=lambda z: z * torch.sigmoid(z),
        derivative=lambda z, a: torch.sigmoid(z) * (1 + z * (1 - torch.sigmoid(z))),
        torch_fn=F.silu,
        formula="z·σ(z)",
    )


HUBER_DELTA = 1.0


def register_huber():
    # Huber: ½ e² where |e| <= 1, |e| - ½ elsewhere, mean over every element; dL/dŷ = clamp(e, ±1)/n
    def value(output, target):
        error = output - target
        small = error.abs() <= HUBER_DELTA
        return torch.where(small, 0.5 * error**2, error.abs() - 0.5).mean()

    def gradient(output, target):
        return (output - target).clamp(-HUBER_DELTA, HUBER_DELTA) / output.numel()

    return register_loss(
        "huber", value, gradient, lambda o, t: F.huber_loss(o, t, delta=HUBER_DELTA)
    )


def regression_data(rows=48, inputs=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, inputs, generator=generator, dtype=torch.float64)
    y = (x[:, :1] * 2 - x[:, 1:2] + 0.3 * torch.randn(rows, 1, generator=generator)).double() * 2
    return x, y


# -- registering -------------------------------------------------------------------------------------
def test_a_registered_silu_and_huber_train_side_by_side_within_tolerance(registries):
    register_silu()
    register_huber()
    spec = MLPSpec([3, 8, 8, 1], ["silu", "silu", "identity"], loss="huber", dtype="float64")
    pair = SideBySide(spec, OptimizerSpec("adam", lr=0.01))
    history = fit(pair, regression_data(), epochs=5, batch_size=16, quiet=True)
    assert history.completed and len(history.steps) == 15
    assert pair.agreement.max_rel_grad_diff <= TOLERANCES[torch.float64]
    assert history.epochs[-1]["train_loss_manual"] < history.epochs[0]["train_loss_manual"]
    # the hand-written rule is what ran: the loss is the Huber loss of the outputs
    x, y = regression_data()
    output = pair.manual.forward(x)
    assert float(pair.manual.loss(output, y)) == pytest.approx(float(F.huber_loss(output, y)))


def test_registered_names_work_in_a_config(registries, tmp_path):
    register_silu()
    register_huber()

    class Config(Section):
        model: ModelSection = ModelSection()

    path = tmp_path / "model.toml"
    path.write_text(
        '[model]\nhidden = [6]\nactivation = "silu"\nloss = "huber"\ndtype = "float64"\n'
    )
    spec = load_config(Config, path).model.spec(3, 1, seed=1)
    pair = SideBySide(spec, OptimizerSpec("sgd", lr=0.05))
    fit(pair, regression_data(), epochs=3, batch_size=12, quiet=True)
    assert pair.agreement.within_tolerance and pair.agreement.steps_compared == 12


def test_an_unregistered_name_is_refused_in_a_config_with_the_valid_names(tmp_path):
    from bpdemo.infra.errors import ConfigError

    class Config(Section):
        model: ModelSection = ModelSection()

    path = tmp_path / "model.toml"
    path.write_text('[model]\nactivation = "silu"\n')
    with pytest.raises(
        ConfigError, match=r"activation: Input should be 'identity', .* \(got 'silu'\)"
    ):
        load_config(Config, path)


def test_registered_names_work_on_the_command_line_through_import(registries, tmp_path, capsys):
    from bpdemo.infra.cli import run_main
    from demos.house_prices import main

    extension = tmp_path / "my_activations.py"
    extension.write_text(
        textwrap.dedent(
            """
            import torch
            import torch.nn.functional as F
            from bpdemo import register_activation

            register_activation(
                "silu",
                forward=lambda z: z * torch.sigmoid(z),
                derivative=lambda z, a: torch.sigmoid(z) * (1 + z * (1 - torch.sigmoid(z))),
                torch_fn=F.silu,
            )
            """
        )
    )
    out = tmp_path / "run"
    status = run_main(
        main,
        ["--import", str(extension), "--set", 'model.activation="silu"', "--set", "data.houses=200",
         "--epochs", "2", "--out", str(out), "--quiet"],
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert 'activation = "silu"' in (out / "config.toml").read_text()


def test_a_wrong_derivative_is_refused_and_the_message_says_where(registries):
    with pytest.raises(
        ValueError, match=r"activation 'silu_wrong': derivative disagrees .* at z = "
    ):
        register_activation(
            "silu_wrong",
            forward=lambda z: z * torch.sigmoid(z),
            derivative=lambda z, a: torch.sigmoid(z),  # the z σ'(z) term forgotten
            torch_fn=F.silu,
        )
    assert "silu_wrong" not in ACTIVATIONS


def test_a_forward_that_is_not_its_torch_function_is_refused(registries):
    with pytest.raises(ValueError, match="forward disagrees with torch_fn at z = "):
        register_activation(
            "halfsig", lambda z: torch.sigmoid(z) / 2, lambda z, a: a, torch.sigmoid
        )


def test_a_wrong_loss_gradient_is_refused(registries):
    with pytest.raises(ValueError, match="loss 'huber2': gradient disagrees"):
        register_loss(
            "huber2",
            lambda o, t: F.huber_loss(o, t),
            lambda o, t: (o - t).clamp(-1, 1),  # the 1/n of the mean forgotten
            lambda o, t: F.huber_loss(o, t),
        )


def test_a_taken_name_is_refused(registries):
    with pytest.raises(ValueError, match="exists already"):
        register_activation("tanh", torch.tanh, lambda z, a: 1 - a * a, torch.tanh)


def test_a_registered_formula_is_written_out_with_the_neurons_numbers(registries):
    activation = register_silu()
    text = activation.value_text.format(z=0.5, a=0.3, z_factor="(-0.5)", minus_z=0.5, a_factor=0.3)
    assert text == "(-0.5)·σ((-0.5))"
    assert activation.max_slope == pytest.approx(1.0998, abs=1e-3)  # SiLU's largest slope


# -- what registration refuses --------------------------------------------------------------------
def sigmoid_of_exponentials(z, a):
    """σ(z) as e^−z / (e^−z + e^−2z): right in float64, NaN at z = −100 in float32 (inf / inf)."""
    return torch.exp(-z) / (torch.exp(-z) + torch.exp(-2 * z))


def test_registration_refuses_a_derivative_that_is_nan_at_minus_100_in_float32(registries):
    z = torch.tensor([-100.0], dtype=torch.float64)
    assert torch.isfinite(sigmoid_of_exponentials(z, None)).all()  # float64 alone would pass
    with pytest.raises(
        ValueError,
        match=r"^activation 'softplus2': derivative is nan at z = -100 \(float32\), where the "
        r"forward is finite",
    ):
        register_activation("softplus2", F.softplus, sigmoid_of_exponentials, F.softplus)
    assert "softplus2" not in ACTIVATIONS


def test_registration_checks_the_saturated_tails(registries):
    def derivative(z, a):  # σ(z), but 0 from z = 50 on: wrong only far out in the tail
        return torch.where(z < 50, torch.sigmoid(z), torch.zeros_like(z))

    with pytest.raises(ValueError, match=r"derivative disagrees with .* at z = 60"):
        register_activation("softplus2", F.softplus, derivative, F.softplus)


def test_a_torch_fn_that_autograd_cannot_differentiate_is_refused(registries):
    with pytest.raises(ValueError, match="derivative: autograd has no gradient"):
        register_activation(
            "sigmoid2",
            torch.sigmoid,
            lambda z, a: a * (1 - a),
            lambda z: torch.sigmoid(z.detach()),  # the autograd twin would learn nothing
        )


def softplus_wrong_below_zero(z, a):
    return torch.where(z < 0, 0.5 * torch.sigmoid(z), torch.sigmoid(z))


def test_a_forward_that_changes_its_input_in_place_is_refused_and_changes_no_later_check(
    registries,
):
    with pytest.raises(ValueError, match="forward\\(z\\) changed its arguments in place"):
        register_activation(
            "relu_in_place", lambda z: z.clamp_(min=0), lambda z, a: (z > 0).to(z.dtype), F.relu
        )
    # the points every check starts from are as they were: z < 0 is still checked
    with pytest.raises(ValueError, match="derivative disagrees"):
        register_activation("softplus2", F.softplus, softplus_wrong_below_zero, F.softplus)
    register_activation(
        "leaky2",
        lambda z: F.leaky_relu(z, 0.1),
        lambda z, a: torch.where(z > 0, torch.ones_like(z), torch.full_like(z, 0.1)),
        lambda z: F.leaky_relu(z, 0.1),
    )
    assert "leaky2" in ACTIVATIONS and "softplus2" not in ACTIVATIONS


@pytest.mark.parametrize(
    ("derivative", "message"),
    [
        (lambda z, a: torch.sigmoid(z)[:3], r"returned shape \(3,\), expected shape \(43,\)"),
        (lambda z, a: 0.25, "returned a float, not a tensor"),
        (lambda z, a: (z > 0).long(), "returned torch.int64 values"),
        (lambda z, a: 1 / 0, "raised ZeroDivisionError: division by zero"),
    ],
    ids=["wrong shape", "a float", "integers", "raises"],
)
def test_a_derivative_that_is_not_a_tensor_like_z_is_a_one_line_value_error(
    registries, derivative, message
):
    with pytest.raises(ValueError, match=message) as refused:
        register_activation("softplus2", F.softplus, derivative, F.softplus)
    assert "\n" not in str(refused.value)
    assert str(refused.value).startswith("activation 'softplus2': derivative(z, a) ")


def test_a_loss_whose_value_is_a_vector_is_refused(registries):
    def per_sample(output, target):  # one number a sample: not a loss
        return ((output - target) ** 2).mean(dim=1)

    with pytest.raises(ValueError, match=r"returned shape \(6,\), expected a single number"):
        register_loss("per_sample", per_sample, lambda o, t: 2 * (o - t) / o.shape[1], per_sample)
    assert "per_sample" not in LOSSES


def test_a_loss_with_targets_of_no_known_kind_is_refused(registries):
    with pytest.raises(ValueError, match="targets must be one of 'numbers', 'classes', "):
        register_loss(
            "mse2", F.mse_loss, lambda o, t: 2 * (o - t) / o.numel(), F.mse_loss, targets="bogus"
        )


def test_a_loss_text_with_an_unknown_field_is_refused(registries):
    with pytest.raises(ValueError, match=r"term_text: unknown field \{q\}; the fields are \{a\}"):
        register_loss(
            "mse2", F.mse_loss, lambda o, t: 2 * (o - t) / o.numel(), F.mse_loss, term_text="{q}"
        )


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_built_in_activation_registers_again_under_another_name(registries, name):
    built_in = ACTIVATIONS[name]
    again = register_activation(
        f"{name}_again", built_in.forward, built_in.derivative, built_in.torch_fn
    )
    assert again.max_slope == pytest.approx(built_in.max_slope, abs=1e-3)


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_built_in_loss_registers_again_under_another_name(registries, name):
    built_in = LOSSES[name]
    register_loss(
        f"{name}_again",
        built_in.value,
        built_in.gradient,
        built_in.torch_fn,
        targets=built_in.targets,
        reduction=built_in.reduction,
    )


# -- --import --------------------------------------------------------------------------------------
def import_error(tmp_path, capsys, body: str) -> tuple[int, str]:
    """The exit status and stderr of a command whose --import module runs `body`."""
    from bpdemo.infra.cli import run_main
    from demos.house_prices import main

    module = tmp_path / "broken_extension.py"
    module.write_text(body)
    status = run_main(main, ["--import", str(module), "--out", str(tmp_path / "run")])
    return status, capsys.readouterr().err


def test_an_import_that_raises_a_message_of_two_lines_is_reported_in_one(tmp_path, capsys):
    status, err = import_error(tmp_path, capsys, 'raise RuntimeError("a\\nb")\n')
    assert status == 2
    assert err.count("\n") == 1 and "broken_extension.py: RuntimeError: a b" in err


def test_an_import_that_calls_sys_exit_is_one_line_naming_the_module_and_status_2(tmp_path, capsys):
    status, err = import_error(tmp_path, capsys, "import sys\nsys.exit(3)\n")
    assert status == 2
    assert err.count("\n") == 1 and "broken_extension.py: the module called sys.exit(3)" in err
    assert not (tmp_path / "run").exists()


# -- the gradient check ----------------------------------------------------------------------------
POINTS = torch.linspace(-3, 3, 13, dtype=torch.float64) + 0.01


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_built_in_activation_passes_the_gradient_check(name):
    act = ACTIVATIONS[name]
    z = POINTS.reshape(13, 1).repeat(1, 2)
    report = check_gradients(
        act.torch_fn, z, backward=lambda upstream, z: act.backward(upstream, z, act.forward(z))
    )
    assert report.passed, str(report)
    assert {row.reference for row in report.rows} == {"finite differences", "autograd"}


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_built_in_loss_passes_the_gradient_check(name):
    loss = LOSSES[name]
    generator = torch.Generator().manual_seed(3)
    output = torch.rand(5, 3, generator=generator, dtype=torch.float64) * 0.8 + 0.1
    target = targets_for(name, 5, 3, generator)
    report = check_gradients(
        loss.torch_fn,
        (output, target),
        backward=lambda upstream, output, target: (upstream * loss.gradient(output, target), None),
        wrt=[0],  # the output only: a target is data
    )
    assert report.passed, str(report)
    assert len(report.rows) == 2


def layers_to_check():
    dtype = torch.float64
    generator = torch.Generator().manual_seed(4)
    weight = torch.randn(4, 5, generator=generator, dtype=dtype)
    bias = torch.randn(4, generator=generator, dtype=dtype)
    norm = BatchNorm1d(5, dtype=dtype)
    norm.weight.copy_(torch.randn(5, generator=generator, dtype=dtype))
    evaluating = BatchNorm1d(5, dtype=dtype)
    evaluating.running_mean.fill_(0.3)
    evaluating.running_var.fill_(2.0)
    evaluating.training = False
    layer_norm = LayerNorm(5, dtype=dtype)
    layer_norm.bias.copy_(torch.randn(5, generator=generator, dtype=dtype))
    return {
        "linear tanh": Linear(weight, bias, ACTIVATIONS["tanh"]),
        "batchnorm training": norm,
        "batchnorm evaluation": evaluating,
        "layernorm": layer_norm,
        "dropout": Dropout(0.3, seed=2),
        "activation sigmoid": ActivationLayer("sigmoid"),
    }


@pytest.mark.parametrize("which", list(layers_to_check()))
def test_every_layer_passes_the_gradient_check_and_keeps_its_state(which):
    layer = layers_to_check()[which]
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    before = {name: getattr(layer, name).clone() for name in vars(layer) if "running" in name}
    report = check_gradients(layer, x)
    assert report.passed, str(report)
    names = {row.name for row in report.rows}
    assert "input x" in names
    assert {f"parameter {p}" for p in layer.parameter_names} <= names
    for name, value in before.items():  # running statistics untouched: the passes ran on copies
        assert torch.equal(getattr(layer, name), value)


def test_a_whole_model_passes_the_gradient_check():
    spec = MLPSpec([3, 4, 2], ["tanh", "identity"], "cross_entropy", dtype="float64", seed=2)
    from bpdemo import ManualMLP

    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    report = check_gradients(ManualMLP(spec), (x, torch.tensor([0, 1, 1, 0, 1])))
    assert report.passed, str(report)
    assert len(report.rows) == 2 * 4  # 4 parameters, against finite differences and autograd


def test_a_backward_with_one_factor_dropped_fails_and_the_report_points_at_it():
    act = ACTIVATIONS["sigmoid"]
    z = POINTS.reshape(13, 1)

    def missing_a(upstream, z):  # dL/da (1 - a), the factor a dropped
        a = act.forward(z)
        return upstream * (1 - a)

    report = check_gradients(act.torch_fn, z, backward=missing_a)
    assert not report.passed
    worst = report.failures[0]
    assert worst.name == "input 0" and worst.worst_index[1] == 0
    # where the dropped factor a is smallest, the given value is furthest from the true one
    assert worst.value == pytest.approx(
        float(1 - act.forward(z)[worst.worst_index]) * float(_upstream(z)[worst.worst_index])
    )
    assert "FAIL: 13 of 13 entries; worst [" in str(report) and "FAILED" in str(report)


def _upstream(z):
    generator = torch.Generator().manual_seed(0)
    return torch.randn(z.shape, generator=generator, dtype=torch.float64)


def test_without_a_backward_autograd_is_checked_against_finite_differences():
    report = check_gradients(lambda x, y: (x * y.sin()).sum(), (POINTS, POINTS.flip(0)))
    assert report.passed and report.checked == "autograd"
    assert [row.name for row in report.rows] == ["input 0", "input 1"]


# -- new layers in a side-by-side run --------------------------------------------------------------
def digits(rows=300):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x[:rows] / 16.0, dtype=torch.float64)
    return x, torch.tensor(y[:rows], dtype=torch.long)


NETWORK = [
    {"type": "linear", "units": 32},
    {"type": "batchnorm"},
    {"type": "activation", "name": "relu"},
    {"type": "dropout", "p": 0.2},
    {"type": "linear", "units": 16, "activation": "tanh"},
    {"type": "layernorm"},
    {"type": "linear", "units": 10},
]


def test_batchnorm_and_dropout_train_side_by_side_on_digits_within_tolerance_at_every_step():
    spec = NetworkSpec(64, NETWORK, loss="cross_entropy", init="he", seed=3, dtype="float64")
    pair = SideBySide(spec, OptimizerSpec("adam", lr=0.01))
    x, y = digits()
    history = fit(pair, (x[:240], y[:240]), (x[240:], y[240:]), epochs=4, batch_size=32, quiet=True)
    assert history.completed and len(history.steps) == 4 * 8
    tolerance = TOLERANCES[torch.float64]
    assert all(record.max_rel_grad_diff <= tolerance for record in history.steps)
    # The bias of a linear layer just before a batch normalisation has no effect on the loss: its
    # gradient is 0 but for rounding (1e-17), and Adam divides by the gradient's own size, so the
    # two models move it by different amounts of about lr * 1e-17 / eps = 1e-11 a step.
    assert all(record.max_abs_param_diff < 1e-8 for record in history.steps)
    assert history.epochs[-1]["train_loss_manual"] < history.epochs[0]["train_loss_manual"] / 2
    assert sorted(dict(pair.manual.named_parameters())) == sorted(
        dict(pair.autograd.named_parameters())
    )


def test_evaluation_uses_the_running_statistics_as_torch_does():
    spec = NetworkSpec(64, NETWORK, loss="cross_entropy", seed=1, dtype="float64")
    pair = SideBySide(spec, OptimizerSpec("sgd", lr=0.1))
    x, y = digits(96)
    fit(pair, (x, y), epochs=2, batch_size=32, quiet=True)
    manual_norm, torch_norm = pair.manual.layers[1], pair.autograd.layers[1]
    torch.testing.assert_close(
        manual_norm.running_mean, torch_norm.running_mean, rtol=1e-12, atol=0
    )
    torch.testing.assert_close(manual_norm.running_var, torch_norm.running_var, rtol=1e-12, atol=0)
    evaluation = pair.evaluate(x, y)
    torch.testing.assert_close(
        evaluation.output_manual, evaluation.output_autograd, rtol=1e-12, atol=1e-13
    )
    # in evaluation the batch statistics play no part: one row alone gives the same outputs
    alone = pair.evaluate(x[:1], y[:1])
    torch.testing.assert_close(
        alone.output_manual, evaluation.output_manual[:1], rtol=1e-12, atol=1e-13
    )
    assert pair.manual.training and pair.autograd.training  # back in training mode after


def test_batchnorm_matches_torch_forward_backward_and_running_statistics():
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(8, 4, generator=generator, dtype=torch.float64) * 3 + 1
    upstream = torch.randn(8, 4, generator=generator, dtype=torch.float64)
    layer = BatchNorm1d(4, dtype=torch.float64)
    module = layer.torch_module()
    leaf = x.clone().requires_grad_(True)
    out = module(leaf)
    (out * upstream).sum().backward()
    torch.testing.assert_close(layer.forward(x), out.detach(), rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(layer.backward(upstream), leaf.grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(layer.grad_weight, module.weight.grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(layer.running_var, module.running_var, rtol=1e-14, atol=0)


def test_dropout_masks_are_shared_by_both_models_and_off_in_evaluation():
    layer, x = Dropout(0.5, seed=11), torch.ones(4, 6, dtype=torch.float64)
    twin = layer.torch_module()
    for _ in range(3):  # mask after mask, the same
        assert torch.equal(layer.forward(x), twin(x))
    kept = layer.mask != 0
    assert torch.all(layer.forward(x)[layer.mask != 0] == 2.0)  # kept units scaled by 1/(1 - p)
    assert 0 < int(kept.sum()) < x.numel()
    layer.training = False
    assert torch.equal(layer.forward(x), x) and torch.equal(layer.backward(x), x)


def test_a_layer_list_in_a_config_builds_the_same_network(tmp_path):
    class Config(Section):
        model: ModelSection = ModelSection()

    path = tmp_path / "layers.toml"
    path.write_text(
        '[model]\nloss = "cross_entropy"\ndtype = "float64"\nlayers = [\n'
        '  {type = "linear", units = 12, activation = "relu"},\n'
        '  {type = "batchnorm"},\n  {type = "dropout", p = 0.1},\n  {type = "linear"},\n]\n'
    )
    model = load_config(Config, path).model
    spec = model.spec(64, 10, seed=0)
    assert isinstance(spec, NetworkSpec) and spec.outputs == 10
    assert model.hidden_sizes == [12]
    manual = ManualSequential(spec)
    assert [type(layer).__name__ for layer in manual.layers] == [
        "Linear", "BatchNorm1d", "Dropout", "Linear",
    ]  # fmt: skip
    twin = twin_of(manual)
    x, y = digits(16)
    loss_m, grads_m = manual.loss_and_grads(x, y)
    loss_a, grads_a = twin.loss_and_grads(x, y)
    assert math.isclose(float(loss_m), float(loss_a), rel_tol=1e-12)
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_m[name], grad, rtol=TOLERANCES[torch.float64], atol=1e-14)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"type": "conv"}, {"type": "linear"}], "unknown type 'conv'"),
        ([{"type": "linear", "units": 4, "size": 3}, {"type": "linear"}], "unknown key 'size'"),
        ([{"type": "linear", "units": 5}], "has 5 units, but the data has 3 outputs"),
        ([{"type": "dropout"}, {"type": "linear"}], "'p' is missing"),
        ([{"type": "dropout", "p": 1.5}, {"type": "linear"}], r"p must be in \[0, 1\)"),
        ([{"type": "batchnorm"}], "the last linear layer makes the outputs"),
    ],
)
def test_bad_layer_lists_are_refused_with_one_line(entries, message):
    from bpdemo.infra.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        ModelSection(layers=entries).spec(4, 3, seed=0)


def test_a_network_with_batchnorm_and_dropout_passes_the_whole_model_gradient_check():
    spec = NetworkSpec(64, NETWORK, loss="cross_entropy", seed=5, dtype="float64")
    small = NetworkSpec(
        6,
        [
            {"type": "linear", "units": 5, "activation": "tanh"},
            *NETWORK[1:4],
            {"type": "linear", "units": 3},
        ],
        loss="cross_entropy",
        seed=5,
        dtype="float64",
    )
    assert spec.outputs == 10
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model = ManualSequential(small)
    report = check_gradients(model, (x, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])))
    assert report.passed, str(report)
    assert model.layers[1].running_mean.abs().sum() == 0  # the check ran on copies


def test_the_image_demo_trains_a_layer_list_from_the_command_line(tmp_path):
    import json

    from bpdemo.infra.cli import run_main
    from demos.images import main

    layers = (
        'model.layers=[{type="linear", units=24}, {type="batchnorm"}, '
        '{type="activation", name="relu"}, {type="dropout", p=0.2}, {type="linear"}]'
    )
    out = tmp_path / "run"
    status = run_main(main, ["--set", layers, "--epochs", "2", "--out", str(out), "--quiet"])
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["agreement"]["within_tolerance"]
    assert metrics["predictions"]["same_test_predictions"] == metrics["predictions"]["test_images"]
    assert metrics["walkthrough"]["max_model_difference"] < 1e-12


def test_a_worked_example_writes_out_a_registered_activation_with_its_formula(registries):
    from bpdemo.worked import run

    register_silu()
    config = {
        "network": {"sizes": [2, 2, 1], "activations": ["silu", "identity"]},
        "init": {"weights": [[[0.5, -1.0], [0.25, 0.5]], [[1.0, -2.0]]]},
        "data": {"inputs": [[1.0, 2.0]], "targets": [[1.0]]},
    }
    result = run(config)
    text = result.text()
    # z[0] = 0.5·1 + (-1)·2 + 0 = -1.5: silu's formula with the neuron's own z
    assert "a = (-1.5)·σ((-1.5)) = " in text
    assert result.metrics()["agreement"]["raw inputs"]["within_tolerance"]


def test_the_worked_example_takes_import_too(registries, tmp_path, capsys):
    from bpdemo.infra.cli import run_main
    from demos.worked_example import main

    extension = tmp_path / "silu_activation.py"
    extension.write_text(
        "import torch\nimport torch.nn.functional as F\nfrom bpdemo import register_activation\n"
        "register_activation('silu', lambda z: z * torch.sigmoid(z), lambda z, a: torch.sigmoid(z)"
        " * (1 + z * (1 - torch.sigmoid(z))), F.silu, formula='z·σ(z)')\n"
    )
    argv = ["--import", str(extension), "--set", 'network.activations=["silu", "identity"]']
    assert run_main(main, [*argv, "--out", str(tmp_path / "run")]) == 0
    assert "a = 0.9·σ(0.9) = 0.639855" in capsys.readouterr().out
