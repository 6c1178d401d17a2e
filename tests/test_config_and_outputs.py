"""Configuration files, `--set` overrides, the one error path, and atomic run outputs."""

import json

import pytest
from pydantic import Field

from bpdemo.infra.cli import common_parser, load_demo_config, run_main
from bpdemo.infra.config import (
    ModelSection,
    OptimizerSection,
    Section,
    TrainSection,
    dump_config,
    load_config,
)
from bpdemo.infra.errors import ConfigError, UsageError
from bpdemo.infra.outputs import RunDir, atomic_write


class DemoConfig(Section):
    seed: int = 0
    model: ModelSection = ModelSection()
    optimizer: OptimizerSection = OptimizerSection()
    train: TrainSection = TrainSection()


def write(tmp_path, text: str):
    path = tmp_path / "demo.toml"
    path.write_text(text)
    return path


def test_a_config_file_and_overrides_are_read_and_validated(tmp_path):
    path = write(tmp_path, '[optimizer]\nname = "sgd"\nlr = 0.5\n[train]\nepochs = 3\n')
    config = load_config(DemoConfig, path, ["optimizer.momentum=0.9", "model.hidden=[8, 4]"])
    assert config.optimizer.spec().lr == 0.5 and config.optimizer.momentum == 0.9
    assert config.train.epochs == 3 and config.model.hidden == [8, 4]
    spec = config.model.spec(n_inputs=3, n_outputs=1, seed=config.seed)
    assert spec.sizes == [3, 8, 4, 1] and spec.activations == ["tanh", "tanh", "identity"]


def test_the_resolved_config_round_trips_through_toml(tmp_path):
    config = load_config(DemoConfig, None, ["optimizer.lr=0.25", "seed=4"])
    again = load_config(DemoConfig, write(tmp_path, dump_config(config)))
    assert again == config


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        (
            "[train]\nepoch = 3\n",
            [],
            "demo.toml: unknown key 'epoch' in [train] (valid keys: epochs, batch_size, threads)",
        ),
        (
            "[traning]\n",
            [],
            "unknown key 'traning' in the top level (valid keys: seed, model, optimizer, train)",
        ),
        (
            '[train]\nepochs = "ten"\n',
            [],
            "[train] epochs: Input should be a valid integer (got 'ten')",
        ),
        ("[train]\nepochs = 0\n", [], "[train] epochs: Input should be greater than 0 (got 0)"),
        (
            "[optimizer]\nlr = -0.1\n",
            [],
            "[optimizer] lr: Input should be greater than 0 (got -0.1)",
        ),
        ("", ["optimizer.lr=0"], "[optimizer] lr: Input should be greater than 0 (got 0)"),
        ("", ["model.hidden=[4, 0]"], "[model] hidden: Input should be greater than 0 (got 0)"),
        (
            "",
            ['model.activation="swish"'],
            "[model] activation: Input should be 'identity', 'sigmoid'",
        ),
        ("", ['model.loss="hinge"'], "[model] loss: Input should be 'mse', 'half_sse'"),
        ("", ['optimizer.name="rmsprop"'], "[optimizer] name: Input should be 'sgd' or 'adam'"),
        ("[train\n", [], "demo.toml: not valid TOML"),
        ("", ["train.epochs"], "expected section.key=value"),
        ("seed = 1\n", ["seed.x=1"], "'seed' is a value, not a section"),
    ],
)
def test_a_config_mistake_is_one_clear_line(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config(DemoConfig, write(tmp_path, text), overrides)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_missing_config_file_says_so(tmp_path):
    with pytest.raises(ConfigError, match="not found; pass an existing file to --config"):
        load_config(DemoConfig, tmp_path / "nope.toml")


def test_common_flags_override_the_config(tmp_path):
    parser = common_parser("house_prices", "test")
    path = write(tmp_path, "seed = 1\n[train]\nepochs = 5\n")
    args = parser.parse_args(
        [
            "--config",
            str(path),
            "--seed",
            "9",
            "--epochs",
            "2",
            "--dtype",
            "float64",
            "--set",
            "train.epochs=7",
        ]
    )
    config = load_demo_config(DemoConfig, args)
    assert (config.seed, config.train.epochs, config.model.dtype) == (9, 2, "float64")


def test_run_main_turns_a_user_mistake_into_one_line_and_status_2(capsys):
    def main(argv):
        raise UsageError("column 'Price' not found in houses.csv; available: Beds, Area")

    assert run_main(main, []) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: column 'Price' not found in houses.csv; available: Beds, Area\n"
    assert captured.out == ""


def test_run_main_shows_the_traceback_with_debug():
    def main(argv):
        raise UsageError("bad")

    with pytest.raises(UsageError):
        run_main(main, ["--debug"])


def test_argparse_mistakes_are_one_line_and_status_2(capsys):
    parser = common_parser("house_prices", "test")
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--dtype", "float16"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'float16'" in err


def test_run_dir_refuses_a_non_empty_folder_without_force_and_leaves_it_untouched(tmp_path):
    previous = RunDir.prepare(tmp_path, "demo")  # a previous run's file: --force may replace it
    previous.write_text("metrics.json", "old")
    previous.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(
        UsageError, match="exists and is not empty; choose another --out, or add --force"
    ):
        RunDir.prepare(tmp_path, "demo")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "metrics.json").read_text() == "old"
    RunDir.prepare(tmp_path, "demo", force=True).write_json("metrics.json", {"a": 1})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"a": 1}


def test_run_dir_refuses_a_folder_it_cannot_write(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="choose another --out"):
        RunDir.prepare(blocker / "sub", "demo")


def test_default_run_dir_is_runs_demo_timestamp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = RunDir.prepare(None, "demo"), RunDir.prepare(None, "demo")
    assert (
        first.path.parent
        == second.path.parent
        == tmp_path.joinpath("runs", "demo").relative_to(tmp_path)
    )
    assert first.path != second.path


def test_json_has_no_nan_and_tensors_become_lists(tmp_path):
    import torch

    run = RunDir.prepare(tmp_path / "out", "demo")
    run.write_json("m.json", {"loss": float("nan"), "w": torch.tensor([[1.0, 2.0]]), "t": (1, 2)})
    assert json.loads((tmp_path / "out" / "m.json").read_text()) == {
        "loss": None,
        "w": [[1.0, 2.0]],
        "t": [1, 2],
    }


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    target.write_text("old")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", disk_full)
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_numpy_arrays_and_scalars_become_json(tmp_path):
    import numpy as np

    run = RunDir.prepare(tmp_path / "out", "demo")
    run.write_json("m.json", {"a": np.array([[1.5, np.nan]]), "n": np.int64(3), "f": np.float32(2)})
    assert json.loads((tmp_path / "out" / "m.json").read_text()) == {
        "a": [[1.5, None]],
        "n": 3,
        "f": 2.0,
    }


def test_an_unknown_key_in_a_list_of_tables_or_an_optional_table_lists_that_tables_keys(tmp_path):
    class Entry(Section):
        name: str
        value: float = 0.0

    class Nested(Section):
        entries: list[Entry] = Field(default_factory=list)
        extra: Entry | None = None

    for text in ('[[entries]]\nname = "a"\nvalu = 1\n', '[extra]\nname = "a"\nvalu = 1\n'):
        with pytest.raises(ConfigError) as error:
            load_config(Nested, write(tmp_path, text))
        assert str(error.value).endswith(
            "unknown key 'valu' in ["
            + ("entries" if "entries" in text else "extra")
            + "] (valid keys: name, value)"
        )
