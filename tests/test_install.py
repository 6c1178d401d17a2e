"""bpdemo installed from its wheel, run from a folder outside the repository, as a user runs it.

The wheel is built once for the whole test run (every pytest-xdist worker shares it), offline
(`--no-build-isolation`: the test extra brings setuptools), and installed with `pip install --target`
into a fresh folder. Every command then runs from another folder with that folder first on
PYTHONPATH, under the interpreter of this environment, which has bpdemo's dependencies.
"""

import fcntl
import json
import os
import re
import select
import signal
import subprocess
import sys
import tomllib
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import QUICK_GRADIENTS

pytestmark = pytest.mark.slow  # every test runs a command, or builds and installs the wheel

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "bpdemo", "demos", "configs"]  # what the build reads
SHIPPED = sorted(path.name for path in (ROOT / "configs").glob("*.toml"))
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "--quiet"]


@dataclass
class Installed:
    """A wheel of bpdemo (`wheel`) installed into `target`, to be run from `folder`."""

    wheel: Path
    target: Path
    folder: Path
    environment: dict[str, str]

    def run(self, *words: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """A command line run from `folder` as a user runs it: `bpdemo ...` is the installed
        console script, `python ...` this environment's interpreter."""
        program = {"bpdemo": [str(self.target / "bin" / "bpdemo")], "python": [sys.executable]}
        return subprocess.run(
            [*program[words[0]], *words[1:]],
            cwd=self.folder,
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def without_pythonpath() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def build_wheel(into: Path) -> Path:
    """bpdemo's wheel, built from a copy of its sources (the checkout is left as it was)."""
    source = into / "source"
    source.mkdir(parents=True)
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            _copy_tree(path, source / name)
        else:
            (source / name).write_bytes(path.read_bytes())
    wheels = into / "wheels"
    build = [*PIP, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels)]
    done = subprocess.run(
        [*build, str(source)], capture_output=True, text=True, env=without_pythonpath()
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = wheels.glob("bpdemo-*.whl")
    return wheel


def _copy_tree(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*")):
        if "__pycache__" in path.parts or path.is_dir():
            continue
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(path.read_bytes())


@pytest.fixture(scope="session")
def wheel(tmp_path_factory, worker_id) -> Path:
    """The wheel, built once: by the first pytest-xdist worker to get here, for all of them."""
    if worker_id == "master":
        return build_wheel(tmp_path_factory.mktemp("build"))
    shared = tmp_path_factory.getbasetemp().parent / "bpdemo-wheel"  # the workers' common folder
    with open(f"{shared}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the others wait here until it is built
        built = sorted(shared.glob("wheels/bpdemo-*.whl"))
        return built[0] if built else build_wheel(shared)


@pytest.fixture(scope="session")
def installed(wheel, tmp_path_factory) -> Installed:
    """The wheel installed into a fresh folder, and a folder of the user's to run it from; both
    outside the repository."""
    target = tmp_path_factory.mktemp("site")
    install = [*PIP, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)]
    done = subprocess.run(install, capture_output=True, text=True, env=without_pythonpath())
    assert done.returncode == 0, done.stderr
    folder = tmp_path_factory.mktemp("user")
    assert not folder.is_relative_to(ROOT) and not target.is_relative_to(ROOT)
    environment = {
        **without_pythonpath(),
        "PYTHONPATH": str(target),  # first on the path: the installed copy is what runs
        "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache")),
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "100",
    }
    installed = Installed(wheel, target, folder, environment)
    # found, not imported (that takes seconds): the copy a command of this folder would import
    where = (
        "import importlib.util as u; print(*(u.find_spec(m).origin for m in ('bpdemo', 'demos')))"
    )
    found = installed.run("python", "-c", where).stdout.split()
    assert found == [str(target / "bpdemo" / "__init__.py"), str(target / "demos" / "__init__.py")]
    return installed


def run_folder(installed: Installed, command: str) -> Path:
    """The one folder a run of `command` made under `./runs/<command>/` of the user's folder."""
    (folder,) = (installed.folder / "runs" / command).iterdir()
    return folder


def files_of(folder: Path) -> set[str]:
    """Every file under `folder` but Python's caches of compiled modules."""
    return {
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


# -- the wheel, and the package that runs ---------------------------------------------------------------
def test_the_wheel_holds_every_module_every_shipped_config_and_the_console_script(wheel):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(f"bpdemo-{version}.dist-info/entry_points.txt").decode()
    modules = {
        str(path.relative_to(ROOT))
        for folder in ("bpdemo", "demos")
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert modules <= names, sorted(modules - names)
    assert {f"bpdemo/configs/{name}" for name in SHIPPED} <= names
    assert "bpdemo = bpdemo.__main__:main" in entry_points


def test_the_installed_bpdemo_reads_its_own_configs_and_caches_downloads_outside_itself(installed):
    probe = (
        "import json; from bpdemo.infra.shipped import CONFIG_DIR, CHECKOUT; "
        "from bpdemo.datasets import DATA_DIR; "
        "print(json.dumps([str(CONFIG_DIR), str(CHECKOUT), str(DATA_DIR)]))"
    )
    done = installed.run("python", "-c", probe)
    assert done.returncode == 0, done.stderr
    configs, checkout, data = json.loads(done.stdout)
    assert Path(configs) == installed.target / "bpdemo" / "configs"
    assert checkout == "None"
    assert Path(data) == Path(installed.environment["XDG_CACHE_HOME"]) / "bpdemo"


def test_bpdemo_version_is_the_installed_version(installed):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    done = installed.run("bpdemo", "--version")
    assert (done.returncode, done.stdout) == (0, f"bpdemo {version}\n")


# -- every command's default, from the user's folder ----------------------------------------------------
COMMANDS = {  # each as typed, short settings, and the run folder and summary file it writes
    "bpdemo house-prices": (
        ["--epochs", "1", "--set", "data.houses=200", "--quiet"],
        "house_prices",
        "metrics.json",
    ),
    "bpdemo images": (
        ["--epochs", "1", "--set", "data.per_class=20", "--set", "model.hidden=[16]", "--quiet"],
        "images",
        "metrics.json",
    ),
    "bpdemo gradients": (QUICK_GRADIENTS, "gradients", "metrics.json"),
    "bpdemo bench": (["--quick", "--quiet"], "bench", "bench.json"),
    "python -m demos.worked_example": (["--quiet"], "worked_example", "metrics.json"),
}  # the python -m forms are the same code (tests/test_console_script.py compares their help)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_runs_its_default_config_into_runs_of_the_users_folder(
    command, installed, tmp_path
):
    options, name, summary = COMMANDS[command]
    assert not tmp_path.is_relative_to(ROOT)
    user = Installed(installed.wheel, installed.target, tmp_path, installed.environment)
    package_before = files_of(installed.target)
    done = user.run(*command.split(), *options)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    run = run_folder(user, name)
    assert json.loads((run / summary).read_text())
    assert files_of(installed.target) == package_before  # nothing written into the package


def test_write_config_copies_the_shipped_template_into_the_users_folder(installed, tmp_path):
    user = Installed(installed.wheel, installed.target, tmp_path, installed.environment)
    done = user.run(
        "bpdemo", "worked-example", "--config", "worked_template", "--write-config", "mine.toml"
    )
    assert done.returncode == 0, done.stderr
    template = (ROOT / "configs" / "worked_template.toml").read_bytes()
    assert (tmp_path / "mine.toml").read_bytes() == template


def test_the_explorer_starts_serves_its_page_and_sessions_and_stops_on_ctrl_c(installed):
    server = subprocess.Popen(
        [str(installed.target / "bin" / "bpdemo"), "explore", "--no-browser"],
        cwd=installed.folder,
        env=installed.environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([server.stdout], [], [], 60)
        assert ready, "the explorer printed no address within 60 s"
        address = re.search(r"http://127\.0\.0\.1:(\d+)/", server.stdout.readline())
        assert address, "the explorer's first line names its address"
        url, host = address.group(0), f"127.0.0.1:{address.group(1)}"
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": host})) as page:
            assert page.status == 200 and "<html" in page.read().decode().lower()
        request = urllib.request.Request(
            f"{url}api/sessions", data=b"", method="POST", headers={"Host": host}
        )
        with urllib.request.urlopen(request) as answer:
            assert answer.status == 200 and json.loads(answer.read())["session"]
        server.send_signal(signal.SIGINT)
        stdout, stderr = server.communicate(timeout=30)
    finally:
        server.kill()
        server.wait()
    assert server.returncode == 128 + signal.SIGINT, stderr
    assert stdout == "explorer stopped\n"
