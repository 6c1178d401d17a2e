"""Shared test helpers."""

from pathlib import Path

import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parent.parent
AMES_CSV = PROJECT_ROOT.parent / "shared" / "data" / "AmesHousing.csv"


@pytest.fixture
def ames_csv() -> Path:
    """The real Ames sales, where this machine has them; tests that need them skip otherwise."""
    if not AMES_CSV.is_file():
        pytest.skip(f"optional data set absent: {AMES_CSV} (only on the developers' machines)")
    return AMES_CSV


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
