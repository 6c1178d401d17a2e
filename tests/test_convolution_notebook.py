"""notebooks/convolution_by_hand.ipynb prints the numbers a hand computation gives: the loss and the
kernel's gradient, computed here again in plain Python, one loop per rule."""

import re
from pathlib import Path

import nbclient
import nbformat
import pytest

from tests.test_notebooks import kernel_spec  # noqa: F401  (the fixture)

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "convolution_by_hand.ipynb"

# the notebook's numbers
X = [[1, 2, 0, 1], [0, 1, 3, 1], [2, 1, 0, 2], [1, 0, 1, 3]]
K, B = [[1, -1], [0, 2]], -0.5
W, C, Y = [0.5, -0.25, 0.25, 1.0], 0.0, 2.0


def by_hand() -> tuple[float, list[list[float]]]:
    """L and dL/dK of conv 2×2 → ReLU → max pool 2×2 stride 1 → linear → (ŷ − y)²."""
    z = [[sum(K[u][v] * X[i + u][j + v] for u in range(2) for v in range(2)) + B for j in range(3)]
         for i in range(3)]  # fmt: skip
    a = [[max(value, 0.0) for value in row] for row in z]
    wins, p = [], []
    for i in range(2):
        for j in range(2):
            window = [(a[i + u][j + v], i + u, j + v) for u in range(2) for v in range(2)]
            best = max(window, key=lambda entry: entry[0])  # max() keeps the first of equals
            wins.append(best[1:])
            p.append(best[0])
    y_hat = sum(w * value for w, value in zip(W, p, strict=True)) + C
    grad_y_hat = 2 * (y_hat - Y)
    delta = [[0.0] * 3 for _ in range(3)]
    for (i, j), w in zip(wins, W, strict=True):
        delta[i][j] += grad_y_hat * w * (1.0 if z[i][j] > 0 else 0.0)
    grad_k = [[sum(delta[i][j] * X[i + u][j + v] for i in range(3) for j in range(3))
               for v in range(2)] for u in range(2)]  # fmt: skip
    return (y_hat - Y) ** 2, grad_k


@pytest.mark.slow
def test_the_notebook_prints_the_loss_and_kernel_gradient_a_hand_computation_gives(kernel_spec):  # noqa: F811
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, kernel_name=kernel_spec, timeout=300,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )  # fmt: skip
    client.execute()
    printed = "".join(
        out.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
        for out in cell.outputs
    )  # fmt: skip
    loss, grad_k = by_hand()
    assert float(re.search(r"^L = \(ŷ − y\)² = .* = (\S+)$", printed, re.M).group(1)) == loss
    for u in range(2):
        for v in range(2):
            line = re.search(rf"^dL/dK\[{u},{v}\] = .* = (\S+)$", printed, re.M)
            assert float(line.group(1)) == pytest.approx(grad_k[u][v], rel=1e-12)
    assert "vs autograd 0.0e+00" in printed
