"""One default and one check per setting, whether it comes from Python, a TOML file or `--set`."""

import tomllib
from pathlib import Path

import pytest

from bpdemo import worked
from bpdemo.datasets import houses as house_data
from bpdemo.datasets import images as image_data
from bpdemo.explore.schemas import PlaygroundSettings
from bpdemo.health import StudyOptions, Thresholds
from bpdemo.infra.cli import run_main
from bpdemo.infra.config import load_config
from bpdemo.infra.errors import ConfigError, DataError
from bpdemo.optim import OptimizerSpec
from bpdemo.spec import MLPSpec
from demos import gradients, house_prices, images

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DEMOS = {
    "house_prices": house_prices.HousePricesConfig,
    "images": images.ImagesConfig,
    "gradients": gradients.GradientsConfig,
}
TOO_LONG = "1" + "0" * 5000  # more digits than Python turns into a whole number


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def what_is_wrong(message: str, key: str) -> str:
    """What a one-line error says is wrong with `key`, without where it was found."""
    return message.split(f" {key}: ", 1)[1]


# -- the optimizer ---------------------------------------------------------------------------------
def test_optimizer_spec_from_python_refuses_a_negative_eps_naming_it():
    with pytest.raises(ValueError, match="eps: Input should be greater than 0") as error:
        OptimizerSpec(name="adam", lr=0.1, eps=-1)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("key", "toml_value", "value"),
    [
        ("eps", "-1", -1),
        ("lr", "0", 0),
        ("momentum", "1.0", 1.0),
        ("weight_decay", "-0.5", -0.5),
        ("betas", "[0.9, 1.5]", [0.9, 1.5]),
        ("name", '"rmsprop"', "rmsprop"),
        ("max_grad_norm", "0.0", 0.0),
    ],
)
def test_an_optimizer_setting_is_refused_in_the_same_words_from_python_and_from_a_file(
    tmp_path, key, toml_value, value
):
    with pytest.raises(ConfigError) as from_python:
        OptimizerSpec(**{"name": "adam", key: value})
    path = write(tmp_path, f"[optimizer]\n{key} = {toml_value}\n")
    with pytest.raises(ConfigError) as from_file:
        load_config(house_prices.HousePricesConfig, path)
    assert str(from_python.value).startswith(f"OptimizerSpec: {key}: ")
    assert f": [optimizer] {key}: " in str(from_file.value)
    assert what_is_wrong(str(from_python.value), key) == what_is_wrong(str(from_file.value), key)


def test_optimizer_spec_takes_its_fields_in_order_as_a_dataclass_does():
    assert OptimizerSpec("adam", 0.01) == OptimizerSpec(name="adam", lr=0.01)
    assert hash(OptimizerSpec("sgd", lr=0.1)) == hash(OptimizerSpec())
    with pytest.raises(TypeError):
        OptimizerSpec("sgd", name="adam")


def test_the_worked_example_and_the_explorer_check_a_learning_rate_as_optimizer_spec_does(tmp_path):
    with pytest.raises(ConfigError) as from_python:
        OptimizerSpec(lr=-1)
    with pytest.raises(ConfigError) as worked_example:
        worked.load(CONFIGS / "worked_321.toml", ["train.lr=-1"])
    assert "[train] lr: Input should be greater than 0 (got -1)" in str(worked_example.value)
    assert what_is_wrong(str(from_python.value), "lr") == what_is_wrong(
        str(worked_example.value), "lr"
    )
    with pytest.raises(ValueError, match="Input should be greater than 0"):
        PlaygroundSettings.model_validate({"lr": -1.0})


# -- a table given in part -------------------------------------------------------------------------
def test_a_table_a_file_gives_in_part_keeps_the_demos_defaults_for_the_rest(tmp_path):
    config = load_config(
        house_prices.HousePricesConfig, write(tmp_path, "[optimizer]\nlr = 0.01\n")
    )
    assert config.optimizer == OptimizerSpec("adam", lr=0.01, weight_decay=0.001)


def test_a_table_set_in_part_on_the_command_line_keeps_the_demos_defaults_for_the_rest():
    config = load_config(images.ImagesConfig, None, ["model.hidden=[32]"])
    assert config.model.hidden == [32]
    assert (config.model.loss, config.model.init, config.model.dtype) == (
        "cross_entropy",
        "he",
        "float64",
    )


@pytest.mark.parametrize("demo", list(DEMOS))
def test_each_demos_config_file_holds_the_demos_own_defaults(demo):
    schema = DEMOS[demo]
    assert load_config(schema, CONFIGS / f"{demo}.toml") == load_config(schema, None)


# -- the gradient study ----------------------------------------------------------------------------
def test_the_gradients_demo_defaults_are_the_study_options_defaults():
    config = load_config(gradients.GradientsConfig, None)
    options = config.study_options()
    assert options == StudyOptions()


def test_a_threshold_is_refused_in_the_same_words_from_python_and_from_a_file(tmp_path):
    with pytest.raises(ConfigError) as from_python:
        Thresholds(ratio=0.5)
    with pytest.raises(ConfigError) as from_file:
        load_config(gradients.GradientsConfig, write(tmp_path, "[verdict]\nratio = 0.5\n"))
    assert "[verdict] ratio: Input should be greater than 1 (got 0.5)" in str(from_file.value)
    assert what_is_wrong(str(from_python.value), "ratio") == what_is_wrong(
        str(from_file.value), "ratio"
    )


# -- names -----------------------------------------------------------------------------------------
def test_a_description_and_a_config_refuse_an_unknown_activation_by_the_same_rule():
    with pytest.raises(ConfigError) as from_python:
        MLPSpec(sizes=[3, 1], activations=["swish"])
    with pytest.raises(ConfigError) as from_config:
        load_config(house_prices.HousePricesConfig, None, ['model.activation="swish"'])
    listed = str(from_config.value).split("activation: ")[1].removesuffix(" (got 'swish')")
    assert str(from_python.value) == f"unknown activation 'swish': {listed}"


@pytest.mark.parametrize(
    ("schema", "names"),
    [
        (house_prices.HousePricesConfig, house_data.DATASETS),
        (images.ImagesConfig, image_data.DATASETS),
    ],
)
def test_the_data_sets_a_config_accepts_are_those_of_the_data_module(schema, names):
    for name in names:
        assert load_config(schema, None, [f'data.dataset="{name}"']).data.dataset == name
    with pytest.raises(ConfigError, match=f"or {names[-1]!r}"):
        load_config(schema, None, ['data.dataset="other"'])


# -- a setting of one data source only -------------------------------------------------------------
def run(main, argv, capsys) -> tuple[int, str]:
    status = run_main(main, argv)
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    ("main", "argv", "message"),
    [
        (
            house_prices.main,
            ["--dataset", "ames", "--set", "data.houses=2000"],
            "data.houses (2000) is for --dataset synthetic, but the data source is ames",
        ),
        (
            images.main,
            ["--set", "data.image_size=32"],
            "--image-size (data.image_size) is for --dataset folder, but the data source is digits",
        ),
        (
            images.main,
            ["--set", "data.download=false"],
            "--download (data.download) is for --dataset cifar10, but the data source is digits",
        ),
    ],
    ids=["houses-with-ames", "image-size-with-digits", "download-false-with-digits"],
)
def test_a_setting_of_another_source_is_refused_even_at_its_default_value(
    tmp_path, capsys, main, argv, message
):
    out = tmp_path / "run"
    status, stderr = run(main, [*argv, "--quiet", "--out", str(out)], capsys)
    assert status == 2 and stderr.count("\n") == 1
    assert message in stderr
    assert not out.exists()


def test_a_source_setting_not_given_takes_its_default():
    assert house_data.load_houses("synthetic").rows == house_data.SYNTHETIC_HOUSES
    with pytest.raises(DataError, match=r"data\.grayscale"):
        image_data.load_images("digits", grayscale=False)


# -- whole numbers too long for Python -------------------------------------------------------------
def test_a_whole_number_too_long_is_one_line_from_set():
    with pytest.raises(ConfigError, match=r"^--set train.epochs=\.\.\.: a whole number with more"):
        load_config(house_prices.HousePricesConfig, None, [f"train.epochs={TOO_LONG}"])


def test_a_whole_number_too_long_is_one_line_from_a_toml_file(tmp_path):
    path = write(tmp_path, f"seed = {TOO_LONG}\n")
    with pytest.raises(ConfigError, match="a whole number with more than 4,300 digits") as error:
        load_config(house_prices.HousePricesConfig, path)
    assert str(error.value).startswith(f"{path}: ")


def test_a_whole_number_too_long_is_one_line_from_an_override_to_worked_load():
    with pytest.raises(ConfigError, match=r"^--set train.steps=\.\.\.: a whole number with more"):
        worked.load(CONFIGS / "worked_321.toml", [f"train.steps={TOO_LONG}"])


def test_a_whole_number_too_long_is_one_line_from_worked_load_of_text_or_a_dict():
    with pytest.raises(ConfigError, match=r"^config text: a whole number with more"):
        worked.load(f'title = "x"\nseed = {TOO_LONG}\n')
    data = tomllib.loads((CONFIGS / "worked_321.toml").read_text())
    data["train"]["steps"] = 10**5000  # made by arithmetic: no text to read it from
    with pytest.raises(ConfigError, match=r"^config: \[train\] steps: a whole number with more"):
        worked.load(data)


def test_a_whole_number_too_long_on_the_command_line_is_exit_status_2(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--set", f"train.epochs={TOO_LONG}", "--quiet", "--out", str(out)]
    status, stderr = run(house_prices.main, argv, capsys)
    assert status == 2 and stderr.count("\n") == 1 and len(stderr) < 200
    assert not out.exists()
