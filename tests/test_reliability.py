"""A careless or hostile user: what each mistake or mishap gives, numbered by kind:

 1 concurrent runs into one folder    2, 3 interruptions (Ctrl-C, SIGTERM) in every phase
 4 contradictory flags                5 image folders with links and huge images
 6 values that overflow               7 --force and a previous run's files
 8, 9 numbers outside their ranges    10 --quiet and library warnings
 11 file modes                        12 long names, a full disk, a bad Ames CSV, abbreviations, torchrun
 13 wrong tensors given from Python

Interruptions here are real signals, sent by the process to itself from inside the phase under test,
so they arrive where a user's Ctrl-C would. tests/test_interruptions.py sends them from outside.
"""

import contextlib
import json
import os
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import bpdemo.bench.__main__ as bench_cli
from bpdemo import AutogradMLP, ManualMLP, MLPSpec, OptimizerSpec, SideBySide, baselines
from bpdemo.datasets.image_folder import load_folder
from bpdemo.infra import outputs
from bpdemo.infra.cli import run_main
from bpdemo.infra.errors import UsageError
from bpdemo.infra.outputs import LOCK, MANIFEST, RunDir
from demos.gradients import main as gradients_main
from demos.house_prices import main as houses_main
from demos.images import main as images_main

HOUSES = ["--set", "data.houses=300", "--epochs", "3", "--quiet"]
IMAGES = ["--set", "data.per_class=20", "--set", "model.hidden=[16]", "--epochs", "2", "--quiet"]
GRADIENTS = [
    "--set",
    "data.rows=64",
    "--set",
    'grid.activations=["tanh", "relu"]',
    "--set",
    'grid.inits=["he"]',
    "--set",
    "grid.depths=[2,3]",
    "--set",
    "report.focus_depth=2",
    "--epochs",
    "1",
    "--quiet",
]


def run(main, argv, capsys):
    """The command as `sys.exit(run_main(main))` runs it: (exit status, stdout, stderr)."""
    try:
        status = run_main(main, argv)
    except SystemExit as exit_info:  # argparse's own exit
        status = exit_info.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line(stderr: str) -> str:
    assert stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
    assert "Traceback" not in stderr and "Warning" not in stderr
    return stderr


def signal_self(signum: int) -> None:
    """What the user's Ctrl-C (SIGINT) or a `kill` (SIGTERM) does, at this very point."""
    os.kill(os.getpid(), signum)


def complete_files(folder: Path) -> list[str]:
    """Every file in `folder` is whole and parses; no temporary file is left. Returns the names."""
    import csv
    import tomllib

    names = sorted(p.name for p in folder.iterdir())
    assert not [name for name in names if name.endswith(".tmp")]
    for name in names:
        path = folder / name
        if name.endswith(".json"):
            json.loads(path.read_text())
        elif name.endswith(".csv"):
            rows = list(csv.reader(path.read_text().splitlines()))
            assert rows and all(len(row) == len(rows[0]) for row in rows), name
        elif name.endswith(".toml"):
            tomllib.loads(path.read_text())
        elif name.endswith(".png"):
            with Image.open(path) as image:
                image.verify()
    return names


# -- 1. concurrent runs into one folder -----------------------------------------------------------------
def test_1_a_folder_in_use_by_a_live_run_is_refused_at_once_and_left_untouched(tmp_path, capsys):
    out = tmp_path / "run"
    first = RunDir.prepare(out, "worked_example")  # a run that is still going
    first.write_text("trace.json", "{}\n")
    for main, argv in ((houses_main, HOUSES), (bench_cli.main, ["--quick", "--quiet"])):
        for force in ([], ["--force"]):
            status, stdout, stderr = run(main, [*argv, *force, "--out", str(out)], capsys)
            assert status == 2 and stdout == ""
            assert f"output folder {out} is in use by another run (worked_example" in one_line(
                stderr
            )
    assert sorted(p.name for p in out.iterdir()) == sorted([LOCK, MANIFEST, "trace.json"])
    assert (out / "trace.json").read_text() == "{}\n"
    first.close()
    assert not (out / LOCK).exists()


def test_1_the_lock_of_a_killed_run_is_taken_over_only_with_force(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text(json.dumps({"demo": "images", "pid": 4242}))  # held by no process
    (out / "notes.txt").write_text("seed = 0\n")
    status, _, stderr = run(houses_main, [*HOUSES, "--out", str(out)], capsys)
    assert status == 2
    assert "holds what a run left when it was killed; add --force" in one_line(stderr)
    status, _, stderr = run(houses_main, [*HOUSES, "--force", "--out", str(out)], capsys)
    assert status == 0, stderr
    assert not (out / LOCK).exists() and (out / "metrics.json").exists()


# -- 2 and 3. interruptions keep what was finished ----------------------------------------------------
def test_2_ctrl_c_in_one_gradients_setting_stops_the_study(tmp_path, capsys, monkeypatch):
    import bpdemo.health as health

    original, calls = health.fit, []

    def fit_then_ctrl_c(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second setting's training
            signal_self(signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(health, "fit", fit_then_ctrl_c)
    out = tmp_path / "run"
    status, stdout, stderr = run(gradients_main, [*GRADIENTS, "--out", str(out)], capsys)
    assert status == 130 and stdout == ""
    assert "interrupted (Ctrl-C, during study)" in one_line(stderr)
    assert len(calls) == 2  # no setting ran after it
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["phase"] == "study"
    assert len(metrics["settings"]) == 1  # the setting that was finished
    assert complete_files(out) == sorted([MANIFEST, "config.toml", "metrics.json"])


def test_2_ctrl_c_that_scikit_learn_swallows_still_stops_the_run(tmp_path, capsys, monkeypatch):
    from sklearn.neural_network import MLPRegressor

    original, epochs = MLPRegressor._update_no_improvement_count, []

    def epoch_then_ctrl_c(self, *args, **kwargs):
        epochs.append(1)
        if len(epochs) == 3:  # inside fit's own `except KeyboardInterrupt`
            signal_self(signal.SIGINT)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MLPRegressor, "_update_no_improvement_count", epoch_then_ctrl_c)
    out = tmp_path / "run"
    status, _, stderr = run(houses_main, [*HOUSES, "--out", str(out)], capsys)
    assert status == 130
    assert "(Ctrl-C, during baselines)" in one_line(stderr)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["phase"] == "baselines"
    assert metrics["epochs_completed"] == 3 and len(metrics["history"]) == 4  # training was kept
    assert "manual" in metrics and "autograd" in metrics  # and so were their results
    names = complete_files(out)
    assert {"history.csv", "steps.csv"} <= set(names) and not [n for n in names if ".png" in n]


def test_2_a_signal_that_any_library_swallows_still_ends_the_command_non_zero(capsys):
    def main(argv):
        with contextlib.suppress(KeyboardInterrupt):  # a library that carries on after Ctrl-C
            signal_self(signal.SIGTERM)
        return 0

    assert run_main(main, []) == 143
    line = one_line(capsys.readouterr().err)
    assert line == "error: interrupted (SIGTERM) as the command ended; what it wrote is complete\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_3_an_interruption_while_loading_data_writes_nothing(tmp_path, capsys, monkeypatch, signum):
    import bpdemo.datasets.houses as houses

    original = houses.synthetic_houses

    def load_then_signal(*args, **kwargs):
        frame = original(*args, **kwargs)
        signal_self(signum)
        return frame

    monkeypatch.setattr(houses, "synthetic_houses", load_then_signal)
    out = tmp_path / "run"
    status, _, stderr = run(houses_main, [*HOUSES, "--out", str(out)], capsys)
    assert status == 128 + signum
    how = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert f"interrupted ({how}, during data); nothing was written" in one_line(stderr)
    assert not out.exists()


def test_3_sigterm_during_the_baselines_keeps_the_finished_training(tmp_path, capsys, monkeypatch):
    original = baselines.fit_timed

    def fit_after_sigterm(*args, **kwargs):
        signal_self(signal.SIGTERM)
        return original(*args, **kwargs)

    monkeypatch.setattr(baselines, "fit_timed", fit_after_sigterm)
    out = tmp_path / "run"
    status, _, stderr = run(images_main, [*IMAGES, "--out", str(out)], capsys)
    assert status == 143 and "(SIGTERM, during " in one_line(stderr)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["signal"] == "SIGTERM"
    assert metrics["epochs_completed"] == 2
    assert {"config.toml", "history.csv", "steps.csv", "metrics.json"} <= set(complete_files(out))


def test_3_an_interruption_during_the_figures_keeps_those_drawn(tmp_path, capsys, monkeypatch):
    import bpdemo.plots.houses as plots

    original, drawn = plots.predicted_vs_actual, []

    def draw_then_ctrl_c(*args, **kwargs):
        drawn.append(1)
        signal_self(signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(plots, "predicted_vs_actual", draw_then_ctrl_c)
    out = tmp_path / "run"
    status, _, stderr = run(houses_main, [*HOUSES, "--out", str(out)], capsys)
    assert status == 130 and "(Ctrl-C, during figures)" in one_line(stderr)
    names = complete_files(out)
    assert {"loss.png", "gradient_difference.png"} <= set(names)  # drawn before it
    assert "predicted_vs_actual.png" not in names and "errors.png" not in names
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["phase"] == "figures"
    assert metrics["baselines"]["linear"]["test"]["r2"] > 0  # the full results, kept


def test_3_the_benchmark_interrupted_keeps_what_it_measured(tmp_path, capsys, monkeypatch):
    from bpdemo.bench import steps

    monkeypatch.setattr(bench_cli, "QUICK", _smoke_settings())
    monkeypatch.setattr(steps, "scaling", lambda *a, **k: signal_self(signal.SIGTERM))
    out = tmp_path / "run"
    status, stdout, stderr = run(bench_cli.main, ["--quick", "--quiet", "--out", str(out)], capsys)
    assert status == 143 and stdout == ""
    assert "(SIGTERM, during scaling)" in one_line(stderr)
    results = json.loads((out / "bench.json").read_text())
    assert results["interrupted"] is True and results["phase"] == "scaling"
    assert len(results["step_time"]) == 4 and "scaling" not in results
    assert complete_files(out) == sorted([MANIFEST, "bench.json"])


def _smoke_settings():
    from bpdemo.bench import QUICK, Settings

    return Settings(**{**QUICK.__dict__, "repeats": 1, "min_block_seconds": 0.001})


# -- 4. contradictions are errors -----------------------------------------------------------------------
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
def test_4_a_setting_the_data_source_does_not_use_is_refused(tmp_path, capsys, main, argv, message):
    out = tmp_path / "run"
    status, stdout, stderr = run(main, [*argv, "--quiet", "--out", str(out)], capsys)
    assert status == 2 and stdout == ""
    line = one_line(stderr)
    assert message in line and "the data source is" in line
    assert not out.exists()


# -- 5. image folders: links and sizes ------------------------------------------------------------------
def photo_folder(root: Path, per_class: int = 6) -> Path:
    for name, colour in (("dog", (255, 0, 0)), ("cat", (0, 0, 255))):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (6, 6), colour).save(root / name / f"{i}.png")
    return root


def test_5_links_in_an_image_folder_are_not_followed(tmp_path):
    root = photo_folder(tmp_path / "photos")
    (root / "dog" / "loop").symlink_to("..")  # every image again, under every class
    outside = tmp_path / "elsewhere.png"
    Image.new("RGB", (6, 6), (0, 255, 0)).save(outside)
    (root / "cat" / "outside.png").symlink_to(outside)
    (root / "cat" / "again.png").symlink_to(root / "cat" / "0.png")
    data = load_folder(root, image_size=4)
    assert data.rows == 12 and np.bincount(data.y).tolist() == [6, 6]
    assert any("skipped 3 links" in note for note in data.notes)


def png_header(width: int, height: int) -> bytes:
    """A PNG file that claims to be width x height pixels (its pixel data is a few bytes only)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(bytes(16))
    signature = bytes([0x89]) + b"PNG" + bytes([13, 10, 26, 10])
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [10_000, 14_000])
def test_5_an_oversized_image_is_one_clear_error(tmp_path, capsys, side):
    root = photo_folder(tmp_path / "photos")
    (root / "dog" / "huge.png").write_bytes(png_header(side, side))
    out = tmp_path / "run"
    status, _, stderr = run(images_main, ["--root", str(root), "--out", str(out)], capsys)
    assert status == 2
    line = one_line(stderr)
    assert "huge.png is " in line and "images over 89,478,485 pixels are refused" in line
    assert not out.exists()


# -- 6. huge values are named as such -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("column", "scale"), [("price", 1e300), ("living_area_sqft", 1e304)], ids=["price", "feature"]
)
def test_6_values_too_large_to_standardise_are_a_data_error(tmp_path, capsys, column, scale):
    from bpdemo.datasets.houses import synthetic_houses

    table = synthetic_houses(200, 0)
    table[column] = table[column] * scale
    csv = tmp_path / "houses.csv"
    table.to_csv(csv, index=False)
    argv = ["--csv", str(csv), "--features", "bedrooms,living_area_sqft", "--target", "price"]
    status, _, stderr = run(houses_main, [*argv, "--quiet", "--out", str(tmp_path / "r")], capsys)
    assert status == 2
    line = one_line(stderr)
    assert f"column {column!r} is too large to standardise" in line and "overflow" in line


def test_6_initial_weights_that_overflow_are_not_blamed_on_the_learning_rate(tmp_path, capsys):
    argv = [*HOUSES, "--set", "model.init_scale=1e300", "--out", str(tmp_path / "r")]
    status, _, stderr = run(houses_main, argv, capsys)
    assert status == 1
    line = one_line(stderr)
    assert "before any update: the inputs or the initial weights overflow in float32" in line
    assert "learning rate" not in line


# -- 7. --force keeps nothing stale ---------------------------------------------------------------------
def test_7_force_removes_the_previous_runs_files_and_keeps_the_users(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(houses_main, [*HOUSES, "--out", str(out)], capsys)[0] == 0
    assert (out / "loss.png").exists()
    (out / "notes.txt").write_text("mine")
    diverge = ["--set", 'optimizer.name="sgd"', "--set", "optimizer.lr=1e30"]
    status, _, stderr = run(houses_main, [*HOUSES, *diverge, "--force", "--out", str(out)], capsys)
    assert status == 1 and "diverged" in one_line(stderr)
    assert not list(out.glob("*.png"))  # the old figures are gone with the old run
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "metrics.json").read_text())["diverged_at_step"] is not None
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["files"] == ["config.toml", "history.csv", "steps.csv", "metrics.json"]


# -- 8 and 9. every number has a range ------------------------------------------------------------------
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
def test_8_a_number_outside_its_range_exits_2_with_the_range(tmp_path, capsys, main, argv, message):
    out = tmp_path / "run"
    status, stdout, stderr = run(main, [*argv, "--out", str(out)], capsys)
    assert status == 2 and stdout == ""
    assert message in one_line(stderr)
    assert not out.exists()


def test_8_running_out_of_memory_is_one_line_and_exit_1(capsys):
    def main(argv):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        )

    assert run_main(main, []) == 1
    assert "not enough memory for this run" in one_line(capsys.readouterr().err)


# -- 10. --quiet is quiet, and library warnings stay off stderr --------------------------------------------
@pytest.mark.parametrize(
    ("main", "argv"),
    [(houses_main, HOUSES), (images_main, IMAGES), (gradients_main, GRADIENTS)],
    ids=["houses", "images", "gradients"],
)
def test_10_quiet_prints_nothing(tmp_path, capsys, main, argv):
    status, stdout, stderr = run(main, [*argv, "--out", str(tmp_path / "run")], capsys)
    assert (status, stdout, stderr) == (0, "", "")


def test_10_numpy_and_library_warnings_never_reach_stderr(capsys):
    import warnings

    def main(argv):
        np.log(np.array([-1.0, 0.0]))  # numpy: invalid value, divide by zero
        warnings.warn("a library's warning", UserWarning, stacklevel=1)
        return 0

    assert run_main(main, []) == 0
    assert capsys.readouterr().err == ""


# -- 11. files get the user's umask ---------------------------------------------------------------------
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_11_files_are_created_with_the_users_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        run_dir = RunDir.prepare(tmp_path / "out", "demo")
        path = run_dir.write_json("metrics.json", {"a": 1})
        run_dir.close()
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == mode
    assert (tmp_path / "out" / MANIFEST).stat().st_mode & 0o777 == mode


# -- 12. the smaller ones -------------------------------------------------------------------------------
def test_12_an_output_name_too_long_for_the_file_system_exits_2(tmp_path, capsys):
    status, _, stderr = run(houses_main, [*HOUSES, "--out", str(tmp_path / ("x" * 300))], capsys)
    assert status == 2 and "choose another --out" in one_line(stderr)


def test_12_a_full_disk_names_the_file(tmp_path, capsys, monkeypatch):
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


def test_12_a_bad_ames_csv_is_refused_before_any_benchmarking_and_leaves_no_folder(
    tmp_path, capsys, monkeypatch
):
    from bpdemo.bench import steps

    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    monkeypatch.setattr(steps, "step_time", lambda *a, **k: pytest.fail("measured"))
    out = tmp_path / "run"
    status, _, stderr = run(bench_cli.main, ["--ames", str(bad), "--out", str(out)], capsys)
    assert status == 2 and "has no column 'Overall Qual'" in one_line(stderr)
    assert not out.exists()


@pytest.mark.parametrize("main", [houses_main, bench_cli.main], ids=["demo", "bench"])
def test_12_a_flag_is_not_abbreviated(capsys, main):
    with pytest.raises(SystemExit) as exit_info:
        main(["--deb"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --deb" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize(("rank", "lines"), [("0", 1), ("1", 0)])
def test_12_under_torchrun_only_rank_0_prints_and_the_status_stays_2(
    tmp_path, capsys, monkeypatch, rank, lines
):
    monkeypatch.setenv("RANK", rank)
    status, _, stderr = run(houses_main, ["--set", "train.epoch=3"], capsys)
    assert status == 2 and stderr.count("\n") == lines
    with pytest.raises(SystemExit) as exit_info:
        houses_main(["--no-such-flag"])
    assert exit_info.value.code == 2 and capsys.readouterr().err.count("\n") == lines


# -- 13. the public API says what a model takes ---------------------------------------------------------
SPEC64 = MLPSpec([3, 4, 1], ["tanh", "identity"], dtype="float64")


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (
            torch.randn(5, 3),
            "got float32 of shape (5, 3) on cpu: convert it with .to(torch.float64)",
        ),
        (torch.randn(3, dtype=torch.float64), "got float64 of shape (3,)"),
        (torch.ones(5, 3, dtype=torch.long), "got int64 of shape (5, 3)"),
        (torch.randn(5, 4, dtype=torch.float64), "got float64 of shape (5, 4)"),
        ([[1.0, 2.0, 3.0]], "got a list: make it a tensor"),
    ],
    ids=["float32", "one-dimensional", "integer", "wrong-width", "list"],
)
def test_13_inputs_a_model_cannot_take_are_refused_with_what_it_takes(x, message):
    y = torch.zeros(5, 1, dtype=torch.float64)
    models = [ManualMLP(SPEC64).forward, AutogradMLP(SPEC64).forward]
    models += [lambda x: ManualMLP(SPEC64).loss_and_grads(x, y)]
    models += [lambda x: AutogradMLP(SPEC64).loss_and_grads(x, y)]
    models += [lambda x: SideBySide(SPEC64, OptimizerSpec("sgd", lr=0.1)).step(x, y)]
    for call in models:
        with pytest.raises(ValueError) as error:
            call(x)
        text = str(error.value)
        assert text.startswith("this model takes float64 inputs of shape (N, 3) on cpu; ")
        assert message in text


def test_13_labels_of_the_wrong_type_are_refused_with_what_the_loss_takes():
    spec = MLPSpec([3, 4], ["identity"], loss="cross_entropy", dtype="float64")
    x = torch.randn(5, 3, dtype=torch.float64)
    for labels in (torch.zeros(5, dtype=torch.float64), torch.zeros(5, 1, dtype=torch.long)):
        for model in (ManualMLP(spec), AutogradMLP(spec)):
            with pytest.raises(ValueError, match=r"takes one class label per row: torch.long"):
                model.loss_and_grads(x, labels)
    with pytest.raises(ValueError, match="takes float64 targets of shape \\(5, 1\\)"):
        ManualMLP(SPEC64).loss_and_grads(x, torch.zeros(5, 1))


def test_13_the_check_keeps_the_step_cheap():
    import timeit

    from bpdemo.spec import check_input

    x = torch.randn(1, 3, dtype=torch.float64)
    seconds = min(timeit.repeat(lambda: check_input(SPEC64, x), number=2000, repeat=5)) / 2000
    assert seconds < 5e-6  # a few attribute comparisons, against a step of tens of microseconds


def test_run_dir_close_lets_go_and_a_second_claim_in_one_process_is_refused(tmp_path):
    first = RunDir.prepare(tmp_path / "out", "demo")
    with pytest.raises(UsageError, match="is in use by another run"):
        RunDir.prepare(tmp_path / "out", "demo", force=True)
    first.close()
    assert first not in outputs.open_runs()
    RunDir.prepare(tmp_path / "out", "demo", force=True).close()


def test_a_manifest_never_removes_anything_outside_the_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "precious.txt").write_text("keep")
    (out / MANIFEST).write_text(json.dumps({"files": ["../precious.txt", "..", "/etc/passwd"]}))
    RunDir.prepare(out, "demo", force=True).close()
    assert (tmp_path / "precious.txt").read_text() == "keep"


# -- a folder is claimed when the run starts, and a mistake found after costs nothing ----------------
SMALL = ["--set", "data.houses=100", "--epochs", "1", "--quiet"]


def test_1_the_folder_is_claimed_before_the_data_is_read(tmp_path, capsys):
    out = tmp_path / "run"
    held = RunDir.prepare(out, "house_prices")  # another run, still going
    try:
        status, _, stderr = run(houses_main, ["--csv", "missing.csv", "--out", str(out)], capsys)
    finally:
        held.close()
    assert status == 2 and "is in use by another run" in one_line(stderr)  # not the CSV's error


def test_7_force_with_a_mistake_in_the_data_keeps_the_previous_runs_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(houses_main, [*SMALL, "--out", str(out)], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = ["--csv", "missing.csv", "--features", "a,b", "--target", "price", "--force"]
    status, _, stderr = run(houses_main, [*bad, "--out", str(out)], capsys)
    assert status == 2 and "missing.csv not found" in one_line(stderr)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_mistake_in_the_data_leaves_no_folder_behind(tmp_path, capsys):
    out = tmp_path / "new"
    status, _, _ = run(houses_main, ["--csv", "missing.csv", "--out", str(out)], capsys)
    assert status == 2 and not out.exists()
