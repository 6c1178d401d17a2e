"""The house-price demo: its data sources, its error lines, its outputs, and real sales (Ames)."""

import json
import math
import urllib.error
import warnings

import numpy as np
import pytest
import torch

from bpdemo.agreement import TOLERANCES
from bpdemo.baselines import SKLEARN_MAX_ITER, activation_note, fit_regressors, sklearn_activation
from bpdemo.datasets import DATA_DIR, houses
from bpdemo.datasets.houses import load_houses, rule_price, split_houses, synthetic_houses
from bpdemo.infra.cli import run_main
from bpdemo.infra.errors import DataError
from bpdemo.spec import ModelSection
from demos.house_prices import main
from tests.conftest import QUICK_HOUSES, one_line, run_cli

QUICK = ["--epochs", "3", "--set", "data.houses=300", "--quiet"]
TIMING_KEYS = {"train_seconds"}


def run(argv, capsys):
    """The demo as the command line runs it: (exit status, stdout, stderr)."""
    status = run_main(main, argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def without_timings(obj):
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


# -- the synthetic market ------------------------------------------------------------------------
def test_the_price_rule_is_the_documented_formula():
    assert rule_price(3, 1500) == pytest.approx(181_000.0, rel=1e-15)
    # 4 bedrooms, 3,000 sq ft: 181,000 · 2^1.1 · exp(0.05·1 − 0.04·1²), by hand
    assert rule_price(4, 3000) == pytest.approx(181_000 * 2**1.1 * math.exp(0.01), rel=1e-12)
    # more bedrooms than three lower the price at a given area
    assert rule_price(5, 2000) < rule_price(4, 2000) < rule_price(3, 2000) * 1.02


def test_synthetic_houses_are_calibrated_to_the_ames_sales():
    frame = synthetic_houses(20_000, seed=0)
    assert frame["living_area_sqft"].mean() == pytest.approx(1500, rel=0.03)
    assert frame["living_area_sqft"].std() == pytest.approx(506, rel=0.05)
    assert frame["price"].mean() == pytest.approx(180_800, rel=0.03)
    assert frame["price"].std() == pytest.approx(79_900, rel=0.06)
    assert frame["bedrooms"].median() == 3
    assert frame["bedrooms"].between(2, 4).mean() > 0.9
    # bigger houses tend to have more bedrooms
    assert np.corrcoef(frame["bedrooms"], frame["living_area_sqft"])[0, 1] > 0.3


def test_the_same_seed_gives_the_same_houses_and_another_seed_others():
    assert synthetic_houses(50, seed=3).equals(synthetic_houses(50, seed=3))
    assert not synthetic_houses(50, seed=3).equals(synthetic_houses(50, seed=4))


def test_standardisation_is_fitted_on_the_training_rows_only():
    split = split_houses(load_houses("synthetic", houses=200, seed=1), 0.25, seed=1)
    x_train, y_train = split.standardised("train")
    x_test, _ = split.standardised("test")
    assert len(split.test_index) == 50 and not set(split.test_index) & set(split.train_index)
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(x_train.std(axis=0), 1, rtol=1e-12)
    assert abs(x_test.mean(axis=0)).max() > 1e-3  # the test rows were not used to fit
    np.testing.assert_allclose(split.to_dollars(y_train), split.y_train, rtol=1e-12)


# -- CSV files ---------------------------------------------------------------------------------------
def write_csv(tmp_path, text, name="houses.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD_ROWS = "".join(f"{2 + i % 3},{1000 + 37 * i},{100000 + 5000 * i}\n" for i in range(12))


def test_a_csv_file_with_spaces_in_column_names_is_read(tmp_path):
    path = write_csv(tmp_path, "Bedroom AbvGr,Gr Liv Area,SalePrice\n" + GOOD_ROWS)
    data = load_houses(
        "csv", csv=path, features=["Bedroom AbvGr", "Gr Liv Area"], target="SalePrice"
    )
    assert data.rows == 12 and data.features == ["Bedroom AbvGr", "Gr Liv Area"]
    assert data.x[1].tolist() == [3.0, 1037.0] and data.y[1] == 105000.0


def test_rows_with_a_missing_value_are_dropped_and_counted_or_refused(tmp_path):
    path = write_csv(tmp_path, "beds,area,price\n" + GOOD_ROWS + "3,,200000\n,1500,210000\n")
    data = load_houses("csv", csv=path, features=["beds", "area"], target="price")
    assert data.rows == 12 and data.dropped_rows == 2
    assert data.notes == ["dropped 2 of 14 rows with a missing value (beds: 1, area: 1)"]
    with pytest.raises(DataError, match=r"2 rows have a missing value .* line 15"):
        load_houses("csv", csv=path, features=["beds", "area"], target="price", missing="refuse")


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "CSV file {path} not found; check the path given to --csv"),
        ("", [], "CSV file {path} is empty; it needs a header row"),
        ("beds,area,price\n", [], "CSV file {path} has a header but no data rows"),
        (
            "beds,area,price\n" + GOOD_ROWS,
            ["--target", "Price"],
            "CSV file {path} has no column 'Price' (did you mean 'price'?); its columns are: "
            "beds, area, price",
        ),
        (
            "beds,area,price\n" + GOOD_ROWS + "three,1200,150000\n",
            [],
            "CSV file {path}: column 'beds' holds text where a number is needed, e.g. 'three' "
            "on line 14",
        ),
        (
            "beds,area,price\n" + "".join(f"{i % 4},{900 + i},250000\n" for i in range(10)),
            [],
            "CSV file {path}: the target 'price' has the same value (250000) in every row used",
        ),
        (
            "beds,area,price\n3,1000,100000\n4,1500,150000\n2,900,90000\n",
            [],
            "CSV file {path}: too few rows to split: 3 usable rows give 1 test and 2 training rows",
        ),
    ],
    ids=["missing", "empty", "header-only", "no-column", "text", "constant-target", "too-few"],
)
def test_a_bad_csv_file_is_one_line_and_exit_2_and_writes_nothing(
    tmp_path, capsys, content, args, message
):
    path = tmp_path / "houses.csv"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "run"
    argv = ["--csv", str(path), "--features", "beds,area", "--target", "price", *args]
    status, _, stderr = run([*argv, "--out", str(out), "--quiet"], capsys)
    assert status == 2
    assert stderr.startswith("error: " + message.format(path=path)), stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert not out.exists()  # checked before the output folder is made


def test_csv_without_features_or_target_says_what_to_add(capsys, tmp_path):
    status, _, stderr = run(
        ["--dataset", "csv", "--csv", "x.csv", "--out", str(tmp_path / "r")], capsys
    )
    assert status == 2
    assert '--dataset csv needs the columns to use: --features "A,B,..." and --target' in stderr


# -- downloads without network ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("column", "scale"), [("price", 1e300), ("living_area_sqft", 1e304)], ids=["price", "feature"]
)
def test_values_too_large_to_standardise_are_a_data_error(tmp_path, capsys, column, scale):
    from bpdemo.datasets.houses import synthetic_houses

    table = synthetic_houses(200, 0)
    table[column] = table[column] * scale
    csv = tmp_path / "houses.csv"
    table.to_csv(csv, index=False)
    argv = ["--csv", str(csv), "--features", "bedrooms,living_area_sqft", "--target", "price"]
    status, _, stderr = run_cli(main, [*argv, "--quiet", "--out", str(tmp_path / "r")], capsys)
    assert status == 2
    line = one_line(stderr)
    assert f"column {column!r} is too large to standardise" in line and "overflow" in line


def test_initial_weights_that_overflow_are_not_blamed_on_the_learning_rate(tmp_path, capsys):
    argv = [*QUICK_HOUSES, "--set", "model.init_scale=1e300", "--out", str(tmp_path / "r")]
    status, _, stderr = run_cli(main, argv, capsys)
    assert status == 1
    line = one_line(stderr)
    assert "before any update: the inputs or the initial weights overflow in float32" in line
    assert "learning rate" not in line


def no_network(*args, **kwargs):
    warnings.warn("A network error occurred while downloading ... Retrying", stacklevel=2)
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


@pytest.mark.parametrize(
    ("dataset", "fetcher", "what"),
    [
        ("ames", "fetch_openml", "the Ames table from OpenML"),
        ("california", "fetch_california_housing", "the California housing data"),
    ],
)
def test_a_download_without_network_is_one_line_that_suggests_a_csv_file(
    monkeypatch, capsys, tmp_path, dataset, fetcher, what
):
    import sklearn.datasets

    monkeypatch.setattr(sklearn.datasets, fetcher, no_network)
    out = tmp_path / "run"
    status, _, stderr = run(["--dataset", dataset, "--out", str(out)], capsys)
    assert status == 2
    assert stderr.startswith(f"error: cannot download {what} (no network? ")
    assert "--dataset csv --csv FILE" in stderr and "--dataset synthetic" in stderr
    assert stderr.count("\n") == 1 and not out.exists()


@pytest.mark.parametrize(
    ("loader", "fetcher"),
    [("load_ames", "fetch_openml"), ("load_california", "fetch_california_housing")],
)
def test_the_fetchers_retry_warnings_do_not_reach_the_user(monkeypatch, loader, fetcher):
    import sklearn.datasets

    monkeypatch.setattr(sklearn.datasets, fetcher, no_network)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with pytest.raises(DataError, match="cannot download"):
            getattr(houses, loader)()
    assert [str(w.message) for w in shown] == []


def test_the_download_is_cached_under_data(monkeypatch):
    seen = {}

    def fake_fetch(**kwargs):
        seen.update(kwargs)
        raise urllib.error.URLError("offline")

    import sklearn.datasets

    monkeypatch.setattr(sklearn.datasets, "fetch_california_housing", fake_fetch)
    with pytest.raises(DataError):
        houses.load_california()
    assert seen["data_home"] == str(DATA_DIR / "sklearn")


# -- a whole run ---------------------------------------------------------------------------------------
def test_a_run_writes_its_files_and_the_metrics_hold_the_documented_keys(tmp_path, capsys):
    out = tmp_path / "run"
    status, _, stderr = run([*QUICK, "--out", str(out)], capsys)
    assert status == 0, stderr
    for name in ("config.toml", "metrics.json", "history.csv", "steps.csv", "loss.png"):
        assert (out / name).stat().st_size > 0, name
    for name in ("gradient_difference.png", "predicted_vs_actual.png", "errors.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    assert not list(out.glob(".*.tmp"))  # no temporary file left behind
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"]["name"] == "synthetic" and metrics["dataset"]["rows"] == 300
    assert metrics["dataset"]["features"] == ["bedrooms", "living_area_sqft"]
    for model in ("manual", "autograd"):
        assert set(metrics[model]["test"]) >= {"rmse", "mae", "r2"}
        assert metrics[model]["train_seconds"] > 0
    for baseline in ("linear", "sklearn_mlp"):
        assert set(metrics["baselines"][baseline]["test"]) >= {"rmse", "mae", "r2"}
        assert metrics["baselines"][baseline]["train_seconds"] > 0
    agreement = metrics["agreement"]
    assert set(agreement) >= {
        "max_abs_grad_diff",
        "max_rel_grad_diff",
        "max_abs_loss_diff",
        "steps_compared",
        "dtype",
    }
    assert agreement["steps_compared"] == 3 * 2  # 240 training houses in batches of 128
    assert agreement["dtype"] == "float32"
    assert agreement["max_rel_grad_diff"] <= TOLERANCES[torch.float32]
    # both models predict the same dollars for the walk-through house
    after = metrics["walkthrough"]["after"]
    assert after["manual"] == pytest.approx(after["autograd"], rel=1e-5)


def test_two_runs_with_the_same_seed_write_the_same_metrics(tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        assert run([*QUICK, "--dtype", "float64", "--out", str(out)], capsys)[0] == 0
    a = json.loads((first / "metrics.json").read_text())
    b = json.loads((second / "metrics.json").read_text())
    assert without_timings(a) == without_timings(b)
    assert (first / "history.csv").read_text() == (second / "history.csv").read_text()


def test_the_walkthrough_house_is_predicted_in_dollars_before_and_after(tmp_path, capsys):
    status, stdout, _ = run(
        ["--epochs", "2", "--set", "data.houses=300", "--out", str(tmp_path / "r")], capsys
    )
    assert status == 0
    assert "one house: 3 bedrooms, 2,000 sq ft" in stdout
    assert "the synthetic market's rule price (before noise): $248,377" in stdout
    assert f"${rule_price(3, 2000):,.0f}" == "$248,377"
    assert "hand-written vs autograd over 4 steps (float32)" in stdout


# -- the scikit-learn baselines ----------------------------------------------------------------------
def test_the_mlp_baseline_takes_scikit_learns_name_for_the_activation_or_relu_and_says_so():
    assert sklearn_activation("sigmoid") == "logistic" and sklearn_activation("tanh") == "tanh"
    assert activation_note("sigmoid") is None
    assert sklearn_activation("leaky_relu") == "relu"  # scikit-learn has no leaky ReLU
    assert activation_note("leaky_relu") == (
        "scikit-learn's MLP has no leaky_relu activation; its baseline uses relu"
    )


def test_the_baselines_are_fitted_on_the_same_split_with_the_networks_sizes():
    split = split_houses(load_houses("synthetic", houses=200, seed=1), 0.25, seed=1)
    model = ModelSection(hidden=[5, 3], activation="tanh")
    baselines = fit_regressors(split, model, seed=2)
    assert list(baselines) == ["linear", "sklearn_mlp"]
    mlp = baselines["sklearn_mlp"]
    assert (mlp.activation, 0 < mlp.iterations <= SKLEARN_MAX_ITER) == ("tanh", True)
    assert mlp.test_output.shape == (50,)
    assert set(mlp.as_dict()) == {"train", "test", "train_seconds", "iterations", "activation"}
    linear = baselines["linear"].as_dict()
    assert set(linear) == {"train", "test", "train_seconds"}
    assert linear["test"]["r2"] > 0.5 and set(linear["test"]) == {"loss", "rmse", "mae", "r2"}


# -- real sales: the hand-written network against scikit-learn's MLPRegressor -------------------------
AMES_FEATURES = {
    "2 features": "Bedroom AbvGr,Gr Liv Area",
    "8 features": "Bedroom AbvGr,Gr Liv Area,Overall Qual,Year Built,Garage Cars,Total Bsmt SF,"
    "Full Bath,Lot Area",
}


@pytest.mark.slow
@pytest.mark.parametrize("features", list(AMES_FEATURES.values()), ids=list(AMES_FEATURES))
def test_on_ames_sales_the_hand_written_model_matches_or_beats_mlp_regressor(
    ames_csv, tmp_path, capsys, features
):
    out = tmp_path / "run"
    argv = ["--csv", str(ames_csv), "--features", features, "--target", "SalePrice"]
    status, _, stderr = run([*argv, "--out", str(out), "--quiet"], capsys)
    assert status == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    manual_r2 = metrics["manual"]["test"]["r2"]
    sklearn_r2 = metrics["baselines"]["sklearn_mlp"]["test"]["r2"]
    assert manual_r2 >= sklearn_r2, (manual_r2, sklearn_r2)
    assert manual_r2 > (0.55 if features.count(",") == 1 else 0.85)  # and it learned something
    assert metrics["agreement"]["within_tolerance"]
