"""The image demo with a convolutional network: configs/images_cnn.toml, what it writes, the MLP it is
compared with, ∂L/∂pixel, and every data source through it (digits, a CIFAR-10 cache made here, a
folder of images made here). Small runs: the real config is run by hand (docs/images.md).
"""

import json
import pickle
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from bpdemo import ManualSequential, NetworkSpec, twin_of
from bpdemo.agreement import FINITE_DIFFERENCE_TOLERANCE
from bpdemo.datasets.images import CIFAR10_CLASSES, CIFAR10_FOLDER
from bpdemo.gradcheck import numeric_gradient
from bpdemo.infra.cli import run_main
from bpdemo.plots import cnn as cnn_plots
from bpdemo.plots import images as image_plots
from demos.images import main
from tests.test_images import photo_folder

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "images_cnn.toml"
SMALL_CNN = (
    'model.layers=[{type="conv2d", out_channels=3, kernel_size=3, padding=1}, '
    '{type="activation", name="relu"}, {type="maxpool2d", kernel_size=2}, {type="flatten"}, '
    '{type="linear"}]'
)
SMALL_RUN = [
    "--config",
    str(CONFIG),
    "--set",
    SMALL_CNN,
    "--epochs",
    "2",
    "--set",
    "data.per_class=20",
    "--set",
    "train.batch_size=25",
]


def without_figures(monkeypatch) -> None:
    monkeypatch.setattr(image_plots, "figures", lambda *args, **kwargs: {})
    monkeypatch.setattr(cnn_plots, "figures", lambda *args, **kwargs: {})


def run_demo(out: Path, *argv: str) -> dict:
    assert main([*argv, "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn") / "run"
    return out, run_demo(out, *SMALL_RUN, "--quiet")


def test_the_shipped_cnn_config_convolves_the_digits_and_names_the_shapes():
    config = tomllib.loads(CONFIG.read_text())
    layers = [*config["model"]["layers"][:-1], {"type": "linear", "units": 10}]
    spec = NetworkSpec(64, layers, input_shape=(1, 8, 8))
    assert spec.shapes[0] == (1, 8, 8) and spec.shapes[-2] == (256,) and spec.outputs == 10
    assert config["data"]["dataset"] == "digits"


def test_a_cnn_run_writes_the_mlp_beside_it_and_its_figures(small_run):
    out, metrics = small_run
    assert metrics["agreement"]["within_tolerance"] is True
    assert metrics["agreement"]["steps_compared"] == metrics["steps"] == 2 * 6
    mlp = metrics["mlp"]
    assert mlp["sizes"] == [64, 128, 64, 10] and mlp["agreement"]["within_tolerance"] is True
    assert 0 <= mlp["test"]["accuracy"] <= 1
    assert mlp["autograd_test_accuracy"] == mlp["test"]["accuracy"]
    written = {path.name for path in out.iterdir()}
    assert written >= {*image_plots.FIGURES, *cnn_plots.FIGURES}
    walk = metrics["walkthrough"]
    assert walk["max_pixel_gradient_difference"] <= 1e-12 * walk["max_pixel_gradient"]


def test_pixel_gradients_of_a_cnn_match_finite_differences_and_autograd():
    spec = NetworkSpec(
        2 * 6 * 6,
        [
            {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1},
            {"type": "activation", "name": "tanh"},
            {"type": "avgpool2d", "kernel_size": 3, "stride": 1},
            {"type": "flatten"},
            {"type": "linear", "units": 4},
        ],
        loss="cross_entropy",
        dtype="float64",
        input_shape=(2, 6, 6),
        seed=3,
    )
    model = ManualSequential(spec)
    x = torch.randn(3, 72, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    target = torch.tensor([0, 3, 1])
    given = model.input_gradient(x, target)
    nudged = x.clone()

    def loss() -> float:
        return float(model.loss(model.forward(nudged), target))

    numeric = numeric_gradient(loss, nudged)
    tolerance = FINITE_DIFFERENCE_TOLERANCE * float(numeric.abs().max())
    assert float((given - numeric).abs().max()) < tolerance
    twin = twin_of(model)
    leaf = x.clone().requires_grad_(True)
    twin.loss(twin(leaf), target).backward()
    assert float((given - leaf.grad).abs().max()) <= 1e-12 * float(leaf.grad.abs().max())


def test_two_processes_give_the_single_process_numbers_for_a_cnn(tmp_path, monkeypatch):
    without_figures(monkeypatch)
    one = run_demo(tmp_path / "single", *SMALL_RUN, "--quiet")
    command = [sys.executable, "-m", "demos.images", *SMALL_RUN, "--processes", "2", "--quiet"]
    done = subprocess.run(
        [*command, "--out", str(tmp_path / "two")], cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["distributed"]["world_size"] == 2
    for model in ("manual", "autograd"):
        assert abs(two[model]["test"]["loss"] - one[model]["test"]["loss"]) <= 1e-9
    assert abs(two["mlp"]["test"]["loss"] - one["mlp"]["test"]["loss"]) <= 1e-9


def test_a_cifar10_cache_goes_through_the_cnn(tmp_path, monkeypatch):
    """A stand-in cache in torchvision's format: 12 random 3×32×32 images of each class."""
    without_figures(monkeypatch)
    folder = tmp_path / CIFAR10_FOLDER
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        data = rng.integers(0, 256, size=(20, 3 * 32 * 32), dtype=np.uint8)
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": list(range(10)) * 2}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CIFAR10_CLASSES)}))
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args: True)
    monkeypatch.setattr("bpdemo.datasets.CIFAR10_CACHE", tmp_path)
    metrics = run_demo(
        tmp_path / "run",
        *("--config", str(CONFIG), "--set", SMALL_CNN, "--dataset", "cifar10"),
        *("--epochs", "1", "--quiet"),
    )
    assert metrics["dataset"]["image_shape"] == [3, 32, 32]
    assert metrics["agreement"]["within_tolerance"] is True
    assert metrics["mlp"]["sizes"] == [3 * 32 * 32, 128, 64, 3]


def test_a_folder_of_images_goes_through_the_cnn(tmp_path, monkeypatch):
    without_figures(monkeypatch)
    photo_folder(tmp_path / "photos", per_class=4)
    metrics = run_demo(
        tmp_path / "run",
        *("--config", str(CONFIG), "--set", SMALL_CNN, "--root", str(tmp_path / "photos")),
        *("--image-size", "6", "--epochs", "2", "--quiet"),
    )
    assert metrics["dataset"]["image_shape"] == [3, 6, 6]
    assert metrics["agreement"]["within_tolerance"] is True


def test_a_kernel_larger_than_the_images_is_one_line_naming_the_layer(tmp_path, capsys):
    layers = 'model.layers=[{type="conv2d", out_channels=2, kernel_size=9}, {type="flatten"}, {type="linear"}]'
    out = tmp_path / "run"
    assert run_main(main, ["--config", str(CONFIG), "--set", layers, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "layers[0] (conv2d): kernel 9×9 is larger than its input" in err
    assert not out.exists()
