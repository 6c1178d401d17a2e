"""Configuration files, `--set` overrides, the one error path, and run folders: claimed, locked,
replaced with --force, written atomically."""

import json
import os

import numpy as np
import pytest
from pydantic import Field

import bpdemo.bench.__main__ as bench_cli
from bpdemo.infra import outputs
from bpdemo.infra.cli import common_parser, load_demo_config, run_main
from bpdemo.infra.config import Section, TrainSection, dump_config, load_config
from bpdemo.infra.errors import ConfigError, UsageError
from bpdemo.infra.outputs import LOCK, MANIFEST, RunDir, atomic_write
from bpdemo.optim import OptimizerSpec
from bpdemo.spec import ModelSection
from demos.gradients import main as gradients_main
from demos.house_prices import main as houses_main
from demos.images import main as images_main
from tests.conftest import QUICK_GRADIENTS, QUICK_HOUSES, QUICK_IMAGES, one_line, run_cli


class DemoConfig(Section):
    seed: int = 0
    model: ModelSection = ModelSection()
    optimizer: OptimizerSpec = OptimizerSpec()
    train: TrainSection = TrainSection()


def write(tmp_path, text: str):
    path = tmp_path / "demo.toml"
    path.write_text(text)
    return path


def test_a_config_file_and_overrides_are_read_and_validated(tmp_path):
    path = write(tmp_path, '[optimizer]\nname = "sgd"\nlr = 0.5\n[train]\nepochs = 3\n')
    config = load_config(DemoConfig, path, ["optimizer.momentum=0.9", "model.hidden=[8, 4]"])
    assert config.optimizer.lr == 0.5 and config.optimizer.momentum == 0.9
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


@pytest.mark.parametrize(
    ("main", "argv", "message"),
    [
        (images_main, ["--dataset", "digits", "--root", "photos"], "--root (data.root) is for "),
        (
            images_main,
            ["--set", 'data.root="photos"'],
            "--root (data.root) is for --dataset folder",
        ),
        (images_main, ["--image-size", "24"], "--image-size (data.image_size) is for --dataset"),
        (images_main, ["--root", "p", "--download"], "--download (data.download) is for --dataset"),
        (houses_main, ["--dataset", "synthetic", "--csv", "f.csv"], "--csv (data.csv) is for"),
        (houses_main, ["--dataset", "ames", "--set", "data.houses=50"], "data.houses (50) is"),
    ],
    ids=["root-digits", "root-key", "size-digits", "download-folder", "csv-synthetic", "houses"],
)
def test_a_setting_the_data_source_does_not_use_is_refused(tmp_path, capsys, main, argv, message):
    out = tmp_path / "run"
    status, stdout, stderr = run_cli(main, [*argv, "--quiet", "--out", str(out)], capsys)
    assert status == 2 and stdout == ""
    line = one_line(stderr)
    assert message in line and "the data source is" in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("main", "argv", "message"),
    [
        (houses_main, ["--seed", "-1"], "--seed: -1 is outside the range 0 to 4,294,967,295"),
        (houses_main, ["--seed", str(2**64)], "outside the range 0 to 4,294,967,295"),
        (houses_main, ["--set", "seed=-1"], "seed: Input should be from 0 to 4,294,967,295"),
        (houses_main, ["--threads", "100000"], "--threads: 100000 is outside the range 1 to 256"),
        (houses_main, ["--set", "model.hidden=[200000,200000]"], "from 1 to 65,536"),
        (houses_main, ["--set", "model.hidden=[60000,60000]"], "the range is 1 to 20,000,000"),
        (houses_main, ["--set", "data.houses=10000000000"], "from 1 to 1,000,000"),
        (images_main, ["--root", "p", "--image-size", "20000"], "image_size: Input should be from"),
        (gradients_main, ["--set", "data.rows=1"], "[data] rows: Input should be greater than"),
        (
            gradients_main,
            ["--set", "model.width=100000"],
            "width: Input should be from 1 to 65,536",
        ),
        (
            bench_cli.main,
            ["--threads", "100000"],
            "--threads: 100000 is outside the range 1 to 256",
        ),
    ],
    ids=[
        "seed-negative",
        "seed-huge",
        "seed-key",
        "threads",
        "widths",
        "weights",
        "houses",
        "image-size",
        "rows",
        "gradients-width",
        "bench-threads",
    ],
)
def test_a_number_outside_its_range_exits_2_with_the_range(tmp_path, capsys, main, argv, message):
    out = tmp_path / "run"
    status, stdout, stderr = run_cli(main, [*argv, "--out", str(out)], capsys)
    assert status == 2 and stdout == ""
    assert message in one_line(stderr)
    assert not out.exists()


@pytest.mark.parametrize(
    ("main", "argv"),
    [(houses_main, QUICK_HOUSES), (images_main, QUICK_IMAGES), (gradients_main, QUICK_GRADIENTS)],
    ids=["houses", "images", "gradients"],
)
def test_quiet_prints_nothing(tmp_path, capsys, main, argv):
    status, stdout, stderr = run_cli(main, [*argv, "--out", str(tmp_path / "run")], capsys)
    assert (status, stdout, stderr) == (0, "", "")


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


@pytest.mark.parametrize("main", [houses_main, bench_cli.main], ids=["demo", "bench"])
def test_a_flag_is_not_abbreviated(capsys, main):
    with pytest.raises(SystemExit) as exit_info:
        main(["--deb"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --deb" in one_line(capsys.readouterr().err)


def test_running_out_of_memory_is_one_line_and_exit_1(capsys):
    def main(argv):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        )

    assert run_main(main, []) == 1
    assert "not enough memory for this run" in one_line(capsys.readouterr().err)


def test_numpy_and_library_warnings_never_reach_stderr(capsys):
    import warnings

    def main(argv):
        np.log(np.array([-1.0, 0.0]))  # numpy: invalid value, divide by zero
        warnings.warn("a library's warning", UserWarning, stacklevel=1)
        return 0

    assert run_main(main, []) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("rank", "lines"), [("0", 1), ("1", 0)])
def test_under_torchrun_only_rank_0_prints_and_the_status_stays_2(
    tmp_path, capsys, monkeypatch, rank, lines
):
    monkeypatch.setenv("RANK", rank)
    status, _, stderr = run_cli(houses_main, ["--set", "train.epoch=3"], capsys)
    assert status == 2 and stderr.count("\n") == lines
    with pytest.raises(SystemExit) as exit_info:
        houses_main(["--no-such-flag"])
    assert exit_info.value.code == 2 and capsys.readouterr().err.count("\n") == lines


# -- run folders: claimed when a run starts, let go of when it ends ----------------------------------
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


def test_a_folder_in_use_by_a_live_run_is_refused_at_once_and_left_untouched(tmp_path, capsys):
    out = tmp_path / "run"
    first = RunDir.prepare(out, "worked_example")  # a run that is still going
    first.write_text("trace.json", "{}\n")
    for main, argv in ((houses_main, QUICK_HOUSES), (bench_cli.main, ["--quick", "--quiet"])):
        for force in ([], ["--force"]):
            status, stdout, stderr = run_cli(main, [*argv, *force, "--out", str(out)], capsys)
            assert status == 2 and stdout == ""
            assert f"output folder {out} is in use by another run (worked_example" in one_line(
                stderr
            )
    assert sorted(p.name for p in out.iterdir()) == sorted([LOCK, MANIFEST, "trace.json"])
    assert (out / "trace.json").read_text() == "{}\n"
    first.close()
    assert not (out / LOCK).exists()


def test_the_lock_of_a_killed_run_is_taken_over_only_with_force(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text(json.dumps({"demo": "images", "pid": 4242}))  # held by no process
    (out / "notes.txt").write_text("seed = 0\n")
    status, _, stderr = run_cli(houses_main, [*QUICK_HOUSES, "--out", str(out)], capsys)
    assert status == 2
    assert "holds what a run left when it was killed; add --force" in one_line(stderr)
    status, _, stderr = run_cli(houses_main, [*QUICK_HOUSES, "--force", "--out", str(out)], capsys)
    assert status == 0, stderr
    assert not (out / LOCK).exists() and (out / "metrics.json").exists()


def test_run_dir_close_lets_go_and_a_second_claim_in_one_process_is_refused(tmp_path):
    first = RunDir.prepare(tmp_path / "out", "demo")
    with pytest.raises(UsageError, match="is in use by another run"):
        RunDir.prepare(tmp_path / "out", "demo", force=True)
    first.close()
    assert first not in outputs.open_runs()
    RunDir.prepare(tmp_path / "out", "demo", force=True).close()


def test_the_folder_is_claimed_before_the_data_is_read(tmp_path, capsys):
    out = tmp_path / "run"
    held = RunDir.prepare(out, "house_prices")  # another run, still going
    try:
        status, _, stderr = run_cli(
            houses_main, ["--csv", "missing.csv", "--out", str(out)], capsys
        )
    finally:
        held.close()
    assert status == 2 and "is in use by another run" in one_line(stderr)  # not the CSV's error


def test_a_mistake_in_the_data_leaves_no_folder_behind(tmp_path, capsys):
    out = tmp_path / "new"
    status, _, _ = run_cli(houses_main, ["--csv", "missing.csv", "--out", str(out)], capsys)
    assert status == 2 and not out.exists()


def test_an_output_name_too_long_for_the_file_system_exits_2(tmp_path, capsys):
    status, _, stderr = run_cli(
        houses_main, [*QUICK_HOUSES, "--out", str(tmp_path / ("x" * 300))], capsys
    )
    assert status == 2 and "choose another --out" in one_line(stderr)


def test_force_removes_the_previous_runs_files_and_keeps_the_users(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(houses_main, [*QUICK_HOUSES, "--out", str(out)], capsys)[0] == 0
    assert (out / "loss.png").exists()
    (out / "notes.txt").write_text("mine")
    diverge = ["--set", 'optimizer.name="sgd"', "--set", "optimizer.lr=1e30"]
    status, _, stderr = run_cli(
        houses_main, [*QUICK_HOUSES, *diverge, "--force", "--out", str(out)], capsys
    )
    assert status == 1 and "diverged" in one_line(stderr)
    assert not list(out.glob("*.png"))  # the old figures are gone with the old run
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "metrics.json").read_text())["diverged_at_step"] is not None
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["files"] == ["config.toml", "history.csv", "steps.csv", "metrics.json"]


SMALL = ["--set", "data.houses=100", "--epochs", "1", "--quiet"]


def test_force_with_a_mistake_in_the_data_keeps_the_previous_runs_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(houses_main, [*SMALL, "--out", str(out)], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = ["--csv", "missing.csv", "--features", "a,b", "--target", "price", "--force"]
    status, _, stderr = run_cli(houses_main, [*bad, "--out", str(out)], capsys)
    assert status == 2 and "missing.csv not found" in one_line(stderr)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_manifest_never_removes_anything_outside_the_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "precious.txt").write_text("keep")
    (out / MANIFEST).write_text(json.dumps({"files": ["../precious.txt", "..", "/etc/passwd"]}))
    RunDir.prepare(out, "demo", force=True).close()
    assert (tmp_path / "precious.txt").read_text() == "keep"


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_files_are_created_with_the_users_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        run_dir = RunDir.prepare(tmp_path / "out", "demo")
        path = run_dir.write_json("metrics.json", {"a": 1})
        run_dir.close()
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == mode
    assert (tmp_path / "out" / MANIFEST).stat().st_mode & 0o777 == mode


def test_a_full_disk_names_the_file(tmp_path, capsys, monkeypatch):
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(28, "No space left on device")

    def fdopen(descriptor, *args, **kwargs):
        return FullDisk(real_fdopen(descriptor, *args, **kwargs))

    out = tmp_path / "run"
    run_dir = RunDir.prepare(out, "demo")
    monkeypatch.setattr(os, "fdopen", fdopen)

    def main(argv):
        run_dir.write_json("metrics.json", {"a": 1})

    assert run_main(main, []) == 1
    line = one_line(capsys.readouterr().err)
    assert line == f"error: No space left on device: {out / 'metrics.json'}\n"
    monkeypatch.undo()
    assert not list(out.glob("*.tmp")) and not list(out.glob(".metrics*"))


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
