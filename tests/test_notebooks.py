"""Every notebook in notebooks/ runs from top to bottom, offline, with this project's Python; and none
is committed with outputs (a hand-out starts clean).

The kernel is this interpreter (`sys.executable`), named in a kernel spec made for the test, so that
a Jupyter installed elsewhere on the machine cannot run the notebooks with another Python.
"""

import itertools
import json
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
KERNEL = "bpdemo-tests"
TIMEOUT = 300  # seconds a cell may take; a hand-out notebook runs in seconds to a minute


@pytest.fixture
def kernel_spec(tmp_path, monkeypatch) -> str:
    """A kernel spec that starts this interpreter's ipykernel, found first on JUPYTER_PATH."""
    folder = tmp_path / "jupyter" / "kernels" / KERNEL
    folder.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "bpdemo tests",
        "language": "python",
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL


def test_there_is_a_notebook_to_run_and_a_kernel_to_run_it():
    assert any(path.name == "worked_321.ipynb" for path in NOTEBOOKS)
    import ipykernel  # noqa: F401  (the test extra installs it; without it no notebook runs)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_a_notebook_runs_top_to_bottom_and_is_committed_without_outputs(path, kernel_spec):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "a notebook with no code"
    assert all(not cell.outputs and cell.execution_count is None for cell in code), (
        "clear the outputs before committing"
    )
    client = nbclient.NotebookClient(
        notebook,
        kernel_name=kernel_spec,
        timeout=TIMEOUT,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if one fails
    errors = [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert not errors
    for cell in code:  # a cell that draws a picture shows it, once
        shown = [out for out in cell.outputs if "image/png" in out.get("data", {})]
        drawn = sum(cell.source.count(f"{call}(") for call in DRAWING_CALLS)
        assert len(shown) == drawn, cell.source


DRAWING_CALLS = (".picture", "loss_curves", "gradient_difference", "one_image_step")


def test_a_notebooks_words_name_the_settings_its_next_cell_uses():
    """Where a text cell names a setting its next code cell sets (`train.lr=...`), it names the
    value the cell uses (it may offer others to try besides)."""
    import re

    for path in NOTEBOOKS:
        cells = nbformat.read(path, as_version=4).cells
        for text, code in itertools.pairwise(cells):
            if text.cell_type != "markdown" or code.cell_type != "code":
                continue
            said = {key for key, _ in re.findall(r"`(\w+\.\w+)=([^`]+)`", text.source)}
            for key, value in re.findall(r'"(\w+\.\w+)=([^"]+)"', code.source):
                if key in said:
                    assert f"`{key}={value}`" in text.source, (path.name, key, value)
