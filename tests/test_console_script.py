"""The `bpdemo` console script, `--config NAME` and `--write-config FILE`, run in this process from
the checkout (tests/test_install.py runs them from an installed wheel)."""

import importlib
import tomllib
from pathlib import Path

import pytest

from bpdemo.__main__ import COMMANDS
from bpdemo.__main__ import main as bpdemo
from bpdemo.infra.cli import CONFIG_DIR
from bpdemo.infra.errors import ConfigError
from bpdemo.infra.shipped import config_file, shipped_configs
from tests.conftest import one_line

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(path.stem for path in (ROOT / "configs").glob("*.toml"))
# Each command that has a config, and the shipped config it starts from.
DEFAULT_CONFIGS = {
    "house-prices": "house_prices",
    "images": "images",
    "worked-example": "worked_321",
    "gradients": "gradients",
    "explore": "worked_321",
}


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """`bpdemo ARGV`, as the console script runs it: (exit status, stdout, stderr)."""
    try:
        status = bpdemo(argv)
    except SystemExit as exit_info:  # argparse's own exit, and --write-config's
        status = exit_info.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def help_of(argv: list[str], capsys, main=bpdemo) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
    return capsys.readouterr().out


# -- the console script --------------------------------------------------------------------------------
def test_bpdemo_help_lists_every_command_and_its_python_m_form(capsys):
    text = help_of(["--help"], capsys)
    for name, module in COMMANDS.items():
        assert f"  {name} " in text, name
        assert f"python -m {module.removesuffix('.__main__')}" in text, module
    assert ", ".join(SHIPPED) in text.replace("\n  ", " ")


def test_bpdemo_version_is_the_version_pyproject_gives(capsys):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert help_of(["--version"], capsys) == f"bpdemo {version}\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_has_the_help_of_its_python_m_form_but_for_the_name_typed(
    command, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "100")  # both wrapped alike
    module = importlib.import_module(COMMANDS[command])
    typed = help_of([command, "--help"], capsys)
    as_module = help_of(["--help"], capsys, module.main)
    assert typed.startswith(f"usage: bpdemo {command} ")
    assert as_module.startswith(f"usage: python -m {COMMANDS[command].removesuffix('.__main__')} ")
    # after the usage lines (wrapped to the length of the name), every line is the same
    assert typed.split("\n\n", 1)[1] == as_module.split("\n\n", 1)[1]


def test_an_unknown_command_is_one_line_that_names_the_commands(capsys):
    status, stdout, stderr = run(["house_prices"], capsys)
    assert status == 2 and stdout == ""
    assert "invalid choice: 'house_prices'" in one_line(stderr)
    assert all(repr(name) in stderr for name in COMMANDS)


def test_bpdemo_alone_asks_for_a_command(capsys):
    status, _, stderr = run([], capsys)
    assert status == 2
    assert one_line(stderr).startswith("error: name a command: house-prices, images")


def test_a_command_error_names_the_command_as_typed(capsys):
    status, _, stderr = run(["gradients", "--deb"], capsys)
    assert status == 2
    assert one_line(stderr).endswith("(see bpdemo gradients --help)\n")


# -- --config NAME -------------------------------------------------------------------------------------
def test_the_shipped_configs_are_the_repository_configs_folder():
    assert shipped_configs() == SHIPPED
    for name in SHIPPED:
        assert (CONFIG_DIR / f"{name}.toml").read_bytes() == (
            ROOT / "configs" / f"{name}.toml"
        ).read_bytes()


def test_a_shipped_config_is_named_without_its_folder_or_suffix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config_file("worked_xor") == CONFIG_DIR / "worked_xor.toml"


def test_a_file_of_the_same_name_wins_over_a_shipped_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("worked_xor").write_text("title = 'mine'\n")
    assert config_file("worked_xor") == Path("worked_xor")


def test_an_unknown_config_name_is_refused_with_the_shipped_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        config_file("worked_123")
    assert str(error.value) == (
        "config file worked_123 not found; pass an existing file to --config, or the name of a "
        f"shipped config: {', '.join(SHIPPED)}"
    )


def test_a_command_runs_a_shipped_config_named_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["worked-example", "--config", "worked_xor", "--steps", "1", "--out", str(out)]
    status, _, _ = run([*argv, "--quiet"], capsys)
    assert status == 0
    ran = tomllib.loads((out / "config.toml").read_text())
    shipped = tomllib.loads((ROOT / "configs" / "worked_xor.toml").read_text())
    assert ran["title"] == shipped["title"] and ran["data"] == shipped["data"]


def test_an_unknown_config_name_on_the_command_line_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    status, stdout, stderr = run(["worked-example", "--config", "xor", "--out", str(out)], capsys)
    assert status == 2 and stdout == "" and not out.exists()
    assert one_line(stderr).endswith(f"shipped config: {', '.join(SHIPPED)}\n")


# -- --write-config FILE -------------------------------------------------------------------------------
@pytest.mark.parametrize(("command", "config"), DEFAULT_CONFIGS.items())
def test_write_config_copies_the_commands_shipped_config_as_it_is(
    command, config, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    status, stdout, _ = run([command, "--write-config", "mine.toml"], capsys)
    assert status == 0
    assert Path("mine.toml").read_bytes() == (ROOT / "configs" / f"{config}.toml").read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mine.toml"]  # no temporary left
    assert stdout == (
        f"wrote mine.toml, a copy of the shipped config {config}, to edit; then run it with: "
        f"bpdemo {command} --config mine.toml\n"
    )


def test_write_config_copies_the_commented_template(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["worked-example", "--config", "worked_template", "--write-config", "mine.toml"]
    assert run([*argv, "--quiet"], capsys)[:2] == (0, "")
    template = (ROOT / "configs" / "worked_template.toml").read_bytes()
    assert Path("mine.toml").read_bytes() == template


def test_write_config_never_writes_over_a_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("mine.toml").write_text("my notes\n")
    status, stdout, stderr = run(["images", "--write-config", "mine.toml"], capsys)
    assert status == 2 and stdout == ""
    assert "mine.toml: that name is taken" in one_line(stderr)
    assert Path("mine.toml").read_text() == "my notes\n"


def test_write_config_never_writes_through_a_link(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("mine.toml").symlink_to(tmp_path / "elsewhere.toml")  # dangling
    status, _, stderr = run(["images", "--write-config", "mine.toml"], capsys)
    assert status == 2 and "that name is taken" in one_line(stderr)
    assert not (tmp_path / "elsewhere.toml").exists()


def test_write_config_refuses_flags_it_would_not_apply(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["house-prices", "--write-config", "mine.toml", "--epochs", "3", "--set", "seed=1"]
    status, _, stderr = run(argv, capsys)
    assert status == 2
    assert "--set and --epochs would change nothing" in one_line(stderr)
    assert list(tmp_path.iterdir()) == []
