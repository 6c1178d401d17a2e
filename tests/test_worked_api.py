"""Worked examples from Python: load a config from a path, a dict or TOML text, run it, and get the
walk-through, the audit, the trace and the pictures; the documented example runs as written."""

import json
import re
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from bpdemo.infra.errors import ConfigError
from bpdemo.worked import PHASES, WorkedConfig, load, run
from demos.worked_example import main

ROOT = Path(__file__).resolve().parent.parent
CONFIG_321 = ROOT / "configs" / "worked_321.toml"


def test_a_config_loads_from_a_path_a_string_path_a_dict_and_toml_text():
    from_path = load(CONFIG_321)
    assert isinstance(from_path, WorkedConfig)
    assert load(str(CONFIG_321)) == from_path
    assert load(from_path.model_dump()) == from_path
    assert load(CONFIG_321.read_text()) == from_path


def test_overrides_apply_as_set_does_and_leave_the_given_dict_alone():
    data = load(CONFIG_321).model_dump(exclude_none=True)
    config = load(data, ["train.steps=3", "report.max_samples=1"])
    assert (config.train.steps, config.report.max_samples) == (3, 1)
    assert data["train"]["steps"] == 1
    assert load(config, ["train.lr=0.5"]).train.lr == 0.5


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing.toml", "config file missing.toml not found"),
        ("title = \n", "config text: not valid TOML"),
        ({"title": "no network"}, "config: network: Field required"),
    ],
)
def test_a_wrong_source_is_one_config_error(source, message):
    with pytest.raises(ConfigError) as error:
        run(source)
    assert message in str(error.value) and len(str(error.value).splitlines()) == 1


@pytest.mark.parametrize("as_text", [True, False])
def test_a_folder_is_said_to_be_a_folder_and_what_to_pass_instead(tmp_path, as_text):
    folder = tmp_path / "examples"
    folder.mkdir()
    with pytest.raises(ConfigError) as error:
        load(str(folder) if as_text else folder)
    message = str(error.value)
    assert message.startswith(f"{folder} is a folder, not a config file: pass the path of")
    assert "not found" not in message and len(message.splitlines()) == 1


def test_a_run_from_python_gives_what_the_command_line_prints_and_writes(tmp_path, capsys):
    result = run(CONFIG_321, ["train.steps=2"])
    out = tmp_path / "run"
    assert main(["--config", str(CONFIG_321), "--steps", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(result.text())
    assert result.audit_table() in printed
    trace = json.loads((out / "trace.json").read_text())
    assert json.loads(json.dumps(result.trace())) == trace
    assert result.metrics() == json.loads((out / "metrics.json").read_text())
    assert len(result.audit) == 14 and sum(r.agrees is False for r in result.audit) == 14


@pytest.mark.parametrize("phase", PHASES)
def test_a_picture_is_a_figure_for_any_kept_step_and_phase(phase):
    result = run(CONFIG_321, ["train.steps=3"])
    figure = result.picture(step=2, phase=phase)
    assert isinstance(figure, Figure)
    texts = [text.get_text() for text in figure.axes[0].texts]
    shown = {
        "step": "w = 0.6024\n∂L/∂w = ",  # step 2's weights are step 1's updated ones
        "forward": "w = 0.6024",
        "backward": "∂L/∂w = ",
        "update": "0.6024 → ",
    }[phase]
    assert any(text.startswith(shown) for text in texts), texts


def test_a_picture_of_a_step_not_kept_or_a_wrong_phase_is_a_clear_error():
    result = run(CONFIG_321, ["train.steps=50", "train.lr=0.01", "train.max_trace_steps=5"])
    kept = [s["step"] for s in result.trace()["steps"]]
    missing = next(step for step in range(1, 51) if step not in kept)
    with pytest.raises(ValueError, match=rf"step {missing} is not in the trace \(kept steps: 1, "):
        result.picture(step=missing)
    with pytest.raises(ValueError, match="phase 'sideways' is not one of step, forward"):
        result.picture(phase="sideways")
    with pytest.raises(ValueError, match="no standardised run"):
        result.picture(standardised=True)


def test_the_standardised_run_has_its_pictures_too():
    result = run(ROOT / "configs" / "worked_house.toml")
    figure = result.picture(phase="backward", standardised=True)
    assert "standardised inputs" in figure.axes[0].get_title()


def test_the_python_page_of_the_docs_runs_as_written(monkeypatch, capsys):
    page = (ROOT / "docs" / "worked_examples_python.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
    assert len(blocks) >= 3
    monkeypatch.chdir(ROOT)
    for block in blocks:
        exec(compile(block, "docs/worked_examples_python.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "5.6448" in printed and "14 of 14 claims of the source are wrong" in printed
    assert "True True 0.5097" in printed
