"""Shared test helpers: data that suits a loss, a command run as the command line runs it, and the
files a run leaves behind."""

import csv
import json
import math
import os
import tomllib
from pathlib import Path

import pytest
import torch
from PIL import Image

from bpdemo.bench.end_to_end import AMES_ENV, ames_csv_from_environment
from bpdemo.functional import ACTIVATIONS, LOSSES
from bpdemo.infra.cli import run_main
from bpdemo.layers import LAYER_TYPES
from bpdemo.spec import LAYER_CLASSES, LAYER_KEYS

# One torch thread in each test process and in every process a test starts (a command, a notebook's
# kernel): the networks here are tiny, so another thread only adds the cost of waking it for every
# operation, and pytest-xdist's workers already share the cores.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)

# Each demo on small data, quiet: a whole run in a second or two.
QUICK_HOUSES = ["--set", "data.houses=300", "--epochs", "3", "--quiet"]
QUICK_IMAGES = [
    "--set",
    "data.per_class=20",
    "--set",
    "model.hidden=[16]",
    "--epochs",
    "2",
    "--quiet",
]
QUICK_GRADIENTS = [
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

# A textbook's 2-2-1 sigmoid network without biases (the worked-example tests of names, conventions,
# slips and no-bias networks), and its one step worked by hand: E = ½(y5 − t)², δ = ∂E/∂z.
TEXTBOOK = """
[network]
sizes = [2, 2, 1]
activations = ["sigmoid", "sigmoid"]
loss = "half_sse"
bias = false
[init]
weights = [[[0.1, 0.8], [0.4, 0.6]], [[0.3, 0.9]]]
[train]
lr = 1.0
[data]
inputs = [[0.35, 0.9]]
targets = [[0.5]]
"""


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


X1, X2, T = 0.35, 0.9, 0.5
Y3, Y4 = sigmoid(0.1 * X1 + 0.8 * X2), sigmoid(0.4 * X1 + 0.6 * X2)
Y5 = sigmoid(0.3 * Y3 + 0.9 * Y4)
LOSS = 0.5 * (Y5 - T) ** 2
D5 = (Y5 - T) * Y5 * (1 - Y5)
D3, D4 = D5 * 0.3 * Y3 * (1 - Y3), D5 * 0.9 * Y4 * (1 - Y4)


@pytest.fixture
def ames_csv() -> Path:
    """The real Ames sales, where the environment names them; tests that need them skip otherwise."""
    path = ames_csv_from_environment()
    if path is None or not path.is_file():
        pytest.skip(f"needs the Ames sales CSV: set {AMES_ENV} to its path")
    return path


def targets_for(
    loss: str,
    rows: int,
    outputs: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Random targets of the kind the loss declares (`LOSSES[loss].targets`), for `rows` samples of
    a network with `outputs` outputs: class labels (rows,) in 0 to outputs - 1 for `classes`, values
    in [0, 1) shaped (rows, outputs) for `probabilities`, standard normal numbers for `numbers`."""
    kind = LOSSES[loss].targets
    if kind == "classes":
        return torch.randint(0, outputs, (rows,), generator=generator)
    draw = torch.rand if kind == "probabilities" else torch.randn
    return draw(rows, outputs, generator=generator, dtype=torch.float64).to(dtype)


def suited_to(loss: str, sizes: list[int], activations: list[str]) -> tuple[list[int], list[str]]:
    """`sizes` and `activations` as the loss's kind of target needs them: at least two outputs to
    choose a class from, a sigmoid last to give probabilities."""
    sizes, activations = list(sizes), list(activations)
    kind = LOSSES[loss].targets
    if kind == "classes":
        sizes[-1] = max(sizes[-1], 2)
    if kind == "probabilities":
        activations[-1] = "sigmoid"
    return sizes, activations


def make_data(spec, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs and targets that suit `spec`'s loss, in its dtype."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, spec.sizes[0], generator=generator, dtype=torch.float64)
    return x.to(spec.dtype), targets_for(spec.loss, batch, spec.sizes[-1], generator, spec.dtype)


@pytest.fixture
def registries():
    """Activations, losses and layers a test registers are gone after it."""
    kept = (ACTIVATIONS, LOSSES, LAYER_KEYS, LAYER_TYPES, LAYER_CLASSES)
    saved = tuple(dict(registry) for registry in kept)
    yield
    for registry, before in zip(kept, saved, strict=True):
        registry.clear()
        registry.update(before)


def run_cli(main, argv: list[str], capsys) -> tuple[int, str, str]:
    """The command as `sys.exit(run_main(main))` runs it: (exit status, stdout, stderr)."""
    try:
        status = run_main(main, argv)
    except SystemExit as exit_info:  # argparse's own exit
        status = exit_info.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line(stderr: str) -> str:
    """`stderr`, after checking it is one line `error: ...`, with no traceback and no warning."""
    assert stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
    assert "Traceback" not in stderr and "Warning" not in stderr
    return stderr


def complete_files(folder: Path) -> list[str]:
    """Every file in `folder` is whole and parses; no temporary file is left. Returns the names."""
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
