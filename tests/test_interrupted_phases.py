"""Ctrl-C (SIGINT) and SIGTERM inside each phase of a command: what was finished is kept, whole.

The signals here are real, sent by the process to itself from inside the phase under test, so they
arrive where a user's Ctrl-C would. tests/test_interruptions.py sends them from outside.
"""

import contextlib
import json
import os
import signal

import pytest

import bpdemo.bench.__main__ as bench_cli
from bpdemo import baselines
from bpdemo.infra.cli import run_main
from bpdemo.infra.outputs import MANIFEST
from demos.gradients import main as gradients_main
from demos.house_prices import main as houses_main
from demos.images import main as images_main
from tests.conftest import (
    QUICK_GRADIENTS,
    QUICK_HOUSES,
    QUICK_IMAGES,
    complete_files,
    one_line,
    run_cli,
)


def signal_self(signum: int) -> None:
    """What the user's Ctrl-C (SIGINT) or a `kill` (SIGTERM) does, at this very point."""
    os.kill(os.getpid(), signum)


def test_ctrl_c_in_one_gradients_setting_stops_the_study(tmp_path, capsys, monkeypatch):
    import bpdemo.health as health

    original, calls = health.fit, []

    def fit_then_ctrl_c(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second setting's training
            signal_self(signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(health, "fit", fit_then_ctrl_c)
    out = tmp_path / "run"
    status, stdout, stderr = run_cli(gradients_main, [*QUICK_GRADIENTS, "--out", str(out)], capsys)
    assert status == 130 and stdout == ""
    assert "interrupted (Ctrl-C, during study)" in one_line(stderr)
    assert len(calls) == 2  # no setting ran after it
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["phase"] == "study"
    assert len(metrics["settings"]) == 1  # the setting that was finished
    assert complete_files(out) == sorted([MANIFEST, "config.toml", "metrics.json"])


def test_ctrl_c_that_scikit_learn_swallows_still_stops_the_run(tmp_path, capsys, monkeypatch):
    from sklearn.neural_network import MLPRegressor

    original, epochs = MLPRegressor._update_no_improvement_count, []

    def epoch_then_ctrl_c(self, *args, **kwargs):
        epochs.append(1)
        if len(epochs) == 3:  # inside fit's own `except KeyboardInterrupt`
            signal_self(signal.SIGINT)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MLPRegressor, "_update_no_improvement_count", epoch_then_ctrl_c)
    out = tmp_path / "run"
    status, _, stderr = run_cli(houses_main, [*QUICK_HOUSES, "--out", str(out)], capsys)
    assert status == 130
    assert "(Ctrl-C, during baselines)" in one_line(stderr)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["phase"] == "baselines"
    assert metrics["epochs_completed"] == 3 and len(metrics["history"]) == 4  # training was kept
    assert "manual" in metrics and "autograd" in metrics  # and so were their results
    names = complete_files(out)
    assert {"history.csv", "steps.csv"} <= set(names) and not [n for n in names if ".png" in n]


def test_a_signal_that_any_library_swallows_still_ends_the_command_non_zero(capsys):
    def main(argv):
        with contextlib.suppress(KeyboardInterrupt):  # a library that carries on after Ctrl-C
            signal_self(signal.SIGTERM)
        return 0

    assert run_main(main, []) == 143
    line = one_line(capsys.readouterr().err)
    assert line == "error: interrupted (SIGTERM) as the command ended; what it wrote is complete\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_an_interruption_while_loading_data_writes_nothing(tmp_path, capsys, monkeypatch, signum):
    import bpdemo.datasets.houses as houses

    original = houses.synthetic_houses

    def load_then_signal(*args, **kwargs):
        frame = original(*args, **kwargs)
        signal_self(signum)
        return frame

    monkeypatch.setattr(houses, "synthetic_houses", load_then_signal)
    out = tmp_path / "run"
    status, _, stderr = run_cli(houses_main, [*QUICK_HOUSES, "--out", str(out)], capsys)
    assert status == 128 + signum
    how = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert f"interrupted ({how}, during data); nothing was written" in one_line(stderr)
    assert not out.exists()


def test_sigterm_during_the_baselines_keeps_the_finished_training(tmp_path, capsys, monkeypatch):
    original = baselines.fit_timed

    def fit_after_sigterm(*args, **kwargs):
        signal_self(signal.SIGTERM)
        return original(*args, **kwargs)

    monkeypatch.setattr(baselines, "fit_timed", fit_after_sigterm)
    out = tmp_path / "run"
    status, _, stderr = run_cli(images_main, [*QUICK_IMAGES, "--out", str(out)], capsys)
    assert status == 143 and "(SIGTERM, during " in one_line(stderr)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["signal"] == "SIGTERM"
    assert metrics["epochs_completed"] == 2
    assert {"config.toml", "history.csv", "steps.csv", "metrics.json"} <= set(complete_files(out))


def test_an_interruption_during_the_figures_keeps_those_drawn(tmp_path, capsys, monkeypatch):
    import bpdemo.plots.houses as plots

    original, drawn = plots.predicted_vs_actual, []

    def draw_then_ctrl_c(*args, **kwargs):
        drawn.append(1)
        signal_self(signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(plots, "predicted_vs_actual", draw_then_ctrl_c)
    out = tmp_path / "run"
    status, _, stderr = run_cli(houses_main, [*QUICK_HOUSES, "--out", str(out)], capsys)
    assert status == 130 and "(Ctrl-C, during figures)" in one_line(stderr)
    names = complete_files(out)
    assert {"loss.png", "gradient_difference.png"} <= set(names)  # drawn before it
    assert "predicted_vs_actual.png" not in names and "errors.png" not in names
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["phase"] == "figures"
    assert metrics["baselines"]["linear"]["test"]["r2"] > 0  # the full results, kept


def test_the_benchmark_interrupted_keeps_what_it_measured(tmp_path, capsys, monkeypatch):
    from bpdemo.bench import steps

    monkeypatch.setattr(bench_cli, "QUICK", _smoke_settings())
    monkeypatch.setattr(steps, "scaling", lambda *a, **k: signal_self(signal.SIGTERM))
    out = tmp_path / "run"
    status, stdout, stderr = run_cli(
        bench_cli.main, ["--quick", "--quiet", "--out", str(out)], capsys
    )
    assert status == 143 and stdout == ""
    assert "(SIGTERM, during scaling)" in one_line(stderr)
    results = json.loads((out / "bench.json").read_text())
    assert results["interrupted"] is True and results["phase"] == "scaling"
    assert len(results["step_time"]) == 4 and "scaling" not in results
    assert complete_files(out) == sorted([MANIFEST, "bench.json"])


def _smoke_settings():
    from bpdemo.bench import QUICK, Settings

    return Settings(**{**QUICK.__dict__, "repeats": 1, "min_block_seconds": 0.001})


def test_an_interrupted_command_leaves_no_signal_behind_for_a_main_called_after_it(tmp_path):
    """A notebook runs one command through run_main and stops it; then it calls a demo's main
    itself, without run_main: that run is not stopped by the earlier command's signal."""
    from bpdemo.infra import interruption

    assert run_main(houses_main, [*QUICK_HOUSES, "--out", str(tmp_path / "first")]) == 0
    with interruption.handlers(), contextlib.suppress(interruption.Interrupted):
        signal_self(signal.SIGTERM)
    interruption.check()  # nothing is raised: the SIGTERM was that command's
    assert interruption.stopped().signum == signal.SIGINT  # a Ctrl-C now is a Ctrl-C
    assert interruption.as_interrupted(KeyboardInterrupt()).signum == signal.SIGINT
    assert interruption.received() is None
    assert houses_main([*QUICK_HOUSES, "--out", str(tmp_path / "next")]) in (0, None)
    assert json.loads((tmp_path / "next" / "metrics.json").read_text())["interrupted"] is False
