"""Every mistake a user can make on the command line: one line, the right exit status, nothing lost.

Run through the main demo (`demos.house_prices`) as the command line runs it (`run_main`). A usage
mistake exits 2 before anything is written; a fault during training (divergence) exits 1 and keeps
what the run had, as Ctrl-C does (exit 130). CSV files: tests/test_house_prices.py; image folders: tests/test_images.py;
worked-example configs: tests/test_worked_example.py.
"""

import json

import pytest

from bpdemo.compare import SideBySide
from bpdemo.infra.cli import run_main
from demos.house_prices import main

SMALL = ["--set", "data.houses=300", "--quiet"]


def run(argv, capsys):
    status = run_main(main, argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line(stderr: str) -> str:
    assert stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
    assert "Traceback" not in stderr
    return stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set", "train.epoch=3"],
            "unknown key 'epoch' in [train] (valid keys: epochs, batch_size, threads)",
        ),
        (["--set", 'train.epochs="ten"'], "[train] epochs: Input should be a valid integer"),
        (["--set", "optimizer.lr=0"], "[optimizer] lr: Input should be greater than 0 (got 0)"),
        (["--set", "optimizer.lr=-0.1"], "[optimizer] lr: Input should be greater than 0"),
        (["--set", "model.hidden=[0]"], "[model] hidden: Input should be greater than 0 (got 0)"),
        (["--epochs", "0"], "[train] epochs: Input should be greater than 0 (got 0)"),
        (["--set", 'model.activation="swish"'], "[model] activation: Input should be 'identity'"),
        (["--set", 'model.loss="hinge"'], "[model] loss: Input should be 'mse', 'half_sse'"),
        (["--set", 'model.loss="cross_entropy"'], "a price needs one of mse, half_sse, sse"),
        (
            ["--set", 'optimizer.name="rmsprop"'],
            "[optimizer] name: Input should be 'sgd' or 'adam'",
        ),
        (["--set", 'data.dataset="mnist"'], "[data] dataset: Input should be 'synthetic', 'csv'"),
        (["--device", "cuda"], "no CUDA GPU is available; use --device cpu"),
        (["--config", "no/such.toml"], "config file no/such.toml not found"),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "zero-lr",
        "negative-lr",
        "zero-width",
        "zero-epochs",
        "unknown-activation",
        "unknown-loss",
        "classification-loss",
        "unknown-optimizer",
        "unknown-dataset",
        "cuda-without-gpu",
        "missing-config",
    ],
)
def test_a_config_mistake_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    status, stdout, stderr = run([*args, "--out", str(out), *SMALL], capsys)
    assert status == 2
    assert message in one_line(stderr)
    assert stdout == "" and not out.exists()


def test_a_config_file_that_is_not_toml_is_named_with_its_line(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("[train]\nepochs = = 3\n")
    status, _, stderr = run(["--config", str(config), "--out", str(tmp_path / "r")], capsys)
    assert status == 2
    assert f"{config}: not valid TOML: " in one_line(stderr) and "line 2" in stderr
    assert not (tmp_path / "r").exists()


def test_an_unknown_key_in_a_file_names_the_file_and_the_valid_keys(tmp_path, capsys):
    config = tmp_path / "mine.toml"
    config.write_text("[optimizer]\nlearning_rate = 0.1\n")
    status, _, stderr = run(["--config", str(config), "--out", str(tmp_path / "r")], capsys)
    assert status == 2
    assert one_line(stderr).startswith(
        f"error: {config}: unknown key 'learning_rate' in [optimizer] (valid keys: name, lr, "
    )


def test_an_unknown_dataset_flag_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", "mnist"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'mnist'" in one_line(capsys.readouterr().err)


def test_a_non_empty_output_folder_is_refused_and_left_untouched(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("the last run's results")
    status, _, stderr = run(["--out", str(out), *SMALL], capsys)
    assert status == 2
    assert "exists and is not empty; choose another --out, or add --force" in one_line(stderr)
    assert [p.name for p in out.iterdir()] == ["metrics.json"]
    assert (out / "metrics.json").read_text() == "the last run's results"


def test_an_output_folder_that_cannot_be_made_is_refused(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    status, _, stderr = run(["--out", str(tmp_path / "a-file" / "run"), *SMALL], capsys)
    assert status == 2
    assert "choose another --out" in one_line(stderr)
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


def test_a_diverging_run_stops_at_once_exits_1_and_keeps_its_history(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--set", 'optimizer.name="sgd"', "--set", "optimizer.lr=50", "--epochs", "20"]
    status, _, stderr = run([*args, "--out", str(out), *SMALL], capsys)
    assert status == 1
    line = one_line(stderr)
    assert "training diverged: the loss became inf or NaN at step " in line
    assert "try a smaller learning rate (now 50)" in line and str(out) in line
    metrics = json.loads((out / "metrics.json").read_text())
    step = metrics["diverged_at_step"]
    assert f"at step {step};" in line and step < 20 * 2  # stopped long before the 40 steps
    assert metrics["steps"] == step and metrics["interrupted"] is False
    rows = (out / "steps.csv").read_text().splitlines()
    assert len(rows) == 1 + step  # header and every step up to the divergence
    assert not list(out.glob("*.png")) and not list(out.glob(".*.tmp"))


def test_ctrl_c_saves_the_history_and_metrics_so_far_and_exits_130(tmp_path, capsys, monkeypatch):
    original, calls = SideBySide.step, []

    def step_then_interrupt(self, x, target):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return original(self, x, target)

    monkeypatch.setattr(SideBySide, "step", step_then_interrupt)
    out = tmp_path / "run"
    status, _, stderr = run(["--epochs", "10", "--out", str(out), *SMALL], capsys)
    assert status == 130
    assert "interrupted after 2 of 10 epochs" in one_line(stderr)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["steps"] == 4
    assert metrics["phase"] == "training" and metrics["signal"] == "SIGINT"
    assert metrics["epochs_completed"] == 2 and len(metrics["history"]) == 3
    assert (out / "history.csv").read_text().count("\n") == 1 + 3  # header, epochs 0, 1, 2


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--epochs", "0"], "--epochs 0: [train] epochs:"),
        (["--set", "optimizer.lr=0"], "--set 'optimizer.lr=0': [optimizer] lr:"),
        (["--set", "optimizer.nosuch=1"], "--set 'optimizer.nosuch=1': unknown key 'nosuch'"),
        (["--set", "train.epochs=3", "--epochs", "0"], "--epochs 0: [train] epochs:"),
    ],
    ids=["flag", "set", "unknown-key", "the-last-one-given"],
)
def test_a_bad_value_from_the_command_line_is_named_as_typed_not_by_the_file(
    tmp_path, capsys, argv, named
):
    assert run_main(main, [*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {named}") and err.count("\n") == 1
    assert "house_prices.toml" not in err  # the file does not hold the value


def test_a_bad_value_in_the_file_is_named_by_the_file(tmp_path, capsys):
    config = tmp_path / "mine.toml"
    config.write_text("[train]\nepochs = 0\n")
    assert run_main(main, ["--config", str(config), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {config}: [train] epochs:")
