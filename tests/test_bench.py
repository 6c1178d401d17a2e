"""The benchmark runs and writes its keys, and measures what it says; the fast path's pieces compute
what the plain rules and autograd compute.

No test here asserts a timing: the benchmark's goals are measured and reported, not tested.
"""

import json
import math

import pytest
import torch

import bpdemo.bench.__main__ as bench_cli
from bpdemo import TOLERANCES, AutogradMLP, ManualMLP, MLPSpec
from bpdemo.bench import QUICK, Settings, end_to_end
from bpdemo.bench.steps import Case, _profiled_peak, cache_bytes, matmul_products, scratch_bytes
from bpdemo.functional import ACTIVATIONS, LOSSES
from bpdemo.infra.cli import run_main
from tests.conftest import one_line, run_cli, targets_for

# --quick takes about 20 s here; the test runs the same code on fewer repeats and points.
SMOKE = Settings(
    quick=True,
    repeats=1,
    min_block_seconds=0.001,
    batch_sizes=(1, 8),
    widths=(8, 16),
    race_repeats=1,
    max_epochs=3,
    sklearn_max_iter=5,
    memory_steps=2,
)


def positive(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def finite_positive(value) -> bool:
    return positive(value) and math.isfinite(value)


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """One smoke run of `python -m bpdemo.bench --quick` into a fresh folder, without Ames."""
    out = tmp_path_factory.mktemp("bench") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench_cli, "QUICK", SMOKE)
        patch.delenv(end_to_end.AMES_ENV, raising=False)
        status = run_main(bench_cli.main, ["--quick", "--quiet", "--out", str(out)])
    assert status == 0
    return out, json.loads((out / "bench.json").read_text())


def test_the_smoke_settings_are_a_smaller_quick():
    assert SMOKE.quick and QUICK.quick
    assert SMOKE.repeats <= QUICK.repeats and SMOKE.max_epochs <= QUICK.max_epochs


def test_bench_json_has_the_machine_torch_version_and_thread_count(bench_run):
    _, results = bench_run
    assert results["torch_version"] == torch.__version__
    assert results["threads"] == 1  # the default, --threads 1
    assert {"cpu", "cores", "platform", "torch_threads"} <= set(results["machine"])
    assert results["quick"] is True


def test_step_time_lists_the_four_networks_with_positive_times_and_finite_ratios(bench_run):
    _, results = bench_run
    rows = results["step_time"]
    assert [row["name"] for row in rows] == ["tiny", "small", "medium", "large"]
    assert [row["sizes"] for row in rows] == [
        [3, 2, 1],
        [64, 32, 10],
        [784, 256, 128, 10],
        [784, 512, 512, 10],
    ]
    assert [row["batch"] for row in rows] == [1, 64, 256, 4096]
    for row in rows:
        assert finite_positive(row["manual_us"]) and finite_positive(row["autograd_us"])
        assert row["ratio"] == pytest.approx(row["manual_us"] / row["autograd_us"], rel=1e-12)


def test_the_matmul_fraction_is_a_finite_positive_ratio(bench_run):
    _, results = bench_run
    assert finite_positive(results["matmul_fraction"])
    rate = results["matmul"]
    for key in ("gflop_per_step", "manual_gflops", "autograd_gflops", "matmul_gflops"):
        assert finite_positive(rate[key]), key
    assert results["matmul_fraction"] == pytest.approx(
        rate["manual_gflops"] / rate["matmul_gflops"], rel=1e-12
    )


def test_scaling_has_one_time_per_batch_size_and_width_and_a_figure(bench_run):
    out, results = bench_run
    batch, width = results["scaling"]["batch"], results["scaling"]["width"]
    assert batch["batch_sizes"] == list(SMOKE.batch_sizes)
    assert width["widths"] == list(SMOKE.widths)
    for series in (batch, width):
        points = len(series.get("batch_sizes", series.get("widths")))
        for key in ("manual_us", "autograd_us", "ratio"):
            assert len(series[key]) == points and all(map(finite_positive, series[key])), key
    assert (out / "scaling.png").stat().st_size > 10_000


def test_end_to_end_digits_has_the_three_times_and_accuracies(bench_run):
    _, results = bench_run
    digits = results["end_to_end"]["digits"]
    for key in ("manual_s", "autograd_s", "sklearn_s"):
        assert finite_positive(digits[key]), key
    for key in ("manual_acc", "sklearn_acc", "autograd_acc", "target_acc"):
        assert 0 < digits[key] <= 1, key
    assert digits["target_acc"] == digits["sklearn_acc"]
    assert 1 <= digits["sklearn_fit_epochs"] <= SMOKE.sklearn_max_iter
    for model in ("manual", "autograd", "sklearn"):
        assert 0 <= digits[f"{model}_reached"] <= digits["repeats"] == SMOKE.race_repeats
        limit = SMOKE.sklearn_max_iter if model == "sklearn" else SMOKE.max_epochs
        assert 1 <= digits[f"{model}_epochs"] <= limit
        assert len(digits["runs"][model]) == SMOKE.race_repeats
    # seed 0 of scikit-learn repeats the fit that set the target, so it reaches it
    assert digits["runs"]["sklearn"][0]["reached"]
    assert digits["train_rows"] + digits["test_rows"] == 1797


def test_ames_is_skipped_with_a_reason_naming_both_ways_to_give_it(bench_run):
    _, results = bench_run
    reason = results["end_to_end"]["ames"]["skipped"]
    assert "--ames" in reason and "BPDEMO_AMES_CSV" in reason


def test_memory_has_both_peaks_and_goals_are_reported_not_asserted(bench_run):
    _, results = bench_run
    memory = results["memory"]
    assert finite_positive(memory["manual_mb"]) and finite_positive(memory["autograd_mb"])
    assert memory["manual_held_mb"] <= memory["manual_mb"]
    assert finite_positive(memory["manual_cache_mb"]) and memory["manual_scratch_mb"] >= 0
    # the cache and the other work tensors are part of what the hand-written model holds
    assert memory["manual_cache_mb"] + memory["manual_scratch_mb"] <= memory["manual_held_mb"]
    assert len(results["goals"]) == 7
    assert all(isinstance(goal["met"], bool) for goal in results["goals"])


def test_the_cnn_step_has_both_times_both_peaks_and_where_the_time_goes(bench_run):
    _, results = bench_run
    cnn = results["cnn"]
    assert cnn["batch"] == 128 and cnn["image"] == [3, 32, 32]
    for key in ("manual_ms", "autograd_ms", "manual_mb", "autograd_mb", "patches_mb"):
        assert finite_positive(cnn[key]), key
    assert cnn["time_ratio"] == pytest.approx(cnn["manual_ms"] / cnn["autograd_ms"])
    # the two convolutions' patches: 128 images × (27 × 32·32 + 288 × 16·16) float32 numbers
    assert cnn["patches_mb"] == pytest.approx(128 * (27 * 1024 + 288 * 256) * 4 / 2**20)
    assert [row["type"] for row in cnn["layers"]][:3] == ["conv2d", "activation", "maxpool2d"]
    assert {goal["goal"].split(":")[0] for goal in results["goals"]} >= {"CNN step"}


def test_ames_race_against_mlpregressor():
    ames_csv = end_to_end.ames_csv_from_environment()
    if ames_csv is None or not ames_csv.is_file():
        pytest.skip("needs the Ames sales CSV: set BPDEMO_AMES_CSV to its path")
    problem = end_to_end.ames_problem(ames_csv)
    race = end_to_end.race(problem, repeats=1, max_epochs=2, sklearn_max_iter=20)
    for key in ("manual_s", "autograd_s", "sklearn_s"):
        assert finite_positive(race[key]), key
    assert race["target_r2"] == race["sklearn_r2"] > 0.5
    assert math.isfinite(race["manual_r2"]) and math.isfinite(race["autograd_r2"])


def test_a_wrong_thread_count_is_one_error_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:  # refused by the argument parser, as any demo's flag
        run_main(bench_cli.main, ["--threads", "0", "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: argument --threads: 0 is outside the range 1 to 256 "
        "(see python -m bpdemo.bench --help)"
    )


def test_an_ames_csv_that_is_not_there_is_one_error_line_naming_where_it_came_from(
    capsys, tmp_path, monkeypatch
):
    missing = tmp_path / "missing.csv"
    out = tmp_path / "run"
    assert run_main(bench_cli.main, ["--ames", str(missing), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"error: --ames {missing}: no such file"
    monkeypatch.setenv(end_to_end.AMES_ENV, str(missing))
    assert run_main(bench_cli.main, ["--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"error: BPDEMO_AMES_CSV {missing}: no such file"
    assert not out.exists()


def test_a_bad_ames_csv_is_refused_before_any_benchmarking_and_leaves_no_folder(
    tmp_path, capsys, monkeypatch
):
    from bpdemo.bench import steps

    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    monkeypatch.setattr(steps, "step_time", lambda *a, **k: pytest.fail("measured"))
    out = tmp_path / "run"
    status, _, stderr = run_cli(bench_cli.main, ["--ames", str(bad), "--out", str(out)], capsys)
    assert status == 2 and "has no column 'Overall Qual'" in one_line(stderr)
    assert not out.exists()


def test_the_ames_csv_comes_from_the_environment_and_help_names_no_path(capsys, monkeypatch):
    monkeypatch.delenv(end_to_end.AMES_ENV, raising=False)
    assert end_to_end.ames_csv_from_environment() is None
    monkeypatch.setenv(end_to_end.AMES_ENV, "/data/ames.csv")
    assert str(end_to_end.ames_csv_from_environment()) == "/data/ames.csv"
    with pytest.raises(SystemExit):
        bench_cli.parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert "BPDEMO_AMES_CSV" in text and "/data/" not in text and "../" not in text


# -- what the benchmark measures --------------------------------------------------------------------
def test_the_matrix_products_of_a_step_count_two_flop_per_multiply_add():
    # 3 -> 4 -> 2, batch 5: layer 0 has x W^T and delta^T x (no dL/dx below the input), layer 1 all
    # three products; each is 2 * 5 * fan_in * fan_out operations.
    _, flop = matmul_products(Case("x", (3, 4, 2), 5))
    assert flop == 2 * (2 * 5 * 3 * 4) + 3 * (2 * 5 * 4 * 2)


def test_peak_memory_is_the_largest_net_allocation_and_held_what_remains():
    kept = []

    def build():
        kept.append(torch.empty(2**18))  # 1 MiB of float32, held to the end

        def step():
            temporary = torch.empty(2**19)  # 2 MiB, freed when the step returns
            del temporary

        return step

    peak, held = _profiled_peak(build, steps=2)
    assert peak == 3 * 2**20
    assert held == 2**20


def test_the_cache_and_the_work_tensors_beyond_it_are_counted_once_each():
    # 3 -> 4 (relu) -> 2 (identity), batch 5, float32: 4 bytes a number.
    model = ManualMLP(MLPSpec([3, 4, 2], ["relu", "identity"], "cross_entropy"))
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    model.loss_and_grads(x, torch.tensor([0, 1, 0, 1, 1]))
    hidden, output = model.layers
    assert hidden.grad_output.data_ptr() == output.workspace.buffers["grad_input"].data_ptr()
    # cache: the hidden layer's z, a, delta and dL/da (5 x 4 each); the output layer's z, which
    # is also its a (identity), and dL/da, which is also its delta (5 x 2 each)
    assert cache_bytes(model) == 4 * (4 * 5 * 4 + 2 * 5 * 2)
    # beyond it: the output layer's a and delta buffers, which identity leaves unused
    assert scratch_bytes(model) == 4 * (2 * 5 * 2)
    workspace = sum(layer.workspace.nbytes for layer in model.layers)
    assert workspace == 4 * (3 * 5 * 4 + 3 * 5 * 2 + 5 * 4)  # z, a, delta each; dL/dx above


# -- the fast path computes what the plain rules and autograd compute ----------------------------
def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit for bit (so +0.0 and -0.0 differ, and NaNs in the same places match)."""
    as_int = {torch.float32: torch.int32, torch.float64: torch.int64}[a.dtype]
    return a.dtype == b.dtype and torch.equal(a.view(as_int), b.view(as_int))


def activation_inputs(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """z (7, 5) with the edges 0, -0, saturation and a tiny value in its first row, and dL/da."""
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(7, 5, generator=generator, dtype=torch.float64).mul_(4).to(dtype)
    z[0] = torch.tensor([0.0, -0.0, 30.0, -30.0, 1e-30], dtype=dtype)
    grad_a = torch.randn(7, 5, generator=generator, dtype=torch.float64).to(dtype)
    return z, grad_a


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "leaky_relu", "softplus"])
def test_a_rule_written_into_out_gives_the_same_bits_and_returns_out(name, dtype):
    activation = ACTIVATIONS[name]
    z, grad_a = activation_inputs(dtype)
    inputs = (z.clone(), grad_a.clone())
    a = activation.forward(z)
    out = torch.empty_like(z)
    assert activation.forward(z, out=out) is out
    assert same_bits(out, a)
    delta = activation.backward(grad_a, z, a)
    out = torch.empty_like(z)
    assert activation.backward(grad_a, z, a, out=out) is out
    assert same_bits(out, delta)
    assert same_bits(z, inputs[0]) and same_bits(grad_a, inputs[1])  # the arguments are kept


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
def test_the_backward_rules_match_torch_autograd(name, dtype):
    """sigmoid bit for bit; relu value for value (its 0s may carry the sign of dL/da); tanh to the
    last bit (torch's kernel fuses 1 - a² into one rounding)."""
    activation = ACTIVATIONS[name]
    z, grad_a = activation_inputs(dtype)
    leaf = z.clone().requires_grad_()
    a = activation.torch_fn(leaf)
    a.backward(grad_a)
    assert same_bits(activation.forward(z), a.detach())
    delta = activation.backward(grad_a, z, a.detach())
    if name == "sigmoid":
        assert same_bits(delta, leaf.grad)
    elif name == "relu":
        assert torch.equal(delta, leaf.grad)
    else:
        eps = torch.finfo(dtype).eps
        torch.testing.assert_close(delta, leaf.grad, rtol=eps, atol=eps * grad_a.abs().max())


def loss_inputs(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """An output (6, 3) and a target that suit the loss `name`, in float64."""
    generator = torch.Generator().manual_seed(1)
    output = torch.randn(6, 3, generator=generator, dtype=torch.float64) * 3
    if LOSSES[name].targets == "probabilities":  # a loss of probabilities takes them as its output
        output = torch.sigmoid(output)
    return output, targets_for(name, 6, 3, generator)


@pytest.mark.parametrize("name", list(LOSSES))
def test_each_loss_value_and_gradient_match_its_torch_fn_and_autograd(name):
    loss = LOSSES[name]
    output, target = loss_inputs(name)
    leaf = output.clone().requires_grad_()
    expected = loss.torch_fn(leaf, target)
    expected.backward()
    value, gradient = loss.value_and_gradient(output, target)
    torch.testing.assert_close(value, expected.detach(), rtol=1e-14, atol=0)
    torch.testing.assert_close(gradient, leaf.grad, rtol=1e-13, atol=1e-16)
    assert same_bits(loss.value(output, target), value)
    assert same_bits(loss.gradient(output, target), gradient)


def test_a_short_last_batch_reuses_the_buffers_and_still_matches_autograd():
    spec = MLPSpec([4, 6, 5, 3], ["relu", "tanh", "identity"], "cross_entropy", dtype="float64")
    manual, autograd = ManualMLP(spec), AutogradMLP(spec)
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(8, 4, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 3, (8,), generator=generator)
    manual.loss_and_grads(x, y)
    buffers = [layer.output.data_ptr() for layer in manual.layers[:-1]]
    for rows in (5, 8, 3):
        loss_m, grads_m = manual.loss_and_grads(x[:rows], y[:rows])
        loss_a, grads_a = autograd.loss_and_grads(x[:rows], y[:rows])
        assert [layer.output.data_ptr() for layer in manual.layers[:-1]] == buffers
        assert all(layer.pre_activation.shape[0] == rows for layer in manual.layers)
        torch.testing.assert_close(loss_m, loss_a, rtol=1e-12, atol=0)
        for name, grad in grads_a.items():
            torch.testing.assert_close(
                grads_m[name], grad, rtol=TOLERANCES[torch.float64], atol=1e-14
            )


def test_flat_parameters_and_grads_hold_every_parameter_end_to_end_in_torch_order():
    spec = MLPSpec([4, 6, 3], ["relu", "identity"], "mse", seed=5)
    model = ManualMLP(spec)
    names = [name for name, _ in AutogradMLP(spec).named_parameters()]
    assert [name for name, _ in model.named_parameters()] == names
    params = dict(model.named_parameters())
    flat = model.flat_parameters
    assert flat.shape == (4 * 6 + 6 + 6 * 3 + 3,)
    assert torch.equal(flat, torch.cat([params[name].reshape(-1) for name in names]))
    x, y = torch.randn(5, 4), torch.randn(5, 3)
    _, grads = model.loss_and_grads(x, y)
    assert list(grads) == names
    assert torch.equal(model.flat_grads, torch.cat([grads[name].reshape(-1) for name in names]))
    # the named tensors are views into the flat ones: writing one writes the other
    model.flat_grads.zero_()
    assert all(not grad.any() for grad in grads.values())
    flat.zero_()
    assert all(not p.any() for p in params.values())
    params["layers.1.bias"].fill_(2.0)
    assert torch.equal(flat[-3:], torch.full((3,), 2.0))
