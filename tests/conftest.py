"""Shared test helpers."""

from pathlib import Path

import pytest
import torch

from bpdemo.bench.end_to_end import AMES_ENV, ames_csv_from_environment
from bpdemo.functional import ACTIVATIONS, LOSSES


@pytest.fixture
def ames_csv() -> Path:
    """The real Ames sales, where the environment names them; tests that need them skip otherwise."""
    path = ames_csv_from_environment()
    if path is None or not path.is_file():
        pytest.skip(f"needs the Ames sales CSV: set {AMES_ENV} to its path")
    return path


def make_data(spec, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs and targets that suit `spec`'s loss, in its dtype."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, spec.sizes[0], generator=generator, dtype=torch.float64)
    if spec.loss == "cross_entropy":
        y = torch.randint(0, spec.sizes[-1], (batch,), generator=generator)
        return x.to(spec.dtype), y
    if spec.loss == "bce":
        y = torch.rand(batch, spec.sizes[-1], generator=generator, dtype=torch.float64)
    else:
        y = torch.randn(batch, spec.sizes[-1], generator=generator, dtype=torch.float64)
    return x.to(spec.dtype), y.to(spec.dtype)


@pytest.fixture
def registries():
    """Activations and losses a test registers are gone after it."""
    saved = dict(ACTIVATIONS), dict(LOSSES)
    yield
    for registry, before in zip((ACTIVATIONS, LOSSES), saved, strict=True):
        registry.clear()
        registry.update(before)
