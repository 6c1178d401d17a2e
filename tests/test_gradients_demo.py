"""Vanishing and exploding gradients (`bpdemo.health`, `bpdemo.report.health`, `demos.gradients`): the
effects, the agreement of both models, clipping, the verdicts and their reasons, and the demo's outputs
and errors."""

import contextlib
import io
import json
import math
from itertools import pairwise

import pytest
import torch

from bpdemo.agreement import TOLERANCES
from bpdemo.datasets.digits import small_digits
from bpdemo.health import STUDY_INITS, Setting, StudyOptions, network_spec, study
from bpdemo.infra.cli import run_main
from bpdemo.optim import OptimizerSpec
from bpdemo.report.health import agreement_lines, init_description, metrics_entry, reason
from bpdemo.spec import INITS, MLPSpec
from bpdemo.train import torch_threads
from demos.gradients import main

N_CLASSES = 10
# Small and fast: 128 digits, batches of 32, 2 epochs (8 steps); the default width and lr.
OPTIONS = StudyOptions(epochs=2, batch_size=32, seed=0)
TOLERANCE = TOLERANCES[torch.float64]


@pytest.fixture(scope="module")
def digits():
    x, y = small_digits(rows=128, seed=0).tensors(torch.float64, "cpu")
    return x, y


@pytest.fixture(scope="module")
def studied(digits):
    """One study per setting, shared by the tests of this module (each takes well under a second)."""
    cache = {}

    def get(activation: str, init: str, depth: int):
        key = (activation, init, depth)
        if key not in cache:
            with torch_threads(1):
                cache[key] = study(Setting(*key), *digits, N_CLASSES, OPTIONS)
        return cache[key]

    return get


def relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else abs(a - b)


# -- the effects ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("init", ["xavier", "he"])
def test_sigmoid_with_a_standard_init_makes_the_first_layer_gradient_100_times_smaller(
    studied, init
):
    result = studied("sigmoid", init, 10)
    first, last = result.initial.norms_manual[0], result.initial.norms_manual[-1]
    assert first * 100 <= last
    assert result.verdict.name == "vanishing" and result.verdict.rule == "small_slope"
    assert "sigmoid'(z) ≤ 0.25" in reason(result, OPTIONS) and "0.25^9" in reason(result, OPTIONS)
    # sigmoid' is at most 1/4 in every layer, as the hand-written cache shows
    assert all(0 < s <= 0.25 for s in result.initial.factors.activation_slope)


def test_relu_with_he_keeps_the_first_and_last_layer_within_a_factor_of_10(studied):
    result = studied("relu", "he", 10)
    ratio = result.initial.first_last_ratio
    assert 0.1 <= ratio <= 10
    assert result.verdict.name == "healthy" and result.verdict.rule == "within"
    assert not result.run.exploded
    assert result.run.final_loss < result.initial.loss_manual  # it learns


def test_the_large_init_explodes_and_the_divergence_is_a_result_not_an_error(studied):
    result = studied("relu", "large", 10)
    run = result.run
    assert run.exploded and run.history.diverged_at_step is not None  # a real inf/NaN loss
    assert not math.isfinite(run.losses()[-1])
    assert run.final_loss is None
    assert result.verdict.name == "exploding" and result.verdict.rule == "exploded"
    assert "inf/NaN at step" in reason(result, OPTIONS)
    assert metrics_entry(result, OPTIONS)["exploded"] is True


def test_clipping_by_global_norm_brings_the_exploding_setting_back_to_finite_training(studied):
    result = studied("relu", "large", 10)
    clipped, check = result.clipped, result.clip_check
    assert clipped is not None and check is not None
    assert clipped.max_grad_norm == OPTIONS.clip_norm
    assert not clipped.exploded
    assert len(clipped.steps) == 8  # every step of the run, none stopped
    assert all(math.isfinite(v) for v in clipped.losses("manual") + clipped.losses("autograd"))
    assert math.isfinite(clipped.final_loss) and clipped.final_loss < result.initial.loss_manual
    # hand-written clip_grad_norm and torch.nn.utils.clip_grad_norm_ on the same gradients
    assert check.norm_before_manual > 1e4 * check.max_norm  # a gradient that really needs clipping
    assert relative(check.norm_before_manual, check.norm_before_torch) <= TOLERANCE
    assert check.clipped_grads_rel_diff <= TOLERANCE
    assert check.norm_after_manual == pytest.approx(check.max_norm, rel=1e-6)
    # and the clipped updates keep both models together
    assert clipped.max_rel_grad_diff <= TOLERANCE


def test_small_weights_vanish_in_every_layer_even_when_first_and_last_are_alike(studied):
    result = studied("relu", "normal", 10)
    assert 0.1 <= result.initial.first_last_ratio <= 10  # the ratio alone would miss it
    assert max(result.initial.norms_manual) < 1e-8
    assert result.verdict.name == "vanishing" and result.verdict.rule == "tiny"
    assert "every layer" in reason(result, OPTIONS)
    assert result.run.final_loss == pytest.approx(math.log(10), abs=0.02)  # stalled at chance


# -- both models agree -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("activation", "init", "depth"),
    [
        ("sigmoid", "normal", 10),
        ("sigmoid", "xavier", 10),
        ("tanh", "xavier", 10),
        ("relu", "he", 10),
        ("relu", "normal", 10),
        ("relu", "large", 10),
        ("tanh", "he", 5),
    ],
)
def test_both_models_give_the_same_layer_gradient_norms(studied, activation, init, depth):
    result = studied(activation, init, depth)
    manual, autograd = result.initial.norms_manual, result.initial.norms_autograd
    assert len(manual) == len(autograd) == depth
    for m, a in zip(manual, autograd, strict=True):
        assert relative(m, a) <= TOLERANCE
    assert result.initial.norm_rel_diff <= TOLERANCE
    if result.run.exploded:
        return
    # and at every step of the run, layer by layer
    for step_m, step_a in zip(
        result.run.layer_norms("manual"), result.run.layer_norms("autograd"), strict=True
    ):
        for m, a in zip(step_m, step_a, strict=True):
            assert relative(m, a) <= TOLERANCE


def test_the_backward_factors_multiply_to_the_error_ratio_that_autograd_sees(studied, digits):
    """weight gain x activation slope per layer, read from the hand-written cache, against the
    errors delta = dL/dz that autograd gives for every layer's pre-activation."""
    result = studied("sigmoid", "xavier", 10)
    spec = result.spec
    x, y = digits
    params = spec.initial_parameters()
    a, pre_activations = x, []
    for i, activation in enumerate(spec.activations):
        weight = params[f"layers.{i}.weight"].requires_grad_()
        z = a @ weight.t() + params[f"layers.{i}.bias"]
        z.retain_grad()
        pre_activations.append(z)
        a = {"sigmoid": torch.sigmoid, "identity": lambda t: t}[activation](z)
    torch.nn.functional.cross_entropy(a, y).backward()
    delta_norms = [float(torch.linalg.vector_norm(z.grad)) for z in pre_activations]
    expected = [lower / upper for lower, upper in pairwise(delta_norms)]
    measured = result.initial.factors.per_layer
    assert len(measured) == len(expected) == 9
    for m, e in zip(measured, expected, strict=True):
        assert relative(m, e) <= TOLERANCE


def test_two_runs_that_drift_apart_still_pass_the_check_at_the_same_weights_at_every_step(studied):
    result = studied("tanh", "large", 10)
    run = result.run
    assert run.drift_step is not None and run.drift.max_rel_grad_diff > TOLERANCE
    assert run.within_tolerance and run.max_rel_grad_diff <= TOLERANCE
    training = metrics_entry(result, OPTIONS)["training"]
    assert training["within_tolerance"] is True and training["drift_step"] == run.drift_step
    lines = agreement_lines([result])
    assert "within tolerance at every step of every run" in lines[1]
    assert f"tanh / large / depth 10 from step {run.drift_step}" in lines[2]
    assert "OUTSIDE" not in "\n".join(lines)


# -- the demo ------------------------------------------------------------------------------------------------
SMALL = [
    "--set",
    'grid.activations=["sigmoid", "relu"]',
    "--set",
    'grid.inits=["xavier", "large"]',
    "--set",
    "grid.depths=[10]",
    "--set",
    "data.rows=128",
    "--set",
    "train.batch_size=32",
    "--epochs",
    "2",
]


def without_timings(obj):
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items() if "seconds" not in k}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    """The demo run twice with the same seed: metrics of both runs, the first's folder and output."""
    folders = [tmp_path_factory.mktemp(f"gradients{i}") for i in (1, 2)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert run_main(main, [*SMALL, "--out", str(folders[0])]) == 0
    second = [*SMALL, "--quiet", "--set", "report.figures=false", "--out", str(folders[1])]
    assert run_main(main, second) == 0
    assert not list(folders[1].glob("*.png"))
    metrics = [json.loads((f / "metrics.json").read_text()) for f in folders]
    return {
        "first": metrics[0],
        "second": metrics[1],
        "folder": folders[0],
        "out": printed.getvalue(),
    }


def test_metrics_json_holds_every_setting_with_the_documented_keys(demo_runs):
    metrics, folder = demo_runs["first"], demo_runs["folder"]
    settings = metrics["settings"]
    assert len(settings) == 2 * 2 * 1
    for entry in settings:
        for key in (
            "activation",
            "init",
            "depth",
            "grad_norms_manual",
            "grad_norms_autograd",
            "exploded",
            "final_loss",
        ):
            assert key in entry
        assert (
            len(entry["grad_norms_manual"]) == len(entry["grad_norms_autograd"]) == entry["depth"]
        )
        assert isinstance(entry["exploded"], bool)
        assert (entry["final_loss"] is None) == (entry["diverged_at_step"] is not None)
    by_key = {(s["activation"], s["init"], s["depth"]): s for s in settings}
    exploded = by_key[("relu", "large", 10)]
    assert exploded["exploded"] and exploded["verdict"] == "exploding"
    assert exploded["clipping"]["exploded"] is False
    vanishing = by_key[("sigmoid", "xavier", 10)]
    assert vanishing["grad_norms_manual"][0] * 100 <= vanishing["grad_norms_manual"][-1]
    for name in ("grad_norms_by_layer.png", "loss_curves.png", "grad_norm_heatmap.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("config.toml", "settings.csv", "steps.csv", "layer_norms.csv"):
        assert (folder / name).stat().st_size > 0


def test_two_runs_with_the_same_seed_write_the_same_metrics(demo_runs):
    first, second = demo_runs["first"], demo_runs["second"]
    assert without_timings(first) == without_timings(second)
    assert "seconds" in first and all("seconds" in s for s in first["settings"])


def test_the_demo_prints_a_table_of_verdicts_with_reasons(demo_runs):
    lines = demo_runs["out"].splitlines()
    header = next(line for line in lines if line.startswith("activation"))
    for column in ("init", "depth", "first layer", "last layer", "first/last", "verdict", "why"):
        assert column in header
    row = next(line for line in lines if line.startswith("sigmoid    xavier 10"))
    assert "vanishing" in row and "sigmoid'(z) ≤ 0.25" in row
    row = next(line for line in lines if line.startswith("relu       large  10"))
    assert "exploding" in row and "inf/NaN at step" in row
    assert any("clipped to global norm 1: finite for 8 steps" in line for line in lines)
    check = next(line for line in lines if line.startswith("hand-written vs autograd during"))
    assert "each step at the hand-written model's parameters: within tolerance" in check


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("grid.depth=[3]", "unknown key 'depth' in [grid]"),
        ("report.focus_depth=7", "focus_depth: 7 is not one of grid.depths"),
        ('grid.inits=["he", "he"]', "repeats an entry"),
        ("data.rows=5000", "the digits data set has 1 to 1797 images"),
        ('grid.activations=["swish"]', "[grid] activations"),
        ('grid.inits=["big"]', "[grid] inits"),
    ],
)
def test_a_config_mistake_is_one_line_and_exit_2_before_any_folder(
    tmp_path, capsys, override, message
):
    out = tmp_path / "run"
    assert run_main(main, ["--set", override, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert not out.exists()


def test_a_study_leaves_the_torch_thread_count_as_it_found_it(digits):
    suite = torch.get_num_threads()
    torch.set_num_threads(3)  # not the one thread the tests run on, so a reset to 1 would show
    try:
        before = torch.get_num_threads()
        study(Setting("relu", "he", 2), *digits, N_CLASSES, OPTIONS)
        assert torch.get_num_threads() == before
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(suite)


def test_the_study_inits_are_the_registrys_random_inits_and_large_described_by_the_registry():
    assert (*INITS, "large") == STUDY_INITS
    options = StudyOptions(normal_std=0.02, large_std=0.7)
    described = {init: init_description(Setting("relu", init, 3), options) for init in STUDY_INITS}
    assert described["large"] == INITS["normal"].description(0.7) + " (deliberately large)"
    assert described["normal"] == INITS["normal"].description(0.02) == "normal, std 0.02"
    for init in ("xavier", "he", "uniform"):
        assert described[init] == INITS[init].description(None)


def test_the_large_init_is_a_normal_init_with_the_large_std():
    spec = network_spec(Setting("relu", "large", 3), 64, 10, StudyOptions(large_std=0.7))
    assert isinstance(spec, MLPSpec) and spec.init == "normal" and spec.init_scale == 0.7
    assert spec.sizes == [64, 32, 32, 10] and spec.activations == ["relu", "relu", "identity"]
    assert OptimizerSpec("sgd", lr=0.1) == StudyOptions().optimizer


def test_in_float32_the_tiniest_gradients_underflow_to_0_and_the_reason_says_so():
    """Why the demo runs in float64: sigmoid with small weights at depth 20 reaches 1e-36."""
    x, y = small_digits(rows=32, seed=0).tensors(torch.float32, "cpu")
    options = StudyOptions(dtype="float32", epochs=1, batch_size=32, clip_norm=None)
    with torch_threads(1):
        result = study(Setting("sigmoid", "normal", 20), x, y, N_CLASSES, options)
    assert result.initial.norms_manual[0] == 0.0  # 1e-36 in float64, below float32's range here
    assert result.verdict.name == "vanishing" and result.verdict.zero_layers >= 1
    assert "exactly 0, too small for float32" in reason(result, options)
