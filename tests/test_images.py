"""The image demo: its data sources, the dog image example's one-image step, and what a run writes.

Data come from scikit-learn's bundled digits or from small images each test writes itself; no test
touches the network (CIFAR-10's download is made to fail before it leaves the machine).
"""

import contextlib
import io
import json
import pickle
import struct
import tomllib
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bpdemo import MLPSpec
from bpdemo.datasets.image_folder import load_folder
from bpdemo.datasets.images import (
    CIFAR10_CLASSES,
    CIFAR10_FOLDER,
    load_cifar10,
    load_images,
    split_images,
)
from bpdemo.image_step import Snapshot, choose_and_step, choose_image, step_on_one_image
from bpdemo.infra.cli import run_main
from bpdemo.infra.errors import DataError
from bpdemo.plots import images as image_plots
from demos.images import main
from tests.conftest import one_line, run_cli

COLOURS = {"car": (0, 255, 0), "cat": (0, 0, 255), "dog": (255, 0, 0)}


def write_image(path: Path, colour, size: int = 6) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return path


def photo_folder(root: Path, per_class: int = 3) -> Path:
    """root/car, root/cat, root/dog, each holding `per_class` plain-coloured 6x6 PNG images."""
    for name, colour in COLOURS.items():
        for k in range(per_class):
            write_image(root / name / f"{k}.png", colour)
    return root


# -- the folder source --------------------------------------------------------------------------------
def test_folder_images_become_flattened_rows_labelled_by_their_subfolder(tmp_path):
    data = load_folder(photo_folder(tmp_path), image_size=4)
    assert data.classes == ["car", "cat", "dog"]  # ImageFolder's order: sorted folder names
    assert data.x.shape == (9, 3 * 4 * 4) and data.image_shape == (3, 4, 4)
    assert data.y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for row, label in zip(data.x, data.y, strict=True):
        # flattened channel by channel: a plain red dog is 16 ones, then 32 zeros
        expected = np.repeat(np.array(COLOURS[data.classes[label]]) / 255.0, 16)
        np.testing.assert_allclose(row, expected)
    assert data.pictures(data.x[:1]).shape == (1, 4, 4, 3)


def test_folder_images_can_be_grayscale_and_a_chosen_subset_of_classes(tmp_path):
    data = load_folder(photo_folder(tmp_path), classes=["dog", "cat"], image_size=5, grayscale=True)
    assert data.classes == ["dog", "cat"]
    assert data.x.shape == (6, 25)
    # the dog images (red) come first in the folder but take label 0 from the order asked for
    assert sorted(data.y.tolist()) == [0, 0, 0, 1, 1, 1]
    red_luma = 0.299  # PIL's L = 0.299 R + 0.587 G + 0.114 B
    dog_rows = data.x[data.y == 0]
    np.testing.assert_allclose(dog_rows, round(255 * red_luma) / 255.0, atol=1 / 255)


def test_images_directly_in_the_folder_are_refused_with_what_to_do(tmp_path):
    write_image(tmp_path / "dog1.jpg", COLOURS["dog"])
    write_image(tmp_path / "cat1.png", COLOURS["cat"])
    with pytest.raises(DataError, match="holds 2 images directly") as error:
        load_folder(tmp_path)
    assert "one subfolder per class" in str(error.value) and "\n" not in str(error.value)


def test_an_empty_folder_is_refused_with_the_layout_it_needs(tmp_path):
    with pytest.raises(DataError, match="has no class subfolders; put each class's images"):
        load_folder(tmp_path)


def test_a_folder_with_one_class_is_refused(tmp_path):
    write_image(tmp_path / "dog" / "1.png", COLOURS["dog"])
    write_image(tmp_path / "dog" / "2.png", COLOURS["dog"])
    with pytest.raises(DataError, match=r"has one class only \(dog\); a classifier needs"):
        load_folder(tmp_path)


def test_an_unreadable_image_file_is_named_in_the_error(tmp_path):
    root = photo_folder(tmp_path)
    (root / "cat" / "broken.jpg").write_bytes(b"this is not a JPEG")
    with pytest.raises(DataError) as error:
        load_folder(root, image_size=4)
    message = str(error.value)
    assert str(root / "cat" / "broken.jpg") in message
    assert "cannot be read as an image" in message and "replace it or remove it" in message


def test_a_class_folder_without_images_is_refused(tmp_path):
    root = photo_folder(tmp_path)
    (root / "bird").mkdir()
    (root / "bird" / "notes.txt").write_text("no pictures here")
    with pytest.raises(DataError, match=r"class folder .*bird holds no images"):
        load_folder(root)


def test_a_missing_folder_and_a_missing_root_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not found; check the path given to --root"):
        load_folder(tmp_path / "nowhere")
    with pytest.raises(DataError, match="--dataset folder needs the folder: --root PATH"):
        load_images("folder")


def test_a_class_with_a_single_image_cannot_be_split(tmp_path):
    root = photo_folder(tmp_path)
    for extra in ("1.png", "2.png"):
        (root / "car" / extra).unlink()
    data = load_folder(root, image_size=4)
    with pytest.raises(DataError, match="class 'car' has 1 image; every class needs at least 2"):
        split_images(data, 0.25, seed=0)


def dog_and_cat_folder(root: Path, per_class: int = 6) -> Path:
    for name, colour in (("dog", (255, 0, 0)), ("cat", (0, 0, 255))):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (6, 6), colour).save(root / name / f"{i}.png")
    return root


def test_links_in_an_image_folder_are_not_followed(tmp_path):
    root = dog_and_cat_folder(tmp_path / "photos")
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
def test_an_oversized_image_is_one_clear_error(tmp_path, capsys, side):
    root = dog_and_cat_folder(tmp_path / "photos")
    (root / "dog" / "huge.png").write_bytes(png_header(side, side))
    out = tmp_path / "run"
    status, _, stderr = run_cli(main, ["--root", str(root), "--out", str(out)], capsys)
    assert status == 2
    line = one_line(stderr)
    assert "huge.png is " in line and "images over 89,478,485 pixels are refused" in line
    assert not out.exists()


def test_the_demo_turns_a_bad_folder_into_one_line_and_status_2_before_any_output(tmp_path, capsys):
    root = tmp_path / "photos"
    write_image(root / "dog.jpg", COLOURS["dog"])
    out = tmp_path / "run"
    assert run_main(main, ["--root", str(root), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert "subfolder per class" in captured.err
    assert not out.exists()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('model.loss="mse"', "model.loss 'mse' is for numbers; classes need one of cross_entropy"),
        ('model.output_activation="relu"', "the outputs are the logits that cross_entropy"),
    ],
)
def test_a_model_that_cannot_classify_is_refused_before_any_output(
    tmp_path, capsys, setting, message
):
    out = tmp_path / "run"
    assert run_main(main, ["--set", setting, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


# -- CIFAR-10 without network ---------------------------------------------------------------------------
def test_cifar10_not_downloaded_yet_says_to_add_download(tmp_path):
    with pytest.raises(DataError, match="add --download to fetch it once"):
        load_cifar10(cache=tmp_path / "cifar10")


def test_cifar10_download_without_network_is_one_line_with_offline_choices(tmp_path, monkeypatch):
    attempts = []

    def no_network(request, *args, **kwargs):
        attempts.append(getattr(request, "full_url", request))
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(DataError) as error:
        load_cifar10(download=True, cache=tmp_path / "cifar10")
    message = str(error.value)
    assert attempts and "cifar-10-python.tar.gz" in attempts[0]  # torchvision really tried
    assert message.startswith("downloading CIFAR-10 into") and "failed" in message
    assert "--dataset digits" in message and "--dataset folder" in message
    assert "\n" not in message


def test_a_damaged_cifar10_cache_says_to_delete_it_and_download_again(tmp_path):
    (tmp_path / CIFAR10_FOLDER).mkdir()
    with pytest.raises(DataError, match="incomplete or damaged; delete"):
        load_cifar10(cache=tmp_path)


def test_cifar10_from_its_cache_keeps_the_dog_image_examples_classes_and_every_pixel(
    tmp_path, monkeypatch
):
    """A stand-in cache in torchvision's own format (pickled batches of raw CHW rows)."""
    folder = tmp_path / CIFAR10_FOLDER
    folder.mkdir()
    rng = np.random.default_rng(0)
    raw = {}
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                 "test_batch"):  # fmt: skip
        raw[name] = rng.integers(0, 256, size=(10, 3 * 32 * 32), dtype=np.uint8)
        batch = {"data": raw[name], "labels": list(range(10))}  # one image of each class
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CIFAR10_CLASSES)}))
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args: True)

    data = load_cifar10(cache=tmp_path)
    assert data.classes == ["dog", "cat", "automobile"] and data.image_shape == (3, 32, 32)
    assert np.bincount(data.y).tolist() == [6, 6, 6]  # train and test parts pooled
    everything = np.concatenate([raw[name] for name in raw])  # train batches, then test
    labels = np.tile(np.arange(10), 6)
    for label, cifar_label in enumerate(CIFAR10_CLASSES.index(c) for c in data.classes):
        np.testing.assert_array_equal(
            data.x[data.y == label], everything[labels == cifar_label] / 255
        )


def test_cifar10_class_names_are_checked_before_any_download(tmp_path):
    with pytest.raises(DataError, match="no class 'dgo' \\(did you mean 'dog'\\?\\)"):
        load_cifar10(["dgo", "cat"], download=True, cache=tmp_path)
    assert not any(tmp_path.iterdir())


def test_the_demo_without_cifar10_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("bpdemo.datasets.CIFAR10_CACHE", tmp_path / "empty-cache")
    out = tmp_path / "run"
    assert run_main(main, ["--dataset", "cifar10", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "add --download" in err
    assert not out.exists()


# -- digits, the split and the classes ---------------------------------------------------------------------
def test_digits_split_is_stratified_and_scaled_on_the_training_images_only():
    data = load_images("digits")
    assert (data.rows, data.x.shape[1], len(data.classes)) == (1797, 64, 10)
    split = split_images(data, 0.25, seed=0)
    assert len(split.test_index) == 450
    test_share = np.bincount(split.labels("test")) / np.bincount(data.y)
    assert np.all(np.abs(test_share - 0.25) < 0.02)
    x_train, _ = split.scaled("train")
    used = data.x[split.train_index].std(axis=0) > 0
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(x_train.std(axis=0)[used], 1, atol=1e-12)
    assert set(split.train_index).isdisjoint(split.test_index)


def test_classes_and_per_class_choose_and_renumber_the_digits():
    data = load_images("digits", classes=["8", "3"], per_class=20, seed=1)
    assert data.classes == ["8", "3"]
    assert np.bincount(data.y).tolist() == [20, 20]
    again = load_images("digits", classes=["8", "3"], per_class=20, seed=1)
    np.testing.assert_array_equal(data.x, again.x)


# -- the dog image example's four steps on one image -----------------------------------------------------------------
def test_one_image_step_matches_softmax_by_hand_and_torch_autograd():
    spec = MLPSpec([5, 4, 3], ["relu", "identity"], loss="cross_entropy", seed=3, dtype="float64")
    state = spec.initial_parameters()
    x = torch.tensor([0.5, -1.0, 2.0, 0.25, -0.75], dtype=torch.float64)
    label, lr = 2, 0.5
    values = step_on_one_image(spec, state, x, label, lr)

    # forward and softmax by hand, in numpy
    w0, b0, w1, b1 = (state[n].numpy() for n in ("layers.0.weight", "layers.0.bias",
                                                  "layers.1.weight", "layers.1.bias"))  # fmt: skip
    z = w1 @ np.maximum(w0 @ x.numpy() + b0, 0) + b1
    p = np.exp(z) / np.exp(z).sum()
    np.testing.assert_allclose(values["logits"], z, rtol=1e-12)
    np.testing.assert_allclose(values["probabilities"], p, rtol=1e-12)
    assert values["loss"] == pytest.approx(-np.log(p[label]), rel=1e-12)
    onehot = np.eye(3)[label]
    np.testing.assert_allclose(values["grad_logits"], p - onehot, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(values["grad_logits_autograd"], p - onehot, rtol=1e-12, atol=1e-15)

    # one step of gradient descent, done independently with torch.autograd
    params = {n: t.clone().requires_grad_(True) for n, t in state.items()}
    hidden = torch.relu(x @ params["layers.0.weight"].T + params["layers.0.bias"])
    logits = hidden @ params["layers.1.weight"].T + params["layers.1.bias"]
    torch.nn.functional.cross_entropy(logits[None], torch.tensor([label])).backward()
    with torch.no_grad():
        new = {n: t - lr * t.grad for n, t in params.items()}
        hidden = torch.relu(x @ new["layers.0.weight"].T + new["layers.0.bias"])
        p_after = torch.softmax(hidden @ new["layers.1.weight"].T + new["layers.1.bias"], dim=0)
    np.testing.assert_allclose(values["probabilities_after"], p_after.numpy(), rtol=1e-12)
    np.testing.assert_allclose(values["probabilities_after_autograd"], p_after.numpy(), rtol=1e-12)
    assert values["loss_after"] == pytest.approx(-np.log(p_after[label].item()), rel=1e-12)
    assert p_after[label] > p[label]  # the step raised the true class's probability
    assert values["probabilities_after"] is not values["probabilities"]


def test_the_walkthrough_image_is_the_mistake_nearest_the_dog_image_examples_0_7():
    probabilities = np.array(
        [
            [0.9, 0.05, 0.05],  # right
            [0.2, 0.75, 0.05],  # wrong, 0.75
            [0.1, 0.1, 0.8],  # right
            [0.55, 0.4, 0.05],  # wrong, 0.55
            [0.05, 0.3, 0.6],  # wrong, 0.6
        ]
    )
    labels = np.array([0, 0, 2, 2, 1])
    assert choose_image(probabilities, labels, 0.7) == 1
    assert choose_image(probabilities, labels, 0.5) == 3
    assert choose_image(probabilities[[0, 2]], labels[[0, 2]], 0.7) is None


def test_when_the_trained_model_makes_no_mistake_the_walkthrough_takes_the_start_of_training():
    split = split_images(load_images("digits", classes=["0", "1"], per_class=8), 0.25, seed=0)
    spec = MLPSpec([64, 5, 2], ["relu", "identity"], loss="cross_entropy", dtype="float64")
    state = spec.initial_parameters()
    labels = split.labels("test")
    right = np.where(np.eye(2)[labels] == 1, 0.9, 0.1)  # every test image right
    wrong = np.where(np.eye(2)[labels] == 1, 0.4, 0.6)  # every test image wrong, with 0.6
    wrong[2] = np.where(np.eye(2)[labels[2]] == 1, 0.3, 0.7)  # image 2: wrong with 0.7
    x_test, _ = split.tensors("test", torch.float64)
    walk = choose_and_step(
        spec,
        x_test,
        labels,
        Snapshot(state, right),
        Snapshot(state, wrong),
        probability=0.7,
        lr=0.002,
    )
    assert (walk.when, walk.test_image, walk.true_class) == (
        "at the start of training",
        2,
        labels[2],
    )


# -- a whole (small) run ---------------------------------------------------------------------------------
SMALL_RUN = [
    "--epochs",
    "2",
    "--set",
    "data.per_class=24",
    "--set",
    "model.hidden=[16,12]",
    "--set",
    "train.batch_size=32",
]


def without_figures(monkeypatch) -> None:
    """Skip the PNGs (a second or two each) where a test looks at the numbers only."""
    monkeypatch.setattr(image_plots, "figures", lambda *args, **kwargs: {})


def run_demo(out: Path, *argv: str) -> dict:
    assert main([*argv, "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """(output folder, metrics.json, what was printed) of one small digits run."""
    out = tmp_path_factory.mktemp("images") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        metrics = run_demo(out, *SMALL_RUN)
    return out, metrics, printed.getvalue()


def test_metrics_json_holds_every_block_of_the_run(small_run):
    out, metrics, _ = small_run
    assert metrics["dataset"]["name"] == "digits"
    assert metrics["dataset"]["rows"] == 240
    assert metrics["dataset"]["classes"] == [str(d) for d in range(10)]
    for model in ("manual", "autograd"):
        assert set(metrics[model]["test"]) >= {"accuracy", "loss"}
        assert metrics[model]["train_seconds"] > 0
    sklearn = metrics["baselines"]["sklearn_mlp"]
    assert 0 <= sklearn["test"]["accuracy"] <= 1 and sklearn["train_seconds"] > 0
    assert metrics["agreement"]["within_tolerance"] is True
    assert metrics["agreement"]["steps_compared"] == metrics["steps"] == 2 * 6  # 180 rows / 32
    assert metrics["manual"]["test"]["accuracy"] == metrics["autograd"]["test"]["accuracy"]
    matrix = np.array(metrics["confusion_matrix"]["rows_true_columns_predicted"])
    assert matrix.sum() == metrics["dataset"]["test_rows"] == 60
    assert np.trace(matrix) / matrix.sum() == pytest.approx(metrics["manual"]["test"]["accuracy"])
    walk = metrics["walkthrough"]
    assert sum(walk["probabilities"]) == pytest.approx(1.0)
    assert walk["loss"] == pytest.approx(-np.log(walk["probability_true_class"]))
    written = {p.name for p in out.iterdir()}
    assert written >= {
        "config.toml",
        "metrics.json",
        "history.csv",
        "steps.csv",
        *image_plots.FIGURES,
    }
    rerun = tomllib.loads((out / "config.toml").read_text())
    assert rerun["train"]["epochs"] == 2 and rerun["model"]["hidden"] == [16, 12]


def test_a_run_prints_progress_the_results_table_and_the_walkthrough(small_run):
    _, metrics, printed = small_run
    lines = printed.splitlines()
    assert any(line.startswith("digits epoch 2/2: train loss") for line in lines)
    header = next(line for line in lines if "test accuracy" in line)
    assert "train loss" in header and "test loss" in header and "train seconds" in header
    manual_row = next(line for line in lines if line.startswith("hand-written "))
    assert f"{metrics['manual']['test']['accuracy']:.4f}" in manual_row
    assert any(line.startswith("scikit-learn MLP ") for line in lines)
    assert any(line.startswith("hand-written vs autograd over 12 steps") for line in lines)
    assert (
        "  2 error:    loss = −ln(p(" in printed and "  3 backward: dL/dz = p − onehot(" in printed
    )


def test_a_run_again_from_its_config_toml_gives_the_same_metrics_apart_from_timings(
    small_run, tmp_path, monkeypatch
):
    out, first, _ = small_run
    without_figures(monkeypatch)
    second = run_demo(tmp_path / "again", "--config", str(out / "config.toml"), "--quiet")

    def without_timings(value):
        if isinstance(value, dict):
            return {k: without_timings(v) for k, v in value.items() if "seconds" not in k}
        return value

    assert without_timings(first) == without_timings(second)


def test_a_folder_of_photos_runs_end_to_end(tmp_path, monkeypatch):
    without_figures(monkeypatch)
    photo_folder(tmp_path / "photos", per_class=4)
    metrics = run_demo(
        tmp_path / "run",
        *("--root", str(tmp_path / "photos"), "--image-size", "4", "--epochs", "2", "--quiet"),
    )
    assert metrics["dataset"]["name"] == "folder"
    assert metrics["dataset"]["classes"] == ["car", "cat", "dog"]
    assert metrics["dataset"]["image_shape"] == [3, 4, 4]
    assert (metrics["dataset"]["train_rows"], metrics["dataset"]["test_rows"]) == (9, 3)
