"""One run lifecycle for every command: the folder is claimed before the data is read, a failure before
the run's first file leaves it exactly as it was, and the line that says what a run wrote comes from
what it wrote.
"""

import argparse
import ast
import errno
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bpdemo.bench.__main__ import main as bench_main
from bpdemo.infra.cli import run_main
from bpdemo.infra.command import kept_line, run_command, wrote_line
from bpdemo.infra.outputs import RunDir
from demos.gradients import main as gradients_main
from demos.house_prices import main as houses_main
from demos.images import main as images_main
from demos.worked_example import main as worked_main

ROOT = Path(__file__).resolve().parent.parent


def unreadable_digits(monkeypatch):
    """scikit-learn's bundled digits cannot be read (the gradients demo's only data)."""
    import sklearn.datasets

    def refuse(*args, **kwargs):
        raise OSError(errno.EACCES, "Permission denied", "digits.csv.gz")

    monkeypatch.setattr(sklearn.datasets, "load_digits", refuse)


def out_of_memory_while_stepping(monkeypatch):
    """The worked example has no data beyond its config: its first failure after the claim is in the
    run itself, here memory that runs out."""
    import demos.worked_example

    def refuse(example):
        raise MemoryError

    monkeypatch.setattr(demos.worked_example, "run_worked_example", refuse)


def bad_ames_csv(tmp_path: Path) -> str:
    """A CSV that exists but holds none of the Ames columns the benchmark needs."""
    path = tmp_path / "ames.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    return str(path)


@dataclass
class Command:
    """A command, the arguments that make its data fail (given tmp_path), or what else makes its
    first step after the claim fail, and the exit status that failure ends it with."""

    main: Callable
    failing: Callable[[Path], list[str]] = lambda tmp: []
    fault: Callable | None = None
    status: int = 2
    summary: str = "metrics.json"


COMMANDS = {
    "house_prices": Command(
        houses_main,
        lambda tmp: ["--csv", str(tmp / "missing.csv"), "--features", "a,b", "--target", "price"],
    ),
    "images": Command(images_main, lambda tmp: ["--root", str(tmp / "missing")]),
    "gradients": Command(gradients_main, fault=unreadable_digits, status=1),
    "worked_example": Command(worked_main, fault=out_of_memory_while_stepping, status=1),
    "bench": Command(
        bench_main, lambda tmp: ["--quick", "--ames", bad_ames_csv(tmp)], summary="bench.json"
    ),
}


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]] | None:
    """Every entry of `folder` (hidden ones too): its bytes and when it was last changed."""
    if not folder.exists():
        return None
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def earlier_run(folder: Path, name: str, summary: str) -> None:
    """What a finished run of `name` leaves (its files, listed in its manifest), and a user's note."""
    run = RunDir.prepare(folder, name, summary=summary)
    run.write_text("config.toml", "seed = 0\n")
    run.write_json(summary, {"seed": 0})
    run.close()
    (folder / "notes.txt").write_text("the user's own\n")


@pytest.mark.parametrize("folder", ["new", "earlier run, --force"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_failure_before_the_first_file_leaves_the_folder_as_it_was(
    command, folder, tmp_path, capsys, monkeypatch
):
    run = COMMANDS[command]
    if run.fault is not None:
        run.fault(monkeypatch)
    out = tmp_path / "out"
    argv = [*run.failing(tmp_path), "--quiet", "--out", str(out)]
    if folder != "new":
        earlier_run(out, command, run.summary)
        argv.append("--force")
    before = snapshot(out)

    assert run_main(run.main, argv) == run.status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert snapshot(out) == before


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_folder_is_claimed_before_the_data_is_read(command, tmp_path, capsys, monkeypatch):
    run = COMMANDS[command]
    if run.fault is not None:
        run.fault(monkeypatch)
    out = tmp_path / "out"
    held = RunDir.prepare(out, command)  # another run, still going
    try:
        status = run_main(run.main, [*run.failing(tmp_path), "--quiet", "--out", str(out)])
    finally:
        held.close()
    err = capsys.readouterr().err
    assert status == 2 and "is in use by another run" in err  # not the data's error


# -- what a run wrote, said once ---------------------------------------------------------------------
def test_the_files_line_lists_what_was_written_as_a_reader_opens_it(tmp_path):
    run = RunDir.prepare(tmp_path / "out", "demo")
    for name in ["history.csv", "config.toml", "loss.png", "steps.csv", "metrics.json"]:
        run.write_text(name, "")
    run.close()
    assert wrote_line(run) == (
        f"wrote config.toml, metrics.json, history.csv, steps.csv and loss.png to {run.path}"
    )
    assert kept_line([run]) == (
        f"; kept config.toml, metrics.json, history.csv, steps.csv and loss.png in {run.path}"
    )
    assert kept_line([]) == "; nothing was written"


def test_a_command_says_it_wrote_exactly_the_files_in_its_folder(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_main(worked_main, ["--config", "configs/worked_321.toml", "--out", str(out)]) == 0
    line = capsys.readouterr().out.rstrip("\n").rsplit("\n", 1)[-1]
    listed, where = line.removeprefix("wrote ").rsplit(" to ", 1)
    names = listed.replace(" and ", ", ").split(", ")
    assert where == str(out) and names[0] == "config.toml"
    assert sorted(names) == sorted(p.name for p in out.iterdir() if not p.name.startswith("."))


def test_seed_is_refused_by_a_worked_example_with_one_line_that_says_why(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_main(worked_main, ["--seed", "3", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--seed 3: a worked example starts from the weights" in err
    assert not out.exists()


def test_a_process_other_than_rank_zero_neither_claims_a_folder_nor_prints(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("RANK", "1")
    out = tmp_path / "out"
    args = argparse.Namespace(out=str(out), force=False, format="png", dpi=120, quiet=False)
    with run_command("demo", args) as run:
        assert run.folder is None
        run.say("rank 0 alone speaks")
    assert not out.exists() and capsys.readouterr().out == ""


# -- the shape of the commands ----------------------------------------------------------------------
def test_no_demo_main_is_longer_than_60_lines():
    for path in sorted((ROOT / "demos").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name == "main":
                assert node.end_lineno - node.lineno + 1 <= 60, path.name


ENTRY_POINTS = {
    "bpdemo/infra/cli.py",
    "bpdemo/__main__.py",
    "bpdemo/bench/__main__.py",
    "bpdemo/bench/explore.py",
}


def imports_of(path: Path) -> set[str]:
    """The modules `path` imports, as absolute names (`from a import b` gives `a` and `a.b`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_library_module_imports_the_command_line():
    importers = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "bpdemo").rglob("*.py"))
        if "bpdemo.infra.cli" in imports_of(path)
    ]
    assert importers and set(importers) <= ENTRY_POINTS, importers
